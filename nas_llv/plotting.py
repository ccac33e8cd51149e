"""Matplotlib, quietly: figures drawn on the Agg canvas, no chatter.

Import ``Figure`` and ``save_png`` from here rather than from matplotlib. The first import of
matplotlib builds a font cache and logs about it ("Matplotlib is building the font cache",
"generated new fontManager"); that happens here with matplotlib's font logger held at ERROR.
The user's matplotlib configuration (``MPLCONFIGDIR``, matplotlibrc) is left alone. Figures are
drawn on ``FigureCanvasAgg`` directly: no pyplot state, and the process-wide backend (a
notebook's, say) is left as it is.
"""
from __future__ import annotations

import logging
from pathlib import Path


def _import_quietly() -> None:
    fonts = logging.getLogger("matplotlib.font_manager")
    level = fonts.level
    fonts.setLevel(logging.ERROR)
    try:
        import matplotlib.font_manager  # noqa: F401  (loads, or on first use builds, the font cache)
    finally:
        fonts.setLevel(level)


_import_quietly()

from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402

from nas_llv.atomic import atomic_write  # noqa: E402

__all__ = ["Figure", "png_bytes", "save_png", "text_size"]


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Render ``fig`` on the Agg canvas and write it to ``path`` atomically."""
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi))


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """``fig`` rendered on the Agg canvas as PNG bytes (for a page that embeds its images)."""
    import io

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def text_size(text: str, fontsize: float, linespacing: float = 1.2) -> tuple[float, float]:
    """Width and height in points of ``text`` (lines split on newlines) as Agg draws it."""
    renderer, prop = RendererAgg(1, 1, 72), FontProperties(size=fontsize)
    lines = text.split("\n")
    width = max(renderer.get_text_width_height_descent(line, prop, ismath=False)[0] for line in lines)
    return width, fontsize * (1 + linespacing * (len(lines) - 1))
