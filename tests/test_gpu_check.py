"""benchmarks/gpu_check.sh: on a machine without CUDA it runs its CPU parts in seconds and reports
the CUDA parts as skipped; with CUDA it runs them (benchmarks/README.md)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
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
                    "pytest -m cuda": "skipped: no CUDA", "gpu_figures.py --device cuda": "skipped: no CUDA",
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


# -- benchmarks/gpu_figures.py, the search figures of the table: its counting and its projection on CPU --

@pytest.fixture(scope="module")
def figures():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_figures
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return gpu_figures


def test_launch_counts_are_per_iteration_profiler_counts(figures):
    """On CPU the profiler's events are the aten operators: 3 iterations of an add and a multiply, each
    in a labelled range (not an operator), count 2 operators per iteration."""
    from torch.profiler import ProfilerActivity, profile, record_function

    x = torch.rand(4, 4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            with record_function("iteration"):
                torch.add(x, x)
                torch.mul(x, x)
    counts = figures.launch_counts(prof.events(), 3, cuda=False)
    assert counts == {"aten ops": 2.0}, [e.name for e in prof.events()]


def test_launch_counts_on_cuda_count_launch_calls_and_kernels(figures):
    """On CUDA: the runtime's and the driver's launch calls (host side) and the kernels (device side),
    not memory copies, not operators."""
    from types import SimpleNamespace

    host, device = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
    events = [SimpleNamespace(name=n, device_type=d) for n, d in [
        ("aten::add", host), ("cudaLaunchKernel", host), ("cuLaunchKernel", host), ("cudaMemcpyAsync", host),
        ("void at::native::vectorized_elementwise_kernel<4>", device), ("triton_poi_fused_add_0", device),
        ("Memcpy HtoD (Pageable -> Device)", device), ("Memset (Device)", device)]]
    assert figures.launch_counts(events, 2, cuda=True) == {"launches": 1.0, "kernels": 1.0}


def test_the_lol_projection_counts_the_recipes_iterations(figures):
    """recipes/ruas_lol.yaml: 485 LOL pairs, val_ratio 0.5 (242 held out), batch 1, 20 epochs."""
    iterations, how = figures.lol_iterations()
    assert iterations == 20 * 243 and "20 epochs x 243" in how


def test_a_cpu_measurement_has_every_figure_but_memory(figures, tmp_path):
    """One eager first-order iteration at 16x16, timed and profiled on CPU, and its table rows."""
    r = figures.measure(16, "first_order", "cpu", figures.PATHS["eager"], iters=1, warmup=0, profiled=1,
                        root=str(tmp_path))
    assert r["s"] > 0 and r["aten ops"] > 100 and "allocated_mib" not in r
    rows = figures.rows(16, {("first_order", "eager"): r, ("finite_difference", "eager"): r}, (4860, "x"))
    assert len(rows) == 5 and all(row.startswith("| ") and row.count(" | ") == 2 for row in rows)
    memory = {"allocated_mib": 1.0, "reserved_mib": 2.0}  # as CUDA measures it
    assert figures.rows(16, {}, (4860, "x"), memory) == [
        "| peak memory, ruas_demo.yaml as it is (48² crops, batch 2), eager | 1 MiB allocated, 2 MiB reserved | - |"]
    assert rows[-1].startswith("| projected ruas_lol.yaml search, eager | ")
    assert f"{4860 * r['s'] / 60:.1f} min" in rows[-1]


def test_the_training_step_is_timed_read_every_step_and_deferred(figures, tmp_path):
    """What train_steps measures on CUDA, run on CPU at 16x16 crops: both trainers time their steps,
    none validates among them, and the row shows both."""
    r = figures.train_steps("cpu", steps=1, warmup=0, root=str(tmp_path), overrides=["data.crop=16", "data.demo_size=32"])
    assert set(r) == {"eager", "deferred"} and all(v > 0 for v in r.values())
    rows = figures.rows(16, {}, (4860, "x"), train=r)
    assert rows == [f"| s/step, train ruas_demo_train.yaml (64² batch 4), eager / deferred (sync_every 50) | "
                    f"{r['eager']:.4f} / {r['deferred']:.4f} | - |"]
    for run in tmp_path.iterdir():  # the step-0 row alone: no validation among the timed steps
        assert list(pd.read_csv(run / "trajectory.csv")["step"]) == [0]


def test_the_demo_memory_runs_the_recipes_first_epoch(figures, tmp_path):
    """What demo_memory measures on CUDA, run on CPU: every iteration of the first epoch and its validation."""
    s = figures.first_epoch(figures.DEMO_RECIPE, ["device=cpu", "data.demo_count=4", "data.demo_size=32",
                                                  "data.crop=16", "search.val_batches=1"], str(tmp_path))
    assert (s.epoch, s.it, s.step) == (1, 0, 2)  # 2 training images at batch 2: one iteration of both levels
