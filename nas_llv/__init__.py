"""nas-llv: neural architecture search for low-light vision."""
from __future__ import annotations

import os

__version__ = "0.1.0"

# torch's OpenMP (libgomp) workers spin a long while when they wait for work. Beside a second
# busy process on the same two cores a search iteration took 13.7x its idle time; with a short
# spin 3.0x, for 4% more when idle (OMP_WAIT_POLICY=PASSIVE: 1.4x, but 54% more when idle;
# benchmarks/README.md). OpenMP reads this when torch loads it, so it is set before nas_llv
# imports torch; a user's own setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
