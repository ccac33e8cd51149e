"""A derived network and the search that found it, in lines of text: the genotype, params, FLOPs,
and for a search run its diagnostics (``margins``) and cost. ``nas-llv derive`` prints them in
full (``genotype_lines``, ``search_lines``); a search ends by logging the short form
(``search_summary``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn

from nas_llv.config import load_yaml
from nas_llv.derive.margins import candidate_lines, edge_margins, margin_lines, noise_line, settle_line
from nas_llv.layout import RunLayout
from nas_llv.reference import REFERENCE_SIZE
from nas_llv.results import PROB, load_trajectory_wide
from nas_llv.space.genotype import Genotype, genotype_scale, load_genotype, module_prefix


def network_line(geno: Genotype) -> str:
    """``network: ruas variant=ruas ...``, and the scale of a super-resolution network."""
    scale = genotype_scale(geno)
    return (f"network: {geno.network.get('type', 'single')}"
            + "".join(f" {k}={v}" for k, v in geno.network.items() if k != "type")
            + (f" (super-resolution x{scale})" if scale != 1 else ""))


def genotype_lines(geno: Genotype, net: nn.Module, size: tuple[int, int] | None) -> list[str]:
    """What ``nas-llv derive`` prints first: the network, a line per label, params, and the FLOPs
    at ``size`` (width, height; None: not counted)."""
    lines = [network_line(geno), *(f"  {label:18s} {op}" for label, op in geno.choices.items()),
             f"params: {sum(p.numel() for p in net.parameters()):,}"]
    return lines if size is None else [*lines, flops_line(net, size, genotype_scale(geno))]


def flops_line(net: nn.Module, size: tuple[int, int], scale: int = 1) -> str:
    """FLOPs of one forward pass on a ``size`` (width, height) input: the LR size of an SR network."""
    import torch

    from nas_llv.metrics import count_flops

    flops = count_flops(net, torch.rand(1, 3, size[1], size[0]))
    at = f"{size[0]}x{size[1]}" + (f" input (output {scale * size[0]}x{scale * size[1]})" if scale != 1 else "")
    return f"FLOPs at {at}: {flops / 1e9:.3f} G ({flops / 2e9:.3f} GMAC)"


def module_choices(geno: Genotype) -> dict[str, dict[str, str]]:
    """Module name -> its choices ``{label without the module's prefix: op}``; labels of no module
    (none in the shipped networks) under 'other'."""
    out: dict[str, dict[str, str]] = {}
    left = dict(geno.choices)
    for name in geno.spaces:
        prefix = module_prefix(geno.network, name)
        mine = [label for label in left if label.startswith(prefix)]
        if mine:
            out[name] = {label[len(prefix):]: left.pop(label) for label in mine}
    return {**out, **({"other": left} if left else {})}


def search_lines(folder: Path) -> list[str]:
    """The diagnostics of the search that wrote ``folder`` (``margins``): each edge's margin and when
    α settled, or a random search's best candidates; none for other folders."""
    wide = _search_trajectory(folder)
    if wide is None:
        return []
    candidates = RunLayout(folder).candidates_path
    return candidate_lines(candidates) if candidates.is_file() else margin_lines(wide)


def search_summary(run_dir: str | Path, size: tuple[int, int] = REFERENCE_SIZE) -> list[str]:
    """The lines a finished search ends with: its genotype per module (edge: op), params, FLOPs at
    ``size``, the edges that chose within noise and when α settled (a random search: its best
    candidate), and the genotype's cost where ``search.cost`` is on."""
    run_dir, run = Path(run_dir), RunLayout(run_dir)
    geno = load_genotype(run.genotype_path)
    net = geno.build()
    lines = [network_line(geno)]
    width = max((len(name) for name in module_choices(geno)), default=0)
    lines += [f"{name + ':':{width + 1}s} " + ", ".join(f"{label}: {op}" for label, op in choices.items())
              for name, choices in module_choices(geno).items()]
    lines += [f"params: {sum(p.numel() for p in net.parameters()):,}", flops_line(net, size, genotype_scale(geno))]
    lines += _diagnostics(run_dir)
    cost = cost_line(geno, load_yaml(run.config_path).get("search") or {})
    return [f"search summary (every edge's margin: nas-llv derive {run_dir}):",
            *(f"  {line}" for line in [*lines, *([cost] if cost else [])])]


def _diagnostics(run_dir: Path) -> list[str]:
    """Within noise and settling in two lines, or a random search's best candidate."""
    wide = _search_trajectory(run_dir)
    if wide is None:
        return []
    candidates = RunLayout(run_dir).candidates_path
    if candidates.is_file():
        return candidate_lines(candidates, shown=1)
    table = edge_margins(wide)
    return [noise_line(table, named=True), settle_line(table, int(wide["epoch"].max()))]


def _search_trajectory(folder: Path) -> pd.DataFrame | None:
    """``folder``'s wide trajectory when a search with choices wrote it, else None."""
    if not RunLayout(folder).trajectory_path.is_file():
        return None
    wide = load_trajectory_wide(folder)
    return wide if any(c.startswith(PROB) for c in wide.columns) else None


def cost_line(geno: Genotype, search: dict) -> str | None:
    """The genotype's cost (``meta.cost``, docs/cost.md) against ``search.cost.target``; None when
    the search measured no cost."""
    cost = geno.meta.get("cost")
    if not isinstance(cost, dict):
        return None
    target = (search.get("cost") or {}).get("target")
    line = f"cost: {cost['value']:.4g} {cost['unit']} at {cost['size']} ({cost['type']})"
    if target is None:
        return f"{line}, no target"
    return f"{line}, target {target:g}: " + ("over it" if cost["value"] > target else "within it")
