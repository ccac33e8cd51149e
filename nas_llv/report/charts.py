"""Line charts for the report, drawn by plotly (interactive, its script inlined once per page) or,
where plotly is not installed, by matplotlib as embedded PNGs.

A ``Chart`` is plain data (a title, axis names, lines); a renderer turns it into an HTML fragment,
so what the report plots is decided once, whatever draws it.
"""
from __future__ import annotations

import base64
import html
import importlib.util
from dataclasses import dataclass
from typing import Sequence

from nas_llv.config import ConfigError

INSTALL = "pip install -e '.[report]'"
BACKENDS = ("auto", "plotly", "matplotlib")


@dataclass(frozen=True)
class Series:
    """One line: ``y`` against ``x`` (equal lengths, no NaN)."""

    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    title: str
    ylabel: str
    series: tuple[Series, ...]
    xlabel: str = "step"
    hline: float | None = None  # a dotted reference line (uniform probability 1/n)


def pick_backend(name: str = "auto") -> str:
    """'plotly' where it is installed (``auto``), else 'matplotlib'; asking for plotly without it
    is one line saying how to install it."""
    if name not in BACKENDS:
        raise ConfigError(f"--plots {name}: not allowed; allowed: {', '.join(BACKENDS)}")
    has_plotly = importlib.util.find_spec("plotly") is not None
    if name == "plotly" and not has_plotly:
        raise ConfigError(f"--plots plotly: plotly is not installed; {INSTALL}")
    return "plotly" if name == "plotly" or (name == "auto" and has_plotly) else "matplotlib"


def renderer(backend: str) -> PlotlyRenderer | PngRenderer:
    return PlotlyRenderer() if backend == "plotly" else PngRenderer()


class PlotlyRenderer:
    """Each chart a ``<div class="chart plotly-chart">`` drawn by plotly.js, which ``head()``
    inlines (no network needed to open the page)."""

    backend = "plotly"

    def __init__(self) -> None:
        self.count = 0

    def head(self) -> str:
        from plotly.offline import get_plotlyjs

        return f'<script type="text/javascript">{get_plotlyjs()}</script>'

    def render(self, chart: Chart) -> str:
        import plotly.graph_objects as go

        fig = go.Figure([go.Scatter(x=list(s.x), y=list(s.y), mode="lines", name=s.name) for s in chart.series])
        if chart.hline is not None:
            fig.add_hline(y=chart.hline, line_dash="dot", line_color="grey", line_width=1)
        fig.update_layout(title={"text": chart.title, "font": {"size": 13}}, xaxis_title=chart.xlabel, yaxis_title=chart.ylabel, height=340,
                          margin={"l": 60, "r": 20, "t": 50, "b": 50}, template="plotly_white",
                          showlegend=len(chart.series) > 1, legend={"font": {"size": 10}})
        self.count += 1
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{self.count}",
                          config={"displaylogo": False, "responsive": True})
        return f'<div class="chart plotly-chart">{div}</div>'


class PngRenderer:
    """Each chart a matplotlib PNG in an ``<img class="chart png-chart">`` (a data: URL)."""

    backend = "matplotlib"

    def head(self) -> str:
        return ""

    def render(self, chart: Chart) -> str:
        from nas_llv.plotting import Figure, png_bytes

        fig = Figure(figsize=(5.6, 3.4), layout="constrained")
        ax = fig.add_subplot()
        for s in chart.series:
            ax.plot(s.x, s.y, label=s.name)
        if chart.hline is not None:
            ax.axhline(chart.hline, color="grey", lw=0.8, ls=":")
        ax.set(title=chart.title, xlabel=chart.xlabel, ylabel=chart.ylabel)
        if len(chart.series) > 1:
            ax.legend(fontsize="x-small")
        return image_tag(png_bytes(fig), chart.title, "chart png-chart")


def image_tag(data: bytes, alt: str, css: str = "", mime: str = "image/png") -> str:
    """An ``<img>`` holding ``data`` as a data: URL (the page stays one self-contained file)."""
    src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<img class="{css}" alt="{html.escape(alt)}" src="{src}">'


def charts_html(charts: Sequence[Chart], draw: PlotlyRenderer | PngRenderer) -> str:
    """The charts side by side, wrapping (``.charts`` is a flex row)."""
    return '<div class="charts">' + "".join(draw.render(c) for c in charts) + "</div>" if charts else ""
