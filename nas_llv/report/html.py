"""The report's HTML: one page shell (styles inline), sections, and tables from pandas."""
from __future__ import annotations

import html
from datetime import datetime
from typing import Sequence

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1500px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; } .note { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.kv td { text-align: left; max-width: 1100px; word-break: break-word; } table.kv td:first-child { white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { width: 460px; max-width: 100%; }
img.chart { height: auto; } .drawing { width: 740px; max-width: 100%; height: auto; }
.samples { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.samples figure { margin: 0; } .samples img { width: 300px; height: auto; }
figcaption { font-size: 0.8em; color: #555; }
"""


def page(title: str, body: Sequence[str], head: str = "") -> str:
    """A whole HTML document; ``head`` holds scripts the body needs (plotly.js, inline)."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>{head}</head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"note\">written by nas-llv report, {stamp}</p>"
            + "".join(body) + "</body></html>\n")


def section(title: str, *parts: str, level: int = 2) -> str:
    """A heading and its parts; empty parts are left out, and a section with none is empty."""
    parts = tuple(p for p in parts if p)
    return f"<h{level}>{html.escape(title)}</h{level}>" + "".join(parts) if parts else ""


def escape(text: object) -> str:
    return html.escape(str(text))


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def table(frame: pd.DataFrame, index: bool = False, digits: int = 4, css: str = "") -> str:
    """``frame`` as an HTML table, floats to ``digits`` decimals, missing cells as '-'."""
    return frame.to_html(index=index, na_rep="-", border=0, float_format=lambda v: f"{v:.{digits}f}",
                         escape=True, classes=css or None)


def key_values(pairs: dict[str, object]) -> str:
    """A two-column table of ``{name: value}``."""
    frame = pd.DataFrame({"": list(pairs), "value": [str(v) for v in pairs.values()]})
    return table(frame, css="kv")
