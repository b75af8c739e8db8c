"""The diagnostic label set: the one place the six classes of DESIGN.md are spelled out.

Everything else (phantom, schemas, models, reports) refers to classes through `LabelSet`,
so a deployment that studies a different set of classes changes it here or in configuration,
never in ten places.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shared.errors import FedsynthError

NORMAL = "normal"
THYMOMA = "thymoma"
THYMIC_CARCINOMA = "thymic_carcinoma"
GERM_CELL_TUMOUR = "germ_cell_tumour"
NEUROGENIC_TUMOUR = "neurogenic_tumour"
BENIGN_CYST = "benign_cyst"

# Order matters: it is the index order of every classifier output and confusion matrix.
DEFAULT_CLASSES: tuple[str, ...] = (
    NORMAL,
    THYMOMA,
    THYMIC_CARCINOMA,
    GERM_CELL_TUMOUR,
    NEUROGENIC_TUMOUR,
    BENIGN_CYST,
)

# Plain-language names for reports and CLIs.
DISPLAY_NAMES: dict[str, str] = {
    NORMAL: "normal",
    THYMOMA: "thymoma",
    THYMIC_CARCINOMA: "thymic carcinoma",
    GERM_CELL_TUMOUR: "germ cell tumour",
    NEUROGENIC_TUMOUR: "neurogenic tumour",
    BENIGN_CYST: "benign cyst",
}


class UnknownClassError(FedsynthError, ValueError):
    """A label that is not in the label set in force."""


@dataclass(frozen=True)
class LabelSet:
    """An ordered, duplicate-free set of class names; index i is output i of every model."""

    names: tuple[str, ...] = DEFAULT_CLASSES

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise ValueError("a label set needs at least two classes")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate class names in label set: {list(self.names)}")
        for name in self.names:
            if not name or not name.replace("_", "").isalnum() or name != name.lower():
                raise ValueError(f"class name {name!r} must be lower-case letters, digits and underscores")

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownClassError(
                f"unknown class {name!r}; expected one of: {', '.join(self.names)}"
            ) from None

    def check(self, names: Iterable[str]) -> None:
        for name in names:
            self.index(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names


DEFAULT_LABEL_SET = LabelSet()
