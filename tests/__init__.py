"""The test suite. Imported before any test module, so what it sets holds for the whole run."""

import os

# One compute thread for each test worker and each process it starts, set before torch or numpy
# load their thread pools: two xdist workers on two cores, each running torch with a thread per
# core, make OpenMP's threads spin against each other; two such processes ran 4x slower together
# than with one thread each. A developer's own setting wins.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
