"""The pipeline as Python functions: search, resume, train, evaluate, enhance, export, and the
smaller steps on files (derive, sample, import_ruas, space_show, space_draw, compare, ...).

The same steps the command line runs, for a notebook or a script; each ``nas-llv`` command parses
its arguments, calls one of these and prints what it returns::

    from nas_llv import pipeline as p
    run = p.search("recipes/ruas_demo.yaml", ["search.epochs=2"])    # a Run: run.dir is its folder
    print("\\n".join(p.derive(run).lines))                            # ops, params, FLOPs, margins
    trained = p.train(run, "recipes/ruas_demo_train.yaml", ["train.steps=50"])
    summary = p.evaluate(trained, "../shared/data/mit5")             # summary.psnr, summary.metrics (a DataFrame)
    p.enhance(trained, "../shared/data/mit5/low", "out/enhanced/", engine="fast")
    p.export(trained, "out/model.onnx")

A long job (search, train) runs in its run folder as the command's does: progress on standard
error and in the run's log.txt, a checkpoint at ``stop_after`` and on Ctrl-C (``resume(run)``
continues it). Bad input raises ``ConfigError`` (one line: the file, the key, what is allowed)
before anything is written.

A name is imported when it is first used (PEP 562), so ``nas-llv runs`` and ``compare``, which go
through here too, load no torch, and an argument parser may read ``KINDS`` from here.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# where each name of the API is defined: a module of this package, or (dotted) one below it
_WHERE = {
    **dict.fromkeys(("EXPORT_TOLERANCE", "Exported", "Summary", "enhance", "evaluate", "export", "resume", "search",
                     "train"), ".steps"),
    **dict.fromkeys(("SweepOptions", "sweep"), ".trials"),
    **dict.fromkeys(("Derived", "Sampled", "derive", "sample"), ".genotypes"),
    **dict.fromkeys(("KINDS", "SpaceSummary", "listing", "space_draw", "space_show"), ".spaces"),
    **dict.fromkeys(("Comparison", "Imported", "NoiseFit", "compare", "fit_noise", "import_ruas", "report"),
                    ".files"),
    "EvalOptions": "nas_llv.evaluation.options",
    "Run": "nas_llv.runs",
    **dict.fromkeys(("Recipe", "load_recipe"), "nas_llv.recipe"),
    **dict.fromkeys(("RunRow", "list_runs", "table_lines"), "nas_llv.runlist"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what a type checker and an editor see: the same names, imported at once
    from nas_llv.evaluation.options import EvalOptions
    from nas_llv.pipeline.files import Comparison, Imported, NoiseFit, compare, fit_noise, import_ruas, report
    from nas_llv.pipeline.genotypes import Derived, Sampled, derive, sample
    from nas_llv.pipeline.spaces import KINDS, SpaceSummary, listing, space_draw, space_show
    from nas_llv.pipeline.steps import (EXPORT_TOLERANCE, Exported, Summary, enhance, evaluate, export, resume,
                                        search, train)
    from nas_llv.pipeline.trials import SweepOptions, sweep
    from nas_llv.recipe import Recipe, load_recipe
    from nas_llv.runlist import RunRow, list_runs, table_lines
    from nas_llv.runs import Run
