"""The commented settings file that `init` writes, rendered from the settings models themselves.

The models are the one home of every default and every explanation: a field's `description` is
the comment above it, a section class's docstring the comment under its `[header]`. Nothing is
kept in step by hand, so a new setting appears in new files with its explanation.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel

WIDTH = 98


def render_settings_file(settings: BaseModel, header: str) -> str:
    """`settings` (usually the defaults) as TOML, each value under its explanation; `header` is
    the comment at the top of the file, kept line for line."""
    blocks = ["".join(f"# {line}".rstrip() + "\n" for line in header.strip().splitlines())]
    plain = []
    sections = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            sections.append(_section(name, value))
        else:
            plain.append(_comment(field.description) + f"{name} = {_toml(value)}\n")
    blocks += plain
    blocks += sections
    return "\n".join(blocks)


def _section(name: str, section: BaseModel) -> str:
    lines = [f"[{name}]\n", _comment(type(section).__doc__)]
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        # TOML has no null: a setting that is unset by default is shown, commented out.
        line = f"# {key} = (not set)\n" if value is None else f"{key} = {_toml(value)}\n"
        lines.append(_comment(field.description) + line)
    return "".join(lines)


def _comment(text: str | None) -> str:
    if not text:
        return ""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    lines = []
    for paragraph in paragraphs:
        lines += textwrap.wrap(" ".join(paragraph.split()), WIDTH - 2)
    return "".join(f"# {line}\n" for line in lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(value.as_posix())
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"no TOML form for a setting of type {type(value).__name__}")
