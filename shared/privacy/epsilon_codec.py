"""epsilon in JSON: a number, or the string "inf" for a run without DP (JSON has no infinity).

The ledger, a run's card and the benchmarks' result files all write epsilon through these two.
"""

from __future__ import annotations

import math

from shared.privacy.accounting import PrivacyMathError

INFINITE = "inf"


def encode_epsilon(epsilon: float) -> float | str:
    return INFINITE if math.isinf(epsilon) else epsilon


def decode_epsilon(value: object) -> float:
    if value == INFINITE:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PrivacyMathError(f"epsilon must be a number or {INFINITE!r}, not {value!r}")
    return float(value)
