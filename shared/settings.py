"""Loading settings from a TOML file plus `FEDSYNTH_` environment variables, with errors people can act on.

Both sides use this: `site_agent.config.SiteSettings` and `coordinator.config.CoordinatorSettings`
are pydantic-settings classes; this module finds their file, reads it, lets environment variables
override it (`FEDSYNTH_PRIVACY__EPSILON_CAP=4` sets `[privacy] epsilon_cap`), resolves relative
paths against the file's folder, and turns validation failures into one `ConfigError` that names
each bad field and where its value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import FedsynthError

ENV_PREFIX = "FEDSYNTH_"
ENV_NESTED = "__"


class ConfigError(FedsynthError):
    """A settings file or environment variable is missing, unreadable or invalid."""


class SettingsFileExistsError(ConfigError):
    """`init` would overwrite a settings file that is already there."""


class SettingsSection(BaseModel):
    """One [section] of a settings file: unknown keys are errors, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSettings(BaseSettings):
    """Base class: environment variables win over the file, the file over the defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED,
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init arguments; the environment must override them.
        return (env_settings, init_settings)


S = TypeVar("S", bound=FileSettings)


def resolve_config_path(given: Path | None, *, env_var: str, default_name: str) -> Path:
    """`--config` if given, else the path in `env_var`, else `./default_name`."""
    if given is not None:
        return given
    from_env = os.environ.get(env_var)
    if from_env:
        return Path(from_env)
    return Path.cwd() / default_name


def load_settings(cls: type[S], path: Path, *, hint: str) -> S:
    """Read `path`, apply the environment, validate, and make relative paths absolute.

    `hint` tells the operator how to create a missing file (for example the `init` command).
    """
    path = path.expanduser()
    if not path.is_file():
        raise ConfigError(f"settings file {path} does not exist; {hint}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from None
    try:
        settings = cls(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    return _resolve_paths(settings, path.parent.resolve())


def _describe(exc: ValidationError, path: Path) -> str:
    lines = [f"invalid settings in {path}:"]
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        field = ".".join(loc) or "(file)"
        env_name = ENV_PREFIX + ENV_NESTED.join(loc).upper()
        source = f"environment variable {env_name}" if env_name in os.environ else path.name
        if err["type"] == "extra_forbidden":
            lines.append(f"  {field}: unknown setting (from {source}); check its spelling and section")
        elif err["type"] == "missing":
            lines.append(f"  {field}: required but not set (in {source})")
        else:
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            lines.append(f"  {field}{shown} (from {source}): {err['msg']}")
    return "\n".join(lines)


def _resolve_paths(model: Any, base: Path) -> Any:
    """Copy of `model` with every relative Path field anchored at `base` (the settings file's folder)."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            updates[name] = (base / value.expanduser()).resolve()
        elif isinstance(value, BaseModel):
            resolved = _resolve_paths(value, base)
            if resolved is not value:
                updates[name] = resolved
    return model.model_copy(update=updates) if updates else model


def write_settings_file(target: Path, text: str, *, force: bool, folders: Iterable[Path]) -> Path:
    """Write a new settings file atomically and create the folders it names (relative to its folder).

    Refuses to replace an existing file unless `force`: it may hold a hospital's own choices.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not force:
        raise SettingsFileExistsError(f"{target} already exists; pass --force to overwrite it")
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    for folder in folders:
        (target.parent / folder).mkdir(parents=True, exist_ok=True)
    return target
