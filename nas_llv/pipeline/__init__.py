"""The pipeline as Python functions: search, resume, train, evaluate, enhance, export.

The same steps the command line runs, for a notebook or a script; each ``nas-llv`` command parses
its arguments, calls one of these and prints what it returns::

    from nas_llv import pipeline as p
    run = p.search("recipes/ruas_demo.yaml", ["search.epochs=2"])    # a Run: run.dir is its folder
    trained = p.train(run, "recipes/ruas_demo_train.yaml", ["train.steps=50"])
    summary = p.evaluate(trained, "../shared/data/mit5")             # summary.psnr, summary.metrics (a DataFrame)
    p.enhance(trained, "../shared/data/mit5/low", "out/enhanced/", engine="fast")
    p.export(trained, "out/model.onnx")

A long job (search, train) runs in its run folder as the command's does: progress on standard
error and in the run's log.txt, a checkpoint at ``stop_after`` and on Ctrl-C (``resume(run)``
continues it). Bad input raises ``ConfigError`` (one line: the file, the key, what is allowed)
before anything is written.
"""
from __future__ import annotations

from nas_llv.evaluation.options import EvalOptions
from nas_llv.pipeline.steps import (EXPORT_TOLERANCE, Exported, Summary, enhance, evaluate, export, resume, search,
                                    train)
from nas_llv.pipeline.trials import SweepOptions, sweep
from nas_llv.runs import Run

__all__ = ["EXPORT_TOLERANCE", "EvalOptions", "Exported", "Run", "Summary", "SweepOptions", "enhance", "evaluate",
           "export", "resume", "search", "sweep", "train"]
