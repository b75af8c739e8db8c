"""Base for every message and file that crosses between a site and the coordinator.

Each schema carries its name and version in the payload (`"schema": "fedsynth.round_request/1"`),
so a reader can refuse a version it does not know instead of misreading it, and forbids unknown
fields, so nothing unplanned (a path, a header value) can ride along unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from shared.errors import FedsynthError


class SchemaError(FedsynthError):
    """A message or file does not match its schema; the message names the schema, field and source."""


class VersionedModel(BaseModel):
    """A frozen pydantic model stamped with `schema = "<SCHEMA_NAME>/<SCHEMA_VERSION>"`."""

    SCHEMA_NAME: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    schema_id: str = ""

    @classmethod
    def schema_tag(cls) -> str:
        return f"{cls.SCHEMA_NAME}/{cls.SCHEMA_VERSION}"

    @model_validator(mode="before")
    @classmethod
    def _stamp_and_check_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            tag = data.get("schema_id") or cls.schema_tag()
            name, _, version = str(tag).rpartition("/")
            if name != cls.SCHEMA_NAME:
                raise ValueError(f"this is a {name or tag!r} document, not {cls.SCHEMA_NAME!r}")
            if version != str(cls.SCHEMA_VERSION):
                raise ValueError(
                    f"{cls.SCHEMA_NAME} version {version} is not supported by this fedsynth "
                    f"(it reads version {cls.SCHEMA_VERSION}); upgrade the older side"
                )
            data = {**data, "schema_id": tag}
        return data

    @classmethod
    def parse(cls, data: str | bytes | dict[str, Any], *, source: str = "message") -> Self:
        """Validate JSON text or a dict; raise SchemaError naming the source and every bad field."""
        try:
            if isinstance(data, dict):
                return cls.model_validate(data)
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise SchemaError(describe_validation_error(exc, what=cls.SCHEMA_NAME, source=source)) from None

    @classmethod
    def read(cls, path: Path) -> Self:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"cannot read {cls.SCHEMA_NAME} file {path}: {exc.strerror}") from None
        return cls.parse(text, source=str(path))

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def write(self, path: Path) -> None:
        """Write atomically: a reader never sees half a file."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def describe_validation_error(exc: ValidationError, *, what: str, source: str) -> str:
    lines = [f"invalid {what} in {source}:"]
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "(document)"
        lines.append(f"  {field}: {err['msg']}")
    return "\n".join(lines)
