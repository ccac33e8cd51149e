"""The ``speed:`` options of a recipe applied to a network and its batches (docs/speed.md).

``amp_context`` gives the autocast context of ``speed.amp`` (bf16 on CPU and CUDA),
``channels_last_batch`` moves a batch to channels-last memory format, and ``apply_speed`` puts a
network in that format and compiles its modules with ``torch.compile``, falling back to eager
mode with one log line where it cannot (no compiler, an unsupported op).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from torch.utils._pytree import tree_map_only

log = logging.getLogger(__name__)


def amp_context(amp: str | None, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the autocast context for ``amp`` (None: no autocast)."""
    if amp is None:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


def channels_last_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch with its image tensors (4-d) in channels-last memory format."""
    return {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.dim() == 4 else v
            for k, v in batch.items()}


#: the torch.compile backend of ``speed.compile`` (tests swap in others)
COMPILE_BACKEND = "inductor"


def apply_speed(net: nn.Module, speed: Any, device: torch.device, where: str
                ) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """``speed.channels_last`` and ``speed.compile`` on ``net`` (in place); returns the autocast
    context factory of ``speed.amp``. ``where`` names the command (``search`` or ``train``)."""
    if speed.uses_channels_last(where):
        net.to(memory_format=torch.channels_last)
    if speed.cuda_graphs and not speed.graphs(device):
        log.warning("%s: speed.cuda_graphs needs a CUDA device; on %s the %s runs %s", where, device.type, where,
                    "compiled, without graphs" if speed.compile else "eagerly")
    if speed.compiles(device):
        compile_modules([m for m in net.children() if any(True for _ in m.parameters())], where,
                        graphs=speed.graphs(device))
    return amp_context(speed.amp, device)


def foreach_steps(optimizers: Iterable[Any]) -> None:
    """Each torch optimizer among ``optimizers`` (or among a composite one's ``parts``; None skipped)
    steps all its tensors with one foreach kernel per operation instead of a loop over them (in
    place, before its first step: torch's default on CPU is the loop, on CUDA already foreach). A
    search turns it on for every path: on CPU Adam's and SGD's foreach steps are the loop's bit for
    bit (tests/search/test_foreach_steps.py) with a handful of operators per step instead of about
    eight per weight, which on a GPU would each be a launch (benchmarks/README.md)."""
    for opt in optimizers:
        for o in opt.parts.values() if hasattr(opt, "parts") else [opt]:
            if isinstance(o, torch.optim.Optimizer) and "foreach" in o.defaults:
                for group in o.param_groups:
                    group["foreach"] = not group.get("fused")


def compile_modules(modules: Iterable[nn.Module], where: str, graphs: bool = False) -> None:
    """Each module's ``forward`` compiled by ``torch.compile`` (in place: parameter names, state
    dicts and functional calls are unchanged). Compiling happens at the first call; where it fails
    (no C++ compiler for inductor, an unsupported op) every module runs eagerly from then on, after
    one log line naming ``where``. Each module gets its own cache of compiled graphs where torch
    can (``isolate_recompiles``): modules of one class share a code object, whose one cache would
    hold every instance's graphs (CollaBA's four part choices, one ``MixedPart.forward``, fill
    dynamo's 8 entries in the first iteration and the rest then run eagerly, unnoticed).

    ``graphs``: compile in ``reduce-overhead`` mode, which captures each compiled forward and
    backward as a CUDA graph (CUDA only), and clone each call's output tensors (``graph_outputs``)."""
    fallback = {"eager": False}
    isolate = "isolate_recompiles" in inspect.signature(torch.compile).parameters  # not in older torch
    options: dict[str, Any] = {"isolate_recompiles": True} if isolate else {}
    if graphs:
        options["mode"] = "reduce-overhead"
    for m in modules:
        eager = m.forward
        m.forward = compiled_call(torch.compile(eager, backend=COMPILE_BACKEND, **options), eager, where, fallback,
                                  clone=graphs)


def graph_outputs(out: Any) -> Any:
    """``out`` with each tensor cloned. A CUDA graph's replay writes its outputs into memory that the
    next replay reuses (torch's "cudagraph trees": a new generation starts at every call without
    grad, and at a forward with no backward pending). The search holds outputs across calls (the
    scene module's ``t`` and ``u``, which its loss reads after the denoiser has run on ``u``), so
    each call hands out its own copies; autograd goes through the clone into the graph's backward."""
    return tree_map_only(torch.Tensor, torch.clone, out)


def new_graph_step(graphs: bool) -> None:
    """With ``graphs``: tell torch's CUDA graphs that an iteration begins
    (``torch.compiler.cudagraph_mark_step_begin``), so the memory of the previous iteration's replays
    is reused. Torch guesses this itself at a call with no backward pending; a search whose steps
    leave a backward uninvoked (a gradient asked for some inputs only) would defeat that guess. Safe
    because every graphed call's outputs are clones (``graph_outputs``)."""
    if graphs:
        torch.compiler.cudagraph_mark_step_begin()


def compiled_call(fn: Callable[..., Any], eager: Callable[..., Any], where: str,
                  fallback: dict[str, bool], clone: bool = False) -> Callable[..., Any]:
    """``fn`` (compiled), or ``eager`` once any compiled call sharing ``fallback`` has failed to
    compile (the first failure logs one line). ``clone``: the compiled call's outputs are cloned
    (``graph_outputs``)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        if fallback["eager"]:
            return eager(*args, **kwargs)
        try:
            out = fn(*args, **kwargs)
            return graph_outputs(out) if clone else out
        except Exception as exc:  # noqa: BLE001 - only compiler failures fall back, see below
            if not _is_compile_error(exc):
                raise
            log.warning("%s: torch.compile failed (%s); running eagerly", where, _first_line(exc))
            fallback["eager"] = True
            return eager(*args, **kwargs)
    return call


def _is_compile_error(exc: BaseException) -> bool:
    try:
        from torch._dynamo.exc import BackendCompilerFailed, TorchDynamoException
    except Exception:  # noqa: BLE001
        return False
    return isinstance(exc, (BackendCompilerFailed, TorchDynamoException))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
