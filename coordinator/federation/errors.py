"""Errors of the coordinator's federation layer.

FederationError         coordinator.federation: Flower refused a command or a round cannot run
 +-- CertificateError   certificates.py: TLS files missing or in the way
 +-- RoundError         rounds.py: an unknown round, or a round folder that is not a round
 +-- SuperLinkUnavailable  flower_cli.py: the SuperLink did not answer at all
"""

from shared.errors import FedsynthError


class FederationError(FedsynthError):
    """Flower refused a command (the message says which and why), or a round cannot be run."""


class RoundError(FederationError):
    """An unknown round id, or a round folder that does not hold a round."""


class SuperLinkUnavailable(FederationError):
    """The SuperLink did not answer (not running, unreachable, or too slow)."""
