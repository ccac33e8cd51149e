"""The sections of one run folder's report: what the run is, its genotype (a table with each
edge's margin, and the cells drawn), its trajectory charts and α, its evaluations and samples."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nas_llv.report import html
from nas_llv.report.charts import PlotlyRenderer, PngRenderer, charts_html, image_tag
from nas_llv.report.samples import evaluation_sections
from nas_llv.report.trajectory import alpha_charts, entropy_charts, prob_columns, scalar_charts
from nas_llv.results import PROB
from nas_llv.runview import RunFolder, read_wide

Renderer = PlotlyRenderer | PngRenderer


def is_run(folder: Path) -> bool:
    view = RunFolder(folder)
    return view.config_path.is_file() or view.trajectory_path.is_file()


def run_sections(folder: Path, draw: Renderer, samples: int = 3) -> list[str]:
    """Every section of ``folder``'s report, in page order."""
    wide = read_wide(folder)  # None: no step yet
    search = wide is not None and any(c.startswith(PROB) for c in wide.columns)
    out = [html.section("run", html.key_values(overview(folder, wide)))]
    if wide is not None:
        out.append(html.section("trajectory", charts_html(scalar_charts(wide), draw)))
    out.append(genotype_section(folder, wide))
    if search:
        out.append(alpha_section(wide, draw))
    return [*out, *evaluation_sections(folder, samples)]


def overview(folder: Path, wide: pd.DataFrame | None) -> dict[str, object]:
    view = RunFolder(folder)  # read only: Run(folder) would tidy a torn trajectory line
    facts: dict[str, object] = {"folder": folder.resolve(), "kind": view.kind, "status": view.status}
    if wide is not None and len(wide):
        facts.update(steps=view.steps, epochs=int(wide["epoch"].max()) if "epoch" in wide else "-")
        if "seconds" in wide.columns and wide["seconds"].notna().any():
            facts["seconds"] = f"{float(wide['seconds'].max()):.1f}"
    if view.config_path.is_file():
        from nas_llv.config import load_yaml

        config = load_yaml(view.config_path)
        facts.update({k: _brief(config.get(k)) for k in ("name", "seed", "network", "data") if k in config})
    return facts


def _brief(value: object) -> str:
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def genotype_section(folder: Path, wide: pd.DataFrame | None) -> str:
    """The genotype's op per label (with a search's margins, when α settled) and its cells drawn."""
    path = RunFolder(folder).genotype_file
    if path is None:
        return ""
    from nas_llv.space.genotype import load_genotype

    geno = load_genotype(path)
    frame = pd.DataFrame({"label": list(geno.choices), "op": list(geno.choices.values())})
    notes = ""
    if wide is not None and prob_columns(wide) and not RunFolder(folder).candidates_path.is_file():
        from nas_llv.derive.margins import edge_margins, noise_line, settle_line

        margins = edge_margins(wide)
        frame = frame.join(margins.drop(columns="top"), on="label")
        notes = html.note(f"{noise_line(margins, named=True)}; {settle_line(margins, int(wide['epoch'].max()))}")
    return html.section("genotype", html.table(frame), notes, drawings(geno))


def drawings(geno: object) -> str:
    """Each module's derived cell, drawn as ``nas-llv derive --draw`` draws it."""
    from nas_llv.plotting import png_bytes
    from nas_llv.space.draw import DPI, cell_figure
    from nas_llv.space.genotype import module_prefix

    tags = []
    for name, spec in geno.spaces.items():  # type: ignore[attr-defined]
        prefix = module_prefix(geno.network, name)  # type: ignore[attr-defined]
        choices = {k[len(prefix):]: v for k, v in geno.choices.items() if k.startswith(prefix)}  # type: ignore[attr-defined]
        fig = cell_figure(spec.cell, f"derived {name}", choices)
        tags.append(image_tag(png_bytes(fig, dpi=DPI), f"derived cell of {name}", "drawing"))
    return "<div>" + "".join(tags) + "</div>"


def alpha_section(wide: pd.DataFrame, draw: Renderer) -> str:
    """Per module, each edge's op probabilities against step; then the edges' entropies."""
    parts = [html.section(module or "edges", charts_html(charts, draw), level=3)
             for module, charts in alpha_charts(wide).items()]
    parts.append(html.section("entropy", charts_html(entropy_charts(wide), draw), level=3))
    return html.section("architecture parameters α (op probabilities per edge)", *parts)
