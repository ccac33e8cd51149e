"""The command line goes through the pipeline (docs/architecture.md): a module of nas_llv/commands/
imports ``nas_llv.pipeline`` and nothing below it, bar the short list of light command-line
pieces below, each with its reason. Every import counts: inside functions and under
``TYPE_CHECKING`` too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMMANDS = Path(__file__).resolve().parents[1] / "nas_llv" / "commands"

# module -> the names a command may import from it (None: the module itself, ``import M``/``from P import M``)
ALLOWED = {
    "nas_llv.pipeline": None,  # the Python API: what a command parses its arguments into
    "nas_llv.commands": None,  # the commands' own helpers (_job.py, _images.py)
    "nas_llv.config": {"ConfigError"},  # a command's own argument checks fail as every user error does
    "nas_llv.registry": {"COMMANDS"},  # how a command registers its parser
    # constants a parser shows in its help or takes as a default; their modules import no torch
    "nas_llv.reference": {"REFERENCE_SIZE", "size_text"},
    "nas_llv.device": {"DEVICES"},
    "nas_llv.sweep": {"INSTALL", "OVER_LIMIT", "SEEDS_DEFAULT"},
    # the exit status of a run a signal stopped (130, 143): the process's, so the command line's
    "nas_llv.signals": {"exit_status"},
    # --nproc relaunches the command itself under torchrun, which stays on the command line
    "nas_llv.distributed": None,
}


def _imports(source: str) -> list[tuple[str, str | None]]:
    """(module, name) of every nas_llv import in ``source``: ``from M import n`` gives (M, n) and,
    where n is a submodule (``from nas_llv import pipeline``), also (M.n, None); ``import M`` (M, None)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nas_llv"):
            for alias in node.names:
                found.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("nas_llv")]
    return found


def _allowed(module: str, name: str | None) -> bool:
    if module == "nas_llv" and name is not None:  # from nas_llv import pipeline: the submodule itself
        module, name = f"nas_llv.{name}", None
    for top, names in ALLOWED.items():
        if module == top or module.startswith(top + "."):
            return names is None or name in names
    return False


def _wrong(source: str) -> list[str]:
    return [f"{m}{'' if n is None else ' ' + n}" for m, n in _imports(source) if not _allowed(m, n)]


@pytest.mark.parametrize("path", sorted(COMMANDS.glob("*.py")), ids=lambda p: p.name)
def test_a_command_imports_nothing_below_the_pipeline(path):
    wrong = _wrong(path.read_text())
    assert not wrong, f"{path.name} goes around nas_llv.pipeline: {', '.join(wrong)}"


@pytest.mark.parametrize("line", [
    "from nas_llv.search import loop",
    "from nas_llv.search.loop import Searcher",
    "import nas_llv.space.spec",
    "from nas_llv import runs",
    "from nas_llv.config import load_yaml",  # ConfigError alone
    "from nas_llv.sweep import plan_trials",  # the help texts' constants alone
])
def test_an_import_around_the_pipeline_is_caught(line):
    source = COMMANDS.joinpath("compare.py").read_text()
    inside = source.replace("    from nas_llv import pipeline\n", f"    from nas_llv import pipeline\n    {line}\n", 1)
    assert inside != source and _wrong(inside)  # inside a function, as commands import
    assert _wrong(f"{line}\n{source}")


def test_the_allowed_modules_load_no_torch():
    """What a parser may import at once stays light: ``nas-llv --help`` loads no torch."""
    import subprocess
    import sys

    light = [m for m in ALLOWED if m not in ("nas_llv.distributed",)]  # imported only when --nproc relaunches
    code = "import sys\n" + "".join(f"import {m}\n" for m in light) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_pipeline_names_every_step_the_commands_call():
    """Each name of ``nas_llv.pipeline.__all__`` resolves, so a command's call reaches real code."""
    from nas_llv import pipeline

    missing = [name for name in pipeline.__all__ if getattr(pipeline, name, None) is None]
    assert not missing, missing
