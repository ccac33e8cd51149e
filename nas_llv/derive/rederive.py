"""``nas-llv derive RUN --max-skip M``: a search run's genotype derived again from its final α with at
most M skip ops per cell (P-DARTS, ``space/skip_cap.py``), written beside ``genotype.yaml`` (never
over it) as ``genotype_max_skip_<M>.yaml``."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from nas_llv.config import ConfigError
from nas_llv.layout import RunLayout
from nas_llv.safe_load import load_torch_file
from nas_llv.recipe import recipe_from_dict
from nas_llv.space.genotype import Genotype
from nas_llv.space.models import build_search_network
from nas_llv.space.skip_cap import capped
from nas_llv.space.supernet import genotype_of, probs_of


def final_supernet(run: Path, geno: Genotype) -> nn.Module:
    """The supernet of ``run`` (whose ``genotype.yaml`` is ``geno``) at the α and weights of its last
    checkpoint, mixing with the relaxation its recipe searched with."""
    path = RunLayout(run).checkpoint_path()
    if not path.is_file():
        raise ConfigError(f"{run}: no {path.relative_to(run)}; --max-skip derives from the final α of a search run")
    state = load_torch_file(path, "nas-llv checkpoint")
    if not isinstance(state, dict) or state.get("kind") != "search":
        raise ConfigError(f"{path}: not a search checkpoint; --max-skip derives from the final α of a search run")
    search = recipe_from_dict(state["config"], str(path)).search
    if search.kind == "multi_trial":
        raise ConfigError(f"{run}: a {search.strategy} search; its α is one-hot on the last candidate drawn, so a skip cap "
                          f"has nothing to rank (its genotype.yaml is the best candidate)")
    net = build_search_network(geno.network, geno.spaces, merge_edges=False, relaxation=search.relaxation).net
    net.load_state_dict(state["network"])
    return net


def rederive(run: Path, geno: Genotype, max_skip: int) -> tuple[Path, Genotype]:
    """The argmax genotype of ``run``'s final α with at most ``max_skip`` skip ops per cell, saved
    as ``genotype_max_skip_<max_skip>.yaml`` in ``run``; its meta lists the edges the cap changed."""
    net, folder = final_supernet(run, geno), RunLayout(run)
    choices, record = capped(genotype_of(net), probs_of(net), geno.network, geno.spaces, max_skip)
    last = folder.checkpoint_path().relative_to(folder.dir).as_posix()  # checkpoints/last.pt
    out = Genotype(dict(geno.network), dict(geno.spaces), choices, {**geno.meta, **record, "derived_from": last})
    return out.save(folder.capped_genotype_path(max_skip)), out
