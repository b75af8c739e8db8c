"""Privacy accounting math, shared so the coordinator can recompute what any card claims."""

from shared.privacy.accounting import (
    ACCOUNTANTS,
    Mechanism,
    PrivacyMathError,
    compose_epsilon,
    default_delta,
    largest_epsilon_within,
    noise_for_epsilon,
)

__all__ = [
    "ACCOUNTANTS",
    "Mechanism",
    "PrivacyMathError",
    "compose_epsilon",
    "default_delta",
    "largest_epsilon_within",
    "noise_for_epsilon",
]
