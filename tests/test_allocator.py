"""``device.keep_freed_memory``: glibc's malloc keeps a freed image-sized block for reuse instead
of handing it back to the OS, so allocating it again faults no pages in (run in fresh processes:
the setting is process-wide). The effect on an inference forward is measured in
benchmarks/inference.py (``--system-malloc`` for the comparison)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nas_llv.device import _is_glibc, keep_freed_memory

SCRIPT = r"""
import ctypes, json, resource, sys
from nas_llv.device import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 24 << 20  # a 6-channel 1000x1000 float32 activation
p = libc.malloc(n); libc.memset(p, 1, n); libc.free(p)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
p = libc.malloc(n); libc.memset(p, 1, n)
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _reallocation_faults(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _is_glibc(), reason="glibc's mallopt only")
def test_a_freed_block_is_reused_without_page_faults():
    system, kept = _reallocation_faults("system"), _reallocation_faults("keep")
    assert system["faults"] > 3000  # glibc's default: the block went back to the OS, its pages fault in again
    assert kept["kept"] is True and kept["faults"] < 100, (kept, system)


def test_a_user_malloc_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False


def test_a_cuda_network_leaves_malloc_alone():
    import torch

    assert keep_freed_memory(torch.device("cuda")) is False
