"""A search ends with its summary (genotype per module, params, FLOPs, edges within noise, settling,
cost) on standard error and in log.txt, while standard output keeps its one line: on real tiny
searches run by the command line."""
from __future__ import annotations

import re

import yaml

from conftest import TINY_RUAS
from nas_llv.cli import main
from nas_llv.derive.margins import edge_margins
from nas_llv.derive.summary import cost_line, module_choices
from nas_llv.metrics import count_params
from nas_llv.space.genotype import load_genotype

TINY = {**TINY_RUAS, "search": {"epochs": 2, "steps_per_epoch": 2, "val_batches": 1,
                                "hypergrad": {"type": "first_order"}, "arch": {"lr": 0.05}}}


def _search(tmp_path, capsys, *overrides: str):
    """A CLI search of the tiny recipe; its run folder, standard output and log.txt's messages."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(recipe), "--output", str(tmp_path / "out"), *overrides]) == 0
    (run,) = (tmp_path / "out").iterdir()
    log = [line.split(": ", 1)[1] for line in (run / "log.txt").read_text().splitlines()]
    return run, capsys.readouterr().out, log


def _summary(log: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(log) if line.startswith("search summary"))
    return log[start + 1:]


def test_a_search_ends_with_its_summary(tmp_path, capsys):
    run, out, log = _search(tmp_path, capsys, "search.cost={size: [48, 32], target: 0.001}")
    assert out == f"{run}\n"  # a shell's RUN=$(nas-llv search ...) still gets the folder alone
    summary = _summary(log)
    geno = load_genotype(run / "genotype.yaml")
    modules = {line.split(":")[0].strip(): line for line in summary if line.strip().startswith(("scene:", "denoise:"))}
    assert set(modules) == {"scene", "denoise"}
    for label, op in geno.choices.items():  # every edge of the written genotype, under its module
        module, edge = label.split(".", 1)
        assert f" {edge}: {op}" in modules[module]
    assert f"  params: {count_params(geno.build()):,}" in summary
    assert any(re.fullmatch(r"  FLOPs at 600x400: \d+\.\d{3} G \(\d+\.\d{3} GMAC\)", line) for line in summary)
    table = edge_margins(run)
    flagged = list(table.index[table["within_noise"]])
    noise = next(line for line in summary if "within noise" in line)
    assert noise.endswith(", ".join(flagged)) if flagged else "no edge" in noise
    assert any("to settle" in line or "had not settled" in line for line in summary)
    cost = geno.meta["cost"]
    assert summary[-1] == f"  cost: {cost['value']:.4g} GFLOPs at 48x32 (flops), target 0.001: over it"


def test_a_random_search_names_its_best_candidate(tmp_path, capsys):
    run, _, log = _search(tmp_path, capsys, "search.strategy=random")
    summary = _summary(log)
    assert any(line.startswith("  random search: 2 candidates") for line in summary)
    assert not any("within noise" in line for line in summary)  # a one-hot α has no margins to judge
    assert not any(line.startswith("  cost:") for line in summary)  # no cost term, no cost line


def test_a_stopped_search_has_no_summary_yet(tmp_path, capsys):
    *_, log = _search(tmp_path, capsys, "--stop-after", "1")
    assert not any(line.startswith("search summary") for line in log)


def test_module_choices_and_cost_line():
    from nas_llv.export.ruas_import import ruas_genotype

    geno = ruas_genotype("cvpr", "ruas")
    modules = module_choices(geno)
    assert sorted(modules) == ["denoise", "scene"]
    assert {f"{m}.{e}": op for m, edges in modules.items() for e, op in edges.items()} == geno.choices
    assert cost_line(geno, {}) is None
    priced = geno.__class__(geno.network, geno.spaces, geno.choices,
                            {"cost": {"type": "latency", "unit": "ms", "size": "600x400", "value": 1.23456}})
    assert cost_line(priced, {"cost": {"target": 2}}) == "cost: 1.235 ms at 600x400 (latency), target 2: within it"
    assert cost_line(priced, {"cost": {"target": None}}) == "cost: 1.235 ms at 600x400 (latency), no target"
