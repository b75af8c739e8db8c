"""Composed epsilons this site's accountant has already worked out, kept beside the ledger.

Every reply a site sends carries its budget: the accountant's composition of every run in the
ledger. Opacus' accountants load torch, which costs a Flower ClientApp about 4 CPU seconds and
300 MB, even for a message that trains nothing (the foundation question, a refusal, a request
asked again after a lost reply). A composition is a pure function of the runs' mechanisms, delta
and the accountant's name, so its answer is kept under a hash of exactly those: a history the
accountant has already seen is answered from here, any other is composed and then remembered.

The ledger stays the record and the only thing that admits a run (`budget.reserve` composes
afresh): this file is derived, may be deleted at any time, and a damaged one is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from shared.privacy import AccountantName, Mechanism, compose_epsilon, decode_epsilon, encode_epsilon

KEEP = 64  # answers kept; a site's history grows by one run a round, so older ones are never asked again


def memo_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".compositions.json")


def _key(mechanisms: Sequence[Mechanism], delta: float, accountant: AccountantName) -> str:
    history = [[m.noise_multiplier, m.sample_rate, m.steps] for m in mechanisms if m.steps > 0]
    canonical = json.dumps(
        {"accountant": accountant, "delta": delta, "history": history}, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _read(path: Path) -> dict[str, object]:
    try:
        answers = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: every answer is composed again
    return answers if isinstance(answers, dict) else {}


def remember(
    ledger: Path, mechanisms: Sequence[Mechanism], *, delta: float, accountant: AccountantName, epsilon: float
) -> None:
    """Keep an epsilon the accountant just composed for exactly these mechanisms."""
    path = memo_path(ledger)
    answers = _read(path)
    answers.pop(key := _key(mechanisms, delta, accountant), None)
    answers[key] = encode_epsilon(epsilon)  # newest last, so the oldest go first
    kept = dict(list(answers.items())[-KEEP:])
    # Written beside and renamed into place: a reader meets the old file or the new one, never half.
    with contextlib.suppress(OSError):  # a memo that cannot be written only costs time later
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(kept, out)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def composed_epsilon(
    ledger: Path, mechanisms: Sequence[Mechanism], *, delta: float, accountant: AccountantName
) -> float:
    """`compose_epsilon` of these mechanisms, from the memo when the accountant has answered it before."""
    known = _read(memo_path(ledger)).get(_key(mechanisms, delta, accountant))
    if known is not None:
        with contextlib.suppress(ValueError):
            return decode_epsilon(known)
    epsilon = compose_epsilon(mechanisms, delta=delta, accountant=accountant)
    remember(ledger, mechanisms, delta=delta, accountant=accountant, epsilon=epsilon)
    return epsilon
