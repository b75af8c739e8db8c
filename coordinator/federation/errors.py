"""Errors of the coordinator's federation layer (the whole tree is drawn in coordinator.errors).

FederationError           Flower refused a command or a round cannot run
 +-- CertificateError     certificates.py: TLS files missing or in the way
 +-- RoundError           rounds.py: an unknown round, or a round folder that is not a round
 +-- SuperLinkUnavailable flower_cli.py: the SuperLink did not answer at all
 +-- RoundFailed          round_runner.py: the round cannot go on
 +-- RoundCancelled       round_runner.py: an operator cancelled the round
 +-- ReplyRejected        validation.py: a site's reply failed a check; nothing was stored
"""

from coordinator.errors import CoordinatorError


class FederationError(CoordinatorError):
    """Flower refused a command (the message says which and why), or a round cannot be run."""


class RoundError(FederationError):
    """An unknown round id, or a round folder that does not hold a round."""


class SuperLinkUnavailable(FederationError):
    """The SuperLink did not answer (not running, unreachable, or too slow)."""


class RoundFailed(FederationError):
    """The round cannot go on; the message is the reason the report gives."""


class RoundCancelled(FederationError):
    """An operator cancelled the round; the message says who."""
