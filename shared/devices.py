"""Which torch device a command runs on: one rule for sites and the coordinator."""

from __future__ import annotations

import torch

from shared.errors import FedsynthError


class DeviceError(FedsynthError):
    """A device was asked for that this machine does not have."""


def choose_device(setting: str) -> torch.device:
    """`auto`: the first CUDA GPU when there is one, the CPU otherwise."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {setting!r} was asked for, but this machine has no CUDA GPU")
    return torch.device(setting)
