"""nas-llv: neural architecture search for low-light vision."""
from __future__ import annotations

import os

__version__ = "0.1.0"

# torch's OpenMP (libgomp) workers spin a long while when they wait for work. Beside a second
# busy process on the same cores that made a search iteration 8.8x slower; a short spin keeps
# 3x of it off for an 8% cost on an idle machine (OMP_WAIT_POLICY=PASSIVE: 4x off for 50%;
# benchmarks/threads.py). OpenMP reads this when torch loads it, so it is set before nas_llv
# imports torch; a user's own setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
