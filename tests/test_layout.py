"""The house rules a reader relies on: which package may import which, and one exception tree each."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import coordinator.errors
import shared.errors
import site_agent.errors
from coordinator.errors import CoordinatorError
from shared.errors import FedsynthError
from site_agent.errors import SiteAgentError

ROOT = Path(__file__).resolve().parents[1]
# site_agent -> shared <- coordinator: a hospital installs no coordinator code, and the other way round.
MAY_NOT_IMPORT = {
    "shared": {"site_agent", "coordinator"},
    "site_agent": {"coordinator"},
    "coordinator": {"site_agent"},
}


def _modules(package: str) -> list[Path]:
    return [p for p in sorted((ROOT / package).rglob("*.py")) if "migrations" not in p.parts]


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_dependencies_point_from_the_site_agent_and_the_coordinator_to_shared_only() -> None:
    crossings = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package, forbidden in MAY_NOT_IMPORT.items()
        for path in _modules(package)
        for name in _imported(path)
        if name.split(".")[0] in forbidden
    ]
    assert crossings == []


def test_every_error_hangs_off_its_package_base_and_is_drawn_in_its_tree() -> None:
    trees = {"shared": (FedsynthError, shared.errors), "site_agent": (SiteAgentError, site_agent.errors)}
    trees["coordinator"] = (CoordinatorError, coordinator.errors)
    found = 0
    for package, (base, tree) in trees.items():
        for path in _modules(package):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            module = importlib.import_module(name)
            for cls in vars(module).values():
                if not (inspect.isclass(cls) and issubclass(cls, FedsynthError)):
                    continue
                if cls.__module__ != name:
                    continue  # imported here, defined elsewhere
                found += 1
                assert issubclass(cls, base), f"{name}.{cls.__name__} is not under {base.__name__}"
                drawn = re.search(rf"^[ |]*(\+-- )?{cls.__name__}\b", tree.__doc__ or "", re.MULTILINE)
                assert drawn, f"{cls.__name__} is not drawn in {tree.__name__}"
    assert found > 40
