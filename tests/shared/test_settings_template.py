"""The commented settings file rendered from a settings model: every value, under its explanation."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import Field

from shared.settings import FileSettings, SettingsSection
from shared.settings_template import render_settings_file


class Section(SettingsSection):
    """What this section is for, long enough that it has to be wrapped over more than one line of the
    file so that no comment line runs past the width."""

    folder: Path = Field(Path("data/here"), description="A folder, relative to the file.")
    sizes: tuple[int, int] = (8, 16)
    strict: bool = Field(True, description='Quoted "words" survive.')


class Example(FileSettings):
    name: str = Field("site_a", description="Who this is.")
    rate: float = 1e-5
    section: Section = Section()


def test_the_file_holds_every_default_under_its_description_and_reads_back_the_same() -> None:
    text = render_settings_file(Example(), "Header line one.\n\nHeader line three.")
    lines = text.splitlines()
    assert lines[:3] == ["# Header line one.", "#", "# Header line three."]
    assert Example(**tomllib.loads(text)) == Example()
    assert lines[lines.index('name = "site_a"') - 1] == "# Who this is."
    assert lines[lines.index("strict = true") - 1] == '# Quoted "words" survive.'
    assert lines[lines.index('folder = "data/here"') - 1] == "# A folder, relative to the file."
    header = lines.index("[section]")
    assert lines[header + 1].startswith("# What this section is for") and lines[header + 2].startswith("# ")
    assert max(len(line) for line in lines if line.startswith("#")) <= 98
