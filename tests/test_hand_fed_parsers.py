"""The parsers people feed by hand (label CSV files, settings files, round orders, the checksums of a
synthetic set), driven by hypothesis: whatever bytes they get, each either reads them or refuses
them with its own error, which names the file, and never fails any other way."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coordinator.federation.round_order import RoundOrder
from shared.classes import DEFAULT_CLASSES, LabelSet
from shared.settings import ConfigError
from shared.synthetic_set import SUMS, SyntheticSetError, verify_synthetic_set
from site_agent.config import load_site_settings
from site_agent.ingest.labels import LabelsError, read_labels
from site_agent.site_toml import write_site_toml

EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = LabelSet(DEFAULT_CLASSES)

# Text that looks like what people type, and bytes that do not.
cells = st.one_of(
    st.sampled_from(["", "train", "holdout", "HOLDOUT", " thymoma ", *DEFAULT_CLASSES]),
    st.text(max_size=12),
)
csv_lines = st.lists(st.lists(cells, min_size=1, max_size=5).map(",".join), max_size=6)
headers = st.sampled_from(["study_uid,label", "study_uid,label,split", "study_uid,label,split,mask", "label"])
raw_bytes = st.binary(max_size=400)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@EXAMPLES
@given(header=headers, lines=csv_lines, junk=raw_bytes, use_junk=st.booleans())
def test_a_label_file_is_read_or_refused_with_its_name(
    folder: Path, header: str, lines: list[str], junk: bytes, use_junk: bool
) -> None:
    path = folder / "labels.csv"
    path.write_bytes(junk if use_junk else "\n".join([header, *lines]).encode())
    try:
        rows = read_labels(path, CLASSES)
    except LabelsError as exc:
        assert str(path) in str(exc)
        return
    for study_uid, row in rows.items():
        assert study_uid == study_uid.strip() and study_uid
        assert row.label is None or row.label in CLASSES
        assert row.split in (None, "train", "holdout")


def test_a_label_file_read_back_gives_what_was_written(folder: Path) -> None:
    path = folder / "written.csv"
    path.write_text("study_uid,label,split\n1.2.3,thymoma,train\n1.2.4,,holdout\n1.2.5,benign_cyst,\n")
    rows = read_labels(path, CLASSES)
    assert {k: (r.label, r.split) for k, r in rows.items()} == {
        "1.2.3": ("thymoma", "train"),
        "1.2.4": (None, "holdout"),
        "1.2.5": ("benign_cyst", None),
    }


toml_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.booleans(),
    st.lists(st.integers(-5, 600), max_size=4),
)


@pytest.fixture(scope="module")
def site_text(folder: Path) -> str:
    return write_site_toml(folder / "site", "fuzz-site").read_text()


@EXAMPLES
@given(
    section=st.sampled_from(["privacy", "preprocessing", "generator", "paths", "ingest", "nosuch"]),
    key=st.sampled_from(["epsilon_cap", "box", "spacing_mm", "backend", "store", "min_slices", "x"]),
    value=toml_values,
    junk=raw_bytes,
    use_junk=st.booleans(),
)
def test_a_settings_file_is_read_or_refused_with_its_name(
    folder: Path, site_text: str, section: str, key: str, value: object, junk: bytes, use_junk: bool
) -> None:
    edited = folder / "site" / "edited.toml"
    if use_junk:
        edited.write_bytes(junk)
    else:  # a section appended again is a TOML error; a value of the wrong kind a settings error
        edited.write_text(site_text + f"\n[{section}]\n{key} = {json.dumps(value)}\n")
    try:
        load_site_settings(edited)
    except ConfigError as exc:
        assert str(edited) in str(exc)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@EXAMPLES
@given(
    fields=st.dictionaries(
        st.sampled_from([*RoundOrder.model_fields, "nosuch"]),
        json_values,
        max_size=6,
    )
)
def test_a_round_order_is_valid_or_refused_as_invalid(fields: dict[str, object]) -> None:
    text = json.dumps(fields)
    try:
        order = RoundOrder.model_validate_json(text)
    except ValidationError:
        return
    assert RoundOrder.model_validate_json(order.model_dump_json()) == order  # what is read, round-trips
    assert 0 < order.epsilon <= 1000 and order.per_class >= 1


@EXAMPLES
@given(sums=raw_bytes, lines=st.lists(st.tuples(st.text(max_size=70), st.text(max_size=20)), max_size=4))
def test_a_synthetic_sets_checksums_are_checked_or_refused(
    folder: Path, sums: bytes, lines: list[tuple[str, str]]
) -> None:
    target = folder / "set"
    target.mkdir(exist_ok=True)
    (target / "card.json").write_text("{}")
    text = sums if len(lines) % 2 else "".join(f"{d}  {p}\n" for d, p in lines).encode()
    (target / SUMS).write_bytes(text)
    try:
        verify_synthetic_set(target)
    except SyntheticSetError as exc:
        assert str(target) in str(exc)
