"""nas-llv: neural architecture search for low-light vision."""
from __future__ import annotations

__version__ = "0.1.0"
