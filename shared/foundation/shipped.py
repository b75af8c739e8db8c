"""The one foundation the project ships: small, at the CPU box, built by its own command.

    coordinator foundation train chest-ct-cpu-v1 --id chest-ct-cpu-v1 --phantom-cases 200 \
        --autoencoder-epochs 24 --denoiser-epochs 128 --jobs 2

on public phantom patients only (the `public` profile: its own scanner, lung nodules, no mediastinal
mass, no label); its card (`foundation.json`) records the corpus, the training and every weight's
sha256. It lets the demo, and a site at the CPU box (48x48x64 at 4 mm), start without first
training a foundation for half an hour. For any other box, or for real public CT, train one.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_FOUNDATION = Path(__file__).parent / "chest-ct-cpu-v1"
