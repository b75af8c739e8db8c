"""Differential privacy for both ends: a site plans and records its runs with it, and the
coordinator recomputes every card's epsilon with the same code.

    dp_run.py         DPRun: where a run's epsilon is decided (plan, epsilon after n steps, card)
    accounting.py     the math beneath: composition, noise calibration, the accountant factory
    epsilon_codec.py  epsilon in JSON, infinity included
"""

from shared.privacy.accounting import (
    ACCOUNTANTS,
    AccountantName,
    Mechanism,
    PrivacyMathError,
    compose_epsilon,
    default_delta,
    largest_epsilon_within,
    make_accountant,
    noise_for_epsilon,
)
from shared.privacy.dp_run import DPRun
from shared.privacy.epsilon_codec import decode_epsilon, encode_epsilon

__all__ = [
    "ACCOUNTANTS",
    "AccountantName",
    "DPRun",
    "Mechanism",
    "PrivacyMathError",
    "compose_epsilon",
    "decode_epsilon",
    "default_delta",
    "encode_epsilon",
    "largest_epsilon_within",
    "make_accountant",
    "noise_for_epsilon",
]
