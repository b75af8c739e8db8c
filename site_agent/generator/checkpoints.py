"""Training checkpoints on disk: written whole or not at all, read back without unpickling code."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


class FileCheckpointer:
    def __init__(self, folder: Path, *, every_seconds: float) -> None:
        self.path = folder / CHECKPOINT
        self.every_seconds = every_seconds
        self._last = time.monotonic()

    def due(self, step: int) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def save(self, step: int, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{CHECKPOINT}.tmp")
        with tmp.open("wb") as fh:
            torch.save({"step": step, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self._last = time.monotonic()

    def load(self) -> tuple[int, dict[str, Any]] | None:
        if not self.path.exists():
            return None
        # weights_only: a checkpoint is tensors and plain values, never code to run.
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        return int(state.pop("step")), state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
