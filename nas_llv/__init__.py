"""nas-llv: neural architecture search for low-light vision."""
from __future__ import annotations

import os

__version__ = "0.1.0"

# torch's OpenMP workers spin while they wait for work. Beside another busy process on the same
# cores that made a search step several times slower (benchmarks/threads.py); PASSIVE lets them
# sleep. OpenMP reads this when torch loads it, so it is set before nas_llv imports torch; a
# user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
