from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.settings import ConfigError, SettingsFileExistsError
from site_agent.config import SiteSettings, load_site_settings
from site_agent.site_toml import render_site_toml, write_site_toml


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _flatten(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        keys |= _flatten(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name}
    return keys


def test_init_writes_a_commented_file_with_every_setting_and_paths_under_the_folder(tmp_path: Path) -> None:
    path = write_site_toml(tmp_path / "hospital", "hospital-a")
    text = path.read_text()
    assert text.count("#") > 20
    # Settings unset by default (TOML has no null) are there too, commented out with their help.
    unset = {key for key in _keys(SiteSettings) if f"# {key.rsplit('.', 1)[-1]} = (not set)" in text}
    assert unset == {"generator.foundation", "generator.foundation_sha256"}
    assert _flatten(tomllib.loads(text)) | unset == _keys(SiteSettings)
    settings = load_site_settings(path)
    assert settings.site_id == "hospital-a"
    fed = settings.federation
    fed_paths = {k: v for k, v in fed.model_dump().items() if isinstance(v, Path)}
    defaults = SiteSettings(site_id="hospital-a")
    expected = defaults.model_copy(
        update={"paths": settings.paths, "federation": defaults.federation.model_copy(update=fed_paths)}
    )
    assert settings == expected
    for folder in [*settings.paths.model_dump().values(), *fed_paths.values()]:
        assert Path(folder).is_relative_to((tmp_path / "hospital").resolve())
    assert settings.paths.store.is_dir() and settings.paths.ledger.parent.is_dir()


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = write_site_toml(tmp_path, "a")
    path.write_text(path.read_text().replace("epsilon_cap = 10.0", "epsilon_cap = 3.0"))
    with pytest.raises(SettingsFileExistsError, match="--force"):
        write_site_toml(tmp_path, "a")
    assert "epsilon_cap = 3.0" in path.read_text()
    write_site_toml(tmp_path, "a", force=True)
    assert "epsilon_cap = 10.0" in path.read_text()


def test_errors_name_the_field_and_the_file(tmp_path: Path) -> None:
    path = write_site_toml(tmp_path, "a")
    path.write_text(path.read_text().replace("box = [96, 96, 128]", "box = [96, 96, 100]\nboxes = 4"))
    with pytest.raises(ConfigError) as err:
        load_site_settings(path)
    message = str(err.value)
    assert str(path) in message
    assert "preprocessing.box = [96, 96, 100] (from site.toml)" in message and "multiple of 8" in message
    assert "preprocessing.boxes: unknown setting" in message


def test_environment_overrides_the_file_and_is_named_when_wrong(tmp_path: Path, monkeypatch) -> None:
    path = write_site_toml(tmp_path, "a")
    monkeypatch.setenv("FEDSYNTH_PRIVACY__EPSILON_CAP", "4.5")
    assert load_site_settings(path).privacy.epsilon_cap == 4.5
    monkeypatch.setenv("FEDSYNTH_PRIVACY__EPSILON_CAP", "-1")
    with pytest.raises(ConfigError, match="environment variable FEDSYNTH_PRIVACY__EPSILON_CAP"):
        load_site_settings(path)


def test_config_path_comes_from_the_option_then_the_variable_then_the_folder(tmp_path, monkeypatch) -> None:
    write_site_toml(tmp_path / "by-env", "from-env")
    write_site_toml(tmp_path / "cwd", "from-cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    assert load_site_settings().site_id == "from-cwd"
    monkeypatch.setenv("FEDSYNTH_SITE_CONFIG", str(tmp_path / "by-env" / "site.toml"))
    assert load_site_settings().site_id == "from-env"
    assert load_site_settings(tmp_path / "cwd" / "site.toml").site_id == "from-cwd"


def test_missing_and_malformed_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*site-agent init"):
        load_site_settings(tmp_path / "nope.toml")
    bad = tmp_path / "site.toml"
    bad.write_text("site_id = 'a'\n[privacy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_site_settings(bad)


def test_site_id_is_validated_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render_site_toml("../../etc")
    with pytest.raises(ValueError):
        write_site_toml(tmp_path / "x", "has space")
    assert not (tmp_path / "x").exists()
