"""benchmarks/gpu_check.sh: on a machine without CUDA it runs its CPU parts in seconds and reports
the CUDA parts as skipped; with CUDA it runs them (benchmarks/README.md)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, "LOGS": str(tmp_path / "logs"), **env})


def table(out: str) -> dict[str, str]:
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    return {name.strip(): result.strip() for name, result, _ in rows[1:]}


# On a CUDA machine the script runs the cuda tests and benchmarks (minutes): run it there directly.
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; with CUDA the script runs for real")


def test_gpu_check_on_cpu_skips_the_cuda_parts(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = table(proc.stdout)
    assert rows == {"install nni": "skipped: installed", "install lpips": "skipped: installed",
                    "pytest -m cuda": "skipped: no CUDA", "search_step.py --device cuda": "skipped: no CUDA",
                    "inference.py --device cuda": "skipped: no CUDA",
                    "the session (cuda)": "skipped: no CUDA"}
    assert "CUDA devices: none (CPU only)" in proc.stdout


def test_gpu_check_reports_a_missing_package_it_cannot_install(tmp_path: Path) -> None:
    """A package that is not installed, and no wheels/ folder: a FAILED row and exit status 1."""
    if (REPO / "wheels").exists():
        pytest.skip("a wheels/ folder is present: the script would try to install from it")
    proc = run(tmp_path, GPU_CHECK_PACKAGES="lpips nas_llv_no_such_package")
    assert proc.returncode == 1
    rows = table(proc.stdout)
    assert rows["install nas_llv_no_such_package"] == "FAILED (not installed, no wheels/ folder)"
    assert rows["install lpips"] == "skipped: installed"
