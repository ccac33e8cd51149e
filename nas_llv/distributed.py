"""Data-parallel runs with ``torch.distributed``: one process per device, started by torchrun.

``torchrun --nproc_per_node N -m nas_llv search RECIPE`` (or ``nas-llv search RECIPE --nproc N``,
which starts torchrun through ``launch``) runs N copies of the command. Every rank builds the
same network from the same seed and reads the same global batch stream; each keeps its own slice
of every batch (``data.batch_size`` / N images, ``nas_llv.data.loaders.BatchStream``). The
gradients a step uses are averaged here, in ``all_reduce_mean``: with losses that are batch
means, N ranks at batch b compute what one rank at batch N*b does. Rank 0 alone writes the run
folder (``nas_llv.runs.MirrorRun`` is the other ranks' view of it).

Backend: gloo on the CPU, NCCL for CUDA tensors (``cpu:gloo,cuda:nccl`` where CUDA is present);
rank r's CUDA device is ``cuda:LOCAL_RANK``. Without torchrun's environment every helper is a
no-op and nothing is initialised. Multi-node runs are torchrun's rendezvous (docs/scale.md).
"""
from __future__ import annotations

import logging
import os
import sys
import uuid
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist

from nas_llv.config import ConfigError

log = logging.getLogger(__name__)


class PeerFailed(ConfigError):
    """Rank 0 failed before it could share a result; the other ranks stop quietly (rank 0 reports)."""


def launched() -> bool:
    """Whether torchrun started this process (one rank of one or more): its environment is set."""
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def shard() -> tuple[int, int]:
    """(rank, world size): which slice of each batch this process keeps."""
    return rank(), world_size()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init() -> None:
    """Join torchrun's process group (from its environment variables), once; a no-op outside torchrun."""
    if not launched() or active():
        return
    # torch.distributed.nn.functional binds ``group.WORLD`` as its functions' default argument when
    # first imported. Imported after init (torch._dynamo imports it, and torchvision imports
    # torch._dynamo), it would bind this group: destroy_process_group could not free it, and its
    # gloo threads, alive at interpreter exit, aborted a rank now and then ("terminate called
    # without an active exception"). Imported first, it binds None.
    import torch.distributed.nn  # noqa: F401

    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    log.debug("rank %d of %d joined (%s)", rank(), world_size(), dist.get_backend())


def teardown() -> None:
    if active():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA device in a distributed run."""
    if active() and device.type == "cuda":
        return torch.device("cuda", local_rank())
    return device


def all_reduce_mean(tensors: Mapping[str, torch.Tensor], differentiable: bool = False) -> dict[str, torch.Tensor]:
    """The mean over ranks of each tensor, name by name (the same dict, unchanged, on one rank).

    Every rank must call it with the same names and shapes. ``differentiable``: keep the autograd
    graph (``_AllReduceSum``: its backward all-reduces the incoming gradient), for
    gradients taken with ``create_graph`` that are differentiated again.
    """
    if not active() or not tensors:
        return dict(tensors)
    n = world_size()
    if differentiable:
        return {k: _AllReduceSum.apply(t) / n for k, t in tensors.items()}
    # one flat buffer per dtype and device: one collective instead of one per tensor
    out: dict[str, torch.Tensor] = {}
    groups: dict[tuple[Any, Any], list[str]] = {}
    for k, t in tensors.items():
        groups.setdefault((t.dtype, t.device), []).append(k)
    for names in groups.values():
        flat = torch.cat([tensors[k].detach().reshape(-1) for k in names])
        dist.all_reduce(flat)
        flat /= n
        for k, piece in zip(names, flat.split([tensors[k].numel() for k in names])):
            t = tensors[k]  # a channels-last gradient stays channels-last, as its parameter is
            out[k] = piece.view(t.shape) if t.is_contiguous() else torch.empty_like(t).copy_(piece.view(t.shape))
    return {k: out[k] for k in tensors}


class _AllReduceSum(torch.autograd.Function):
    """The sum over ranks, differentiable to any order: the gradient of all ranks' losses with
    respect to one rank's input is the sum over ranks of the incoming gradients, an all-reduce
    again (differentiable in turn, for double backward).

    torch.distributed.nn's ``all_reduce`` computes the same but is deprecated, and, when first
    imported after ``init_process_group``, binds that process group as a default argument:
    ``destroy_process_group`` then cannot free it, and its gloo worker threads outlive the
    interpreter, which aborted a rank at exit (SIGABRT) in 13 of 30 two-rank runs of the two
    methods that differentiate through it.
    """

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        out = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


def mean_floats(values: Mapping[str, float]) -> dict[str, float]:
    """The mean over ranks of each number (losses and metrics of a rank's shard)."""
    if not active() or not values:
        return dict(values)
    names = list(values)
    t = torch.tensor([float(values[k]) for k in names], dtype=torch.float64, device=_collective_device())
    return dict(zip(names, (float(v) for v in all_reduce_mean({"v": t})["v"].cpu())))


def average_gradients(named: Mapping[str, torch.nn.Parameter]) -> None:
    """Replace each ``.grad`` by its mean over ranks (parameters without one are skipped: every
    rank leaves the same ones out, since all run the same network on the same-shaped batch)."""
    have = {k: p for k, p in named.items() if p.grad is not None}
    for k, g in all_reduce_mean({k: p.grad for k, p in have.items()}).items():
        have[k].grad = g


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is set on any rank (e.g. an interrupt: all ranks stop at the same step)."""
    if not active():
        return flag
    t = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_collective_device())
    return box[0]


def _collective_device() -> torch.device:
    return torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else torch.device("cpu")


def check_batch(batch_size: int, world: int, what: str = "data.batch_size") -> None:
    """The global batch must split evenly over the ranks."""
    if batch_size % world:
        raise ConfigError(f"{what}={batch_size} does not divide by the number of processes {world}; "
                          f"give a batch size that is a multiple of {world}")


def check_world_size(saved: int | None, where: Any) -> None:
    """A run resumes only at the world size it was started with (the optimizer states, data shards
    and RNG states are those of that many ranks)."""
    saved, now = int(saved or 1), world_size()
    if saved != now:
        raise ConfigError(f"{where}: the run was started with {saved} process(es), this resume has {now}; "
                          f"resume with --nproc {saved}" if saved > 1 else
                          f"{where}: the run was started with 1 process, this resume has {now}; resume without --nproc")


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m nas_llv ARGV`` as ``nproc`` ranks on this machine (torchrun's standalone
    rendezvous); returns the first failed rank's exit status, else 0. The ranks share this
    process's standard streams; each gets an equal share of the CPU threads."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from nas_llv.device import available_cores

    if launched():
        raise ConfigError("--nproc inside torchrun: torchrun already started the processes; drop --nproc")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // nproc)))
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed.elastic")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the ranks report their own errors and stops
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "nas_llv", *argv)
    except ChildFailedError as exc:
        codes = [f.exitcode for _, f in sorted(exc.failures.items())]
        return next((c for c in codes if c > 0), 1)
    except SignalException:  # Ctrl-C: the ranks got one SIGINT each, checkpointed and said how to resume
        return 130
    return 0


def resume_hint(command: str, run: Any) -> str:
    """The command that continues ``run``, at this run's world size."""
    return f"nas-llv {command} --resume {run}" + (f" --nproc {world_size()}" if world_size() > 1 else "")


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (what the ranks themselves run)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out
