"""Data-parallel search and training (nas_llv.distributed): N ranks at batch b compute what one
rank at batch N*b does. CPU runs use gloo; the tests marked ``cuda`` use NCCL.

The end-to-end runs use SGD on the weights: Adam divides each gradient by its own magnitude, so a
weight whose gradient is zero up to rounding (RUAS's denoiser head bias: TV is blind to a constant)
moves by ±lr on either side of 1e-8 noise, and a batch mean taken as one sum or as two summed
halves differs by rounding. α keeps the recipe's Adam: its gradients are far from zero.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from nas_llv import distributed
from nas_llv.data import BatchStream, TensorPairs

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "search.val_batches=1",
        "search.epochs=1", "search.steps_per_epoch=2", "search.checkpoint_every=1",
        "search.weights.optimizer=sgd", "search.weights.lr=0.05"]
TRAIN = ["train.steps=3", "train.val_every=1", "train.val_batches=1", "train.checkpoint_every=1",
         "train.optim.optimizer=sgd", "train.optim.lr=0.05",
         "data.demo_count=4", "data.demo_size=32", "data.crop=16"]
TOL = 1e-5
NUMERIC_SKIP = {"module", "phase", "seconds"}
# Records what a rank other than 0 writes under AUDIT_ROOT (Python's audit hooks), then runs nas-llv.
AUDIT = textwrap.dedent("""
    import atexit, os, sys
    root, rank, wrote = os.path.realpath(os.environ["AUDIT_ROOT"]), os.environ["RANK"], []
    def hook(event, args):
        path = None
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2] or 0
            if (mode and set(str(mode)) & set("wax+")) or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                path = args[0]
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree"):
            path = args[0]
        if path is not None and os.path.realpath(os.fsdecode(path)).startswith(root):
            wrote.append((event, os.fsdecode(path)))
    if rank != "0":
        sys.addaudithook(hook)
        atexit.register(lambda: print(f"AUDIT rank {rank} wrote {wrote}", file=sys.stderr))
    from nas_llv.cli import main
    sys.exit(main())
""")


def nas_llv(*args: str, cwd: Path, torchrun: Path | None = None, nproc: int = 2) -> subprocess.CompletedProcess:
    """``nas-llv ARGS`` in a fresh process, or ``torchrun --nproc_per_node NPROC SCRIPT ARGS`` when
    ``torchrun`` (a script, or ``nas_llv`` for ``-m nas_llv``) is given."""
    script = ["-m", "nas_llv"] if torchrun == Path("nas_llv") else [str(torchrun)]
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *script]
            if torchrun else [sys.executable, "-m", "nas_llv"])
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # keep the caller's
    env = {**os.environ, "PYTHONPATH": path, "AUDIT_ROOT": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*head, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def ok(proc: subprocess.CompletedProcess) -> Path:
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout  # the run folder, printed once (by rank 0)
    return Path(lines[0])


def run_of(cwd: Path, proc: subprocess.CompletedProcess) -> Path:
    return cwd / ok(proc)


def assert_same_run(one: Path, two: Path, weights_file: str = "checkpoints/last.pt") -> None:
    """Trajectories (every numeric column) and weights (α, ω) equal within TOL."""
    a, b = pd.read_csv(one / "trajectory.csv"), pd.read_csv(two / "trajectory.csv")
    assert list(a["step"]) == list(b["step"]) and len(a) >= 3
    cols = [c for c in a.columns if c not in NUMERIC_SKIP and a[c].dtype.kind == "f"]
    assert "train_loss" in cols and "val_loss" in cols
    diff = (a[cols] - b[cols]).abs().max()
    assert (diff <= TOL).all(), diff[diff > TOL]
    wa, wb = (_weights(p / weights_file) for p in (one, two))
    assert wa.keys() == wb.keys()
    worst = max(wa, key=lambda k: float((wa[k] - wb[k]).abs().max()))
    assert torch.allclose(wa[worst], wb[worst], atol=TOL, rtol=0), worst


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    net = state.get("network", state.get("state_dict"))
    return {k: v.double() for k, v in net.items() if v.is_floating_point()}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (path := tmp_path_factory.mktemp("dist"))
    (path / "audit.py").write_text(AUDIT)
    return path


@pytest.fixture(scope="module")
def first_order(work: Path) -> dict[str, object]:
    """One rank at batch 2 and two torchrun ranks at batch 1 each (data.batch_size is the global
    batch; rank 1 audited), first_order."""
    recipe = str(REPO / "recipes/ruas_demo.yaml")
    common = [*TINY, "search.hypergrad.type=first_order"]
    one = nas_llv("search", recipe, *common, "data.batch_size=2", "--output", "one", cwd=work)
    two = nas_llv("search", recipe, *common, "data.batch_size=2", "--output", "two", cwd=work, torchrun=work / "audit.py")
    return {"one": one, "two": two}


def test_first_order_two_ranks_at_batch_1_match_one_rank_at_batch_2(work: Path, first_order: dict) -> None:
    one, two = run_of(work, first_order["one"]), run_of(work, first_order["two"])
    assert_same_run(one, two)
    assert torch.load(two / "checkpoints/last.pt", weights_only=False)["world_size"] == 2


def test_rank_1_writes_nothing_and_prints_nothing(work: Path, first_order: dict) -> None:
    proc = first_order["two"]
    ok(proc)  # exactly one stdout line, from rank 0
    assert "AUDIT rank 1 wrote []" in proc.stderr, proc.stderr[-2000:]
    assert len(list((work / "two").iterdir())) == 1  # one run folder: the name was shared
    log = (run_of(work, proc) / "log.txt").read_text().splitlines()
    finished = [line for line in log if "search finished" in line]
    assert len(finished) == 1  # rank 1 did not log into the file
    assert proc.stderr.count("search finished") == 1  # nor to the console


def test_finite_difference_two_ranks_resumed_match_one_rank(work: Path) -> None:
    """--nproc 2, stopped after 1 step and resumed at world size 2, equals one uninterrupted rank; the two
    ranks keep their rows on the device and read them every 3 steps (``speed.sync_every``), the one rank
    reads each step."""
    recipe = str(REPO / "recipes/ruas_demo.yaml")
    common = [*TINY, "search.hypergrad.type=finite_difference"]
    one = run_of(work, nas_llv("search", recipe, *common, "data.batch_size=2", "--output", "fd1", cwd=work))
    stopped = nas_llv("search", recipe, *common, "data.batch_size=2", "speed.sync_every=3", "--output", "fd2",
                      "--nproc", "2", "--stop-after", "1", cwd=work)
    two = run_of(work, stopped)
    assert f"continue with: nas-llv search --resume {two.relative_to(work)} --nproc 2" in stopped.stderr
    assert len(pd.read_csv(two / "trajectory.csv")) < len(pd.read_csv(one / "trajectory.csv"))
    resumed = nas_llv("search", "--resume", str(two), "--nproc", "2", cwd=work)
    assert run_of(work, resumed) == two
    assert_same_run(one, two)
    # a different world size is refused, naming both
    proc = nas_llv("search", "--resume", str(two), cwd=work)
    assert proc.returncode == 2 and proc.stdout == ""
    error = proc.stderr.strip().splitlines()[-1]
    assert error == f"nas-llv search: error: {two}: the run was started with 2 process(es), this resume has 1; " \
                    f"resume with --nproc 2", proc.stderr


def test_train_two_ranks_match_one_rank(work: Path, first_order: dict) -> None:
    genotype = run_of(work, first_order["one"]) / "genotype.yaml"
    recipe = str(REPO / "recipes/ruas_demo_train.yaml")
    one = nas_llv("train", str(genotype), "--recipe", recipe, *TRAIN, "data.batch_size=2", "--output", "t1", cwd=work)
    two = nas_llv("train", str(genotype), "--recipe", recipe, *TRAIN, "data.batch_size=2", "--output", "t2",
                  "--nproc", "2", cwd=work)
    a, b = run_of(work, one), run_of(work, two)
    assert_same_run(a, b, "model.pt")
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())


def test_batch_must_divide_by_the_processes(work: Path) -> None:
    proc = nas_llv("search", str(REPO / "recipes/ruas_demo.yaml"), "data.batch_size=3", "--nproc", "2", cwd=work)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("nas-llv search: error: data.batch_size=3 does not divide by the number of "
                                   "processes 2; give a batch size that is a multiple of 2")


# -- in-process checks: data shards, every hypergradient method on a small bilevel problem ----------

def _pairs(n: int = 6, size: int = 12) -> TensorPairs:
    g = torch.Generator().manual_seed(0)
    lows = [torch.rand(3, size, size + i, generator=g) for i in range(n)]
    return TensorPairs(lows, [x.clone() for x in lows], [f"im{i}" for i in range(n)])


@pytest.mark.parametrize("crop", [5, None])
def test_shards_split_the_global_batch_and_resume_with_it(crop: int | None) -> None:
    data = _pairs() if crop else TensorPairs(*(lambda xs: (xs, xs, [f"im{i}" for i in range(6)]))(
        [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(6)]))
    whole = BatchStream(data, 4, crop, seed=3)
    shards = [BatchStream(data, 4, crop, seed=3, shard=(r, 2)) for r in range(2)]
    for _ in range(2):  # across an epoch boundary (6 items, batches of 4)
        batch = next(whole)
        parts = [next(s) for s in shards]
        assert torch.equal(torch.cat([p["low"] for p in parts]), batch["low"])
        assert [n for p in parts for n in p["name"]] == batch["name"]
    state = shards[1].state_dict()
    assert state == {**shards[0].state_dict(), "rng": state["rng"]} and torch.equal(state["rng"], whole.state_dict()["rng"])
    again = BatchStream(data, 4, crop, seed=3, shard=(1, 2))
    again.load_state_dict(whole.state_dict())  # the global state resumes a shard
    assert torch.equal(next(again)["low"], next(shards[1])["low"])


GLOO_THREADS_AFTER_TEARDOWN = textwrap.dedent("""
    import gc, os, torch
    from nas_llv import distributed

    distributed.init()
    import torch._dynamo  # what torchvision (LPIPS, the perceptual loss) imports after init
    t = torch.ones(2)
    torch.distributed.all_reduce(t)
    distributed.teardown()
    gc.collect()
    names = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
    # one write per rank: print's text and newline are two writes, which two ranks on one pipe interleave
    os.write(1, f"rank {os.environ['RANK']}: {t[0].item():g}, gloo threads left: {sum('gloo' in n for n in names)}\\n".encode())
""")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_teardown_frees_the_group_when_torch_distributed_nn_is_imported_after_init(work: Path) -> None:
    """torch.distributed.nn binds group.WORLD as a default argument when first imported: after
    init, that kept the destroyed group and its gloo threads alive to interpreter exit, where they
    aborted a rank now and then. init imports it first, so teardown frees every gloo thread."""
    script = work / "teardown.py"
    script.write_text(GLOO_THREADS_AFTER_TEARDOWN)
    proc = nas_llv(cwd=work, torchrun=script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(re.findall(r"rank \d: [^,]+, gloo threads left: \d+", proc.stdout))
    assert lines == ["rank 0: 2, gloo threads left: 0", "rank 1: 2, gloo threads left: 0"], proc.stdout


def test_helpers_are_no_ops_in_one_process() -> None:
    t = {"a": torch.ones(2, requires_grad=True)}
    assert not distributed.active() and distributed.shard() == (0, 1) and distributed.is_main()
    assert distributed.all_reduce_mean(t)["a"] is t["a"] and distributed.mean_floats({"x": 1.5}) == {"x": 1.5}
    assert distributed.broadcast("run") == "run"
    assert distributed.strip_nproc(["search", "r.yaml", "--nproc", "2", "a=1", "--nproc=3"]) == ["search", "r.yaml", "a=1"]


METHODS = {"first_order": {}, "finite_difference": {}, "unrolled_exact": {}, "implicit_cg": {"cg_iters": 5},
           "implicit_gn": {}}


def _bilevel(rows: slice):
    """A bilevel problem whose losses are means over 4 samples (rows picks this rank's)."""
    from nas_llv.search.hypergrad import Bilevel

    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    y, t = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    x, z, y, t = x[rows], z[rows], y[rows], t[rows]
    upper = {"u": torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)}
    lower = {"w": torch.tensor([0.5, 0.4, -0.3], dtype=torch.float64)}

    def low(v):
        pred = x @ v["w"]
        return ((pred - y).square() + 0.05 * pred.pow(4) + torch.exp(x @ v["u"]) * v["w"].square().sum()).mean()

    def up(v):
        return ((z @ v["w"] - t).square() + 0.1 * torch.sin(z @ v["u"])).mean()

    return Bilevel(upper=upper, lower=lower, lower_loss=low, upper_loss=up, lower_lr=0.1)


def _hypergrads(rows: slice) -> dict[str, torch.Tensor]:
    from nas_llv.registry import HYPERGRADS

    return {name: HYPERGRADS.build({"type": name, **opts})(_bilevel(rows))["u"] for name, opts in METHODS.items()}


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _rank(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    # the whole batch in one process, before the group: the reference, and any thread pool the
    # methods start is counted in `before`
    one = _hypergrads(slice(0, 4))
    before = _threads()
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        two = _hypergrads(slice(2 * rank, 2 * rank + 2))
    finally:
        distributed.teardown()
    if rank == 0:
        torch.save({"one": one, "two": two, "threads": (before, _threads())}, out)


def test_every_hypergradient_method_of_two_half_batches_is_the_whole_batchs(tmp_path: Path) -> None:
    """All-reducing every gradient the methods take (nas_llv.search.hypergrad.base.grads, vjp) makes
    2 ranks of 2 samples compute the hypergradient of the 4-sample mean, for every method."""
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path / "out.pt")), nprocs=2)
    saved = torch.load(tmp_path / "out.pt")
    one, two = saved["one"], saved["two"]
    # teardown freed the group: its gloo worker threads are gone. (torch.distributed.nn's all_reduce,
    # imported after init, kept it alive as a default argument; its threads then aborted the
    # process at exit, now and then.)
    before, after = saved["threads"]
    assert after == before, f"{after - before} threads of the destroyed process group still run"
    for name in METHODS:
        assert torch.allclose(two[name], one[name], atol=1e-12, rtol=0), (name, two[name], one[name])
    assert not torch.allclose(one["finite_difference"], one["first_order"], atol=1e-4)  # ξ terms matter here


# -- CUDA: NCCL (benchmarks/gpu_check.sh runs these with pytest -m cuda) --------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("gpus", [1, 2])
def test_nccl_ranks_match_one_process_on_cuda(work: Path, gpus: int) -> None:
    """torchrun -m nas_llv with GPUS ranks on cuda:LOCAL_RANK (NCCL, a group even of one) equals
    one plain process at the same global batch; cuDNN's kernels are not bitwise reproducible
    across processes, hence 1e-4."""
    if torch.cuda.device_count() < gpus:
        pytest.skip(f"{gpus} GPUs needed, {torch.cuda.device_count()} present")
    recipe = str(REPO / "recipes/ruas_demo.yaml")
    common = [*TINY, "search.hypergrad.type=finite_difference", "device=cuda", "data.batch_size=2"]
    one = run_of(work, nas_llv("search", recipe, *common, "--output", f"cuda1-{gpus}", cwd=work))
    proc = nas_llv("-v", "search", recipe, *common, "--output", f"cuda{gpus}", cwd=work,
                   torchrun=Path("nas_llv"), nproc=gpus)
    assert "nccl" in proc.stderr  # rank 0's debug line names the backend
    two = run_of(work, proc)
    a, b = pd.read_csv(one / "trajectory.csv"), pd.read_csv(two / "trajectory.csv")
    assert (a["val_loss"] - b["val_loss"]).abs().max() <= 1e-4
    wa, wb = _weights(one / "checkpoints/last.pt"), _weights(two / "checkpoints/last.pt")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4, rtol=0) for k in wa)


def _layout_rank(rank: int, store: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        g = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5) * (rank + 1)
        cl = g.contiguous(memory_format=torch.channels_last)
        out = distributed.all_reduce_mean({"plain": g, "cl": cl, "i": torch.tensor([rank], dtype=torch.float64)})
        assert torch.equal(out["plain"], g / (rank + 1) * 1.5) and torch.equal(out["cl"], out["plain"])
        assert out["cl"].is_contiguous(memory_format=torch.channels_last) and out["plain"].is_contiguous()
        assert out["i"].item() == 0.5 and out["i"].dtype == torch.float64
        assert distributed.mean_floats({"a": float(rank), "b": 2.0}) == {"a": 0.5, "b": 2.0}
        assert distributed.any_rank(rank == 1) and not distributed.any_rank(False)
        assert distributed.broadcast(f"from {rank}") == "from 0"
    finally:
        dist.destroy_process_group()


def test_all_reduce_mean_keeps_names_dtypes_and_layouts(tmp_path: Path) -> None:
    mp.spawn(_layout_rank, args=(str(tmp_path / "store"),), nprocs=2)
