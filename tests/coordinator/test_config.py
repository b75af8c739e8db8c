from pathlib import Path

import pytest

from coordinator.config import load_coordinator_settings
from coordinator.coordinator_toml import write_coordinator_toml
from shared.settings import ConfigError, SettingsFileExistsError


def test_init_writes_loadable_settings_with_paths_under_the_folder(tmp_path: Path) -> None:
    path = write_coordinator_toml(tmp_path / "c")
    settings = load_coordinator_settings(path)
    assert settings.federation.min_sites == 2
    assert settings.paths.data == (tmp_path / "c" / "data").resolve() and settings.paths.data.is_dir()
    with pytest.raises(SettingsFileExistsError):
        write_coordinator_toml(tmp_path / "c")


def test_bad_port_names_field_and_file(tmp_path: Path) -> None:
    path = write_coordinator_toml(tmp_path)
    path.write_text(path.read_text().replace("port = 8000", "port = 70000"))
    with pytest.raises(ConfigError, match=r"api.port = 70000 \(from coordinator.toml\)"):
        load_coordinator_settings(path)
