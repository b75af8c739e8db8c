"""The one foundation the project ships: small, at the CPU box, built by its own commands.

    coordinator foundation train chest-ct-cpu-v1 --id chest-ct-cpu-v1 --phantom-cases 200 \
        --autoencoder-epochs 16 --denoiser-epochs 96 --jobs 2
    coordinator foundation add-anatomy chest-ct-cpu-v1 chest-ct-cpu-v2 --id chest-ct-cpu-v2 \
        --phantom-cases 32 --seed 0 --jobs 2

on public phantom patients only (the `public` profile: its own scanner, lung nodules, no mediastinal
mass, no label): the networks, and a public anatomy bank of 32 of the same patients' boxes. Its card
(`foundation.json`) records the corpus, the bank's sources, the training and every file's sha256.
It lets the demo, and a site at the CPU box (48x48x64 at 4 mm), start without first training a
foundation for half an hour. For any other box, or for real public CT, train one.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_FOUNDATION = Path(__file__).parent / "chest-ct-cpu-v2"
