"""The memo of composed epsilons answers only the exact history it was told, and never harms the answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.privacy import Mechanism, compose_epsilon
from site_agent.privacy.composition_memo import KEEP, composed_epsilon, memo_path, remember

ONE = [Mechanism(1.5, 0.2, 100)]
TWO = [Mechanism(1.5, 0.2, 100), Mechanism(1.5, 0.2, 300)]


def test_each_history_delta_and_accountant_has_its_own_answer(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    asked = [(ONE, 1e-5, "rdp"), (TWO, 1e-5, "rdp"), (TWO, 1e-6, "rdp"), (TWO, 1e-5, "prv")]
    answers = [composed_epsilon(ledger, m, delta=d, accountant=a) for m, d, a in asked]  # type: ignore[arg-type]
    expected = [compose_epsilon(m, delta=d, accountant=a) for m, d, a in asked]  # type: ignore[arg-type]
    assert answers == pytest.approx(expected) and len(set(answers)) == 4
    assert len(json.loads(memo_path(ledger).read_text())) == 4
    # Asked again, each is read back as it was composed.
    again = [composed_epsilon(ledger, m, delta=d, accountant=a) for m, d, a in asked]  # type: ignore[arg-type]
    assert again == answers


def test_a_damaged_memo_is_ignored_and_replaced(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    for damage in ("{not json", "[1, 2]", '{"x": "not an epsilon"}'):
        memo_path(ledger).write_text(damage)
        assert composed_epsilon(ledger, TWO, delta=1e-5, accountant="rdp") == pytest.approx(
            compose_epsilon(TWO, delta=1e-5, accountant="rdp")
        )
        assert len(json.loads(memo_path(ledger).read_text())) >= 1


def test_the_memo_keeps_the_newest_answers_only(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    for steps in range(1, KEEP + 11):
        remember(ledger, [Mechanism(2.0, 0.1, steps)], delta=1e-5, accountant="rdp", epsilon=float(steps))
    kept = json.loads(memo_path(ledger).read_text())
    assert len(kept) == KEEP and list(kept.values())[-1] == KEEP + 10
    assert (
        composed_epsilon(ledger, [Mechanism(2.0, 0.1, KEEP + 10)], delta=1e-5, accountant="rdp") == KEEP + 10
    )
