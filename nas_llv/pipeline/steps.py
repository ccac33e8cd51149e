"""The steps of the pipeline as functions (``nas_llv.pipeline`` re-exports them): the long jobs
search, train and resume, which run in a run folder, and evaluate, enhance and export, which
work on a fixed network."""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from nas_llv.config import ConfigError
from nas_llv.diskfull import DiskFull
from nas_llv.evaluation.options import EvalOptions
from nas_llv.layout import RunLayout
from nas_llv.runs import Run
from nas_llv.tiles import MAX_PIXELS, check_tile

if TYPE_CHECKING:
    import pandas as pd

    from nas_llv.enhance import EnhanceResult
    from nas_llv.job import Job
    from nas_llv.recipe import Recipe
    from nas_llv.space.genotype import Genotype

log = logging.getLogger("nas_llv")

RunOrPath = Run | str | Path


# -- long jobs: search and train --------------------------------------------------------------------

class _UnconfiguredHandler(logging.StreamHandler):
    """Standard error for nas-llv's messages while the program has configured no logging of its
    own (no root handler): a script or notebook sees a long job's progress; once it configures
    logging, this handler steps aside and its own handlers speak."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def speak() -> None:
    """Give nas-llv's INFO messages (progress, run folders, scores) a voice in a program that set
    up no logging; the command line configures its own (idempotent)."""
    pkg = logging.getLogger("nas_llv")
    if logging.getLogger().handlers or any(isinstance(h, _UnconfiguredHandler) for h in pkg.handlers):
        return
    handler = _UnconfiguredHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pkg.addHandler(handler)
    if pkg.level == logging.NOTSET:
        pkg.setLevel(logging.INFO)


def search(recipe: str | Path | Recipe, overrides: Sequence[str] = (), output: str | Path | None = None,
           stop_after: int | None = None) -> Run:
    """Search ``recipe`` (a file, KEY=VALUE ``overrides`` applied; or a loaded ``Recipe``) in a new
    run folder under ``output`` (default: the recipe's ``output``, results/); returns the run,
    finished or stopped after ``stop_after`` steps with a checkpoint."""
    speak()
    parsed, where = _recipe(recipe, overrides)
    job, run = start_job(parsed, where, output, lambda: _searcher(parsed))
    return run_job(job, run, "search", stop_after)


def train(source: RunOrPath | Genotype, recipe: str | Path | Recipe, overrides: Sequence[str] = (),
          output: str | Path | None = None, init: str | Path | None = None, keep: str | None = None,
          stop_after: int | None = None, strict: bool | None = None) -> Run:
    """Retrain the network of ``source`` (a search run, a genotype file or a ``Genotype``, or a model
    file) at the size ``recipe``'s train: section asks for, in a new run folder; ``init``: start
    from a model file's weights; ``keep``: which weights model.pt holds (last, best); ``strict``
    (train.strict): raise ``Implausible`` when the outputs leave the plausible range."""
    speak()
    from nas_llv.retrain.trainer import Trainer, load_source, resolve_build
    from nas_llv.space.genotype import Genotype

    flags = [*([f"train.keep={keep}"] if keep else []), *([f"train.strict={strict}"] if strict is not None else [])]
    parsed, where_recipe = _recipe(recipe, [*overrides, *flags])
    given = source if isinstance(source, Genotype) else _path(source)

    def build() -> Trainer:
        genotype, base_build = (given, {}) if isinstance(given, Genotype) else load_source(given)
        where = None if isinstance(given, Genotype) else given
        return Trainer(parsed, genotype, resolve_build(parsed.train, base_build),
                       init=None if init is None else str(init), source=where)

    job, run = start_job(parsed, where_recipe, output, build)
    return run_job(job, run, "train", stop_after)


def _recipe(recipe: str | Path | Recipe, overrides: Sequence[str]) -> tuple[Recipe, str]:
    """The recipe, loaded from its file with ``overrides`` or given loaded; and what names it in errors."""
    from nas_llv.recipe import Recipe, load_recipe

    if isinstance(recipe, Recipe):
        if overrides:
            raise ConfigError("overrides apply to a recipe file; a loaded Recipe is used as it is")
        return recipe, recipe.name
    return load_recipe(str(recipe), list(overrides)), str(recipe)


def resume(run: RunOrPath, stop_after: int | None = None, kind: str | None = None) -> Run:
    """Continue a stopped search or training run from its last checkpoint, with the run's own
    config.yaml; ``kind`` (search, train): refuse a run of the other kind. The folder is checked
    (checkpoint, config, network) before anything is written to it, and a finished run is left
    as it is."""
    speak()
    path = _path(run)
    kind = kind or _checkpoint_kind(path)
    if kind == "search":
        job, opened = resume_job(path, "search", lambda recipe, run, state: _searcher(recipe))
        done = job.done()
    elif kind == "train":
        from nas_llv.retrain.trainer import Trainer
        from nas_llv.space.genotype import load_genotype

        job, opened = resume_job(path, "train", lambda recipe, run, state: Trainer(
            recipe, load_genotype(run.genotype_path), build=state.get("build")))
        done = job.done()
    else:
        raise ConfigError(f"{path}: a checkpoint of kind '{kind}'; allowed: search, train")
    with opened.closed_on_error():
        if done and opened.status == "finished":  # its end files written too: nothing to do, nothing written
            job.close()
            opened.close()
            log.info("%s: finished at step %d of %d; nothing to do", opened.dir, job.step, job.total_steps)
            return opened
        opened.begin()
    if done:  # stopped while it wrote its end files (genotype.yaml, model.pt): write them
        log.info("%s finished at step %d of %d; writing its end files", opened.dir, job.step, job.total_steps)
    else:
        log.info("resuming %s at step %d of %d", opened.dir, job.step, job.total_steps)
    return run_job(job, opened, kind, stop_after)


def _searcher(recipe: Recipe) -> Job:
    from nas_llv.search.loop import Searcher  # heavy (NNI): only once the recipe has been checked

    return Searcher(recipe)


def _checkpoint_kind(path: Path) -> str:
    """The kind ('search', 'train') of the job that wrote ``path``'s last checkpoint."""
    run = Run(Run.existing(path))
    kind = run.load_checkpoint().get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"{run.checkpoint_path()}: not a nas-llv checkpoint (no 'kind' entry)")
    return kind


def start_job(recipe: Recipe, recipe_arg: str, output: str | Path | None, build: Callable[[], Job]) -> tuple[Job, Run]:
    """A new run of the job ``build()`` makes, in ``output`` (else the recipe's output folder).

    The output folder is checked and the job built (it checks the recipe on one batch) before the
    run folder exists, so bad input leaves nothing behind; a failure while attaching removes it.
    """
    from nas_llv.paths import check_output_dir

    root = str(output or recipe.output)
    check_output_dir(root, "--output" if output else f"{recipe_arg}: output")
    job = build()
    run = _create_run(recipe, root)
    with run.discarded_on_error():
        job.attach(run)
    return job, run


def _create_run(recipe: Recipe, root: str) -> Run:
    """Rank 0 creates the run folder; in a data-parallel run the others get its name
    (``MirrorRun``: they write nothing), or stop quietly when rank 0 could not create it."""
    from nas_llv import distributed
    from nas_llv.runs import MirrorRun

    if not distributed.is_main():
        path = distributed.broadcast(None)
        if path is None:
            raise distributed.PeerFailed("rank 0 could not create the run folder")
        return MirrorRun(path, created=True)
    try:
        run = Run.create(recipe.to_dict(), recipe.name, root)
    except BaseException:
        distributed.broadcast(None)
        raise
    distributed.broadcast(str(run.dir))
    return run


def resume_job(path: str | Path, kind: str, build: Callable[[Recipe, Run, dict[str, Any]], Job]) -> tuple[Job, Run]:
    """The job of run ``path`` (whose checkpoint ``kind`` wrote), rebuilt from the run's own
    config.yaml by ``build(recipe, run, state)``, attached and restored; on any error the run is
    closed again."""
    from nas_llv import distributed
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.runs import MirrorRun

    run, state = (Run if distributed.is_main() else MirrorRun).resume(path, kind)
    with run.closed_on_error():
        distributed.check_world_size(state.get("world_size"), run.dir)
        recipe = recipe_from_dict(run.config(), str(run.config_path))
        job = build(recipe, run, state)
        job.attach(run)
        job.restore(state)
    return job, run


def run_job(job: Job, run: Run, kind: str, stop_after: int | None) -> Run:
    """``job.run(stop_after)`` in ``run``; says how to resume when it stops early or on Ctrl-C
    (which is raised again). A new run that fails before its first step, or on a full disk before
    its first checkpoint (nothing to resume), leaves no folder."""
    from nas_llv.distributed import resume_hint

    fresh = run.created and job.step == 0
    with run:
        try:
            finished = job.run(stop_after=stop_after)
        except KeyboardInterrupt:
            log.info("interrupted at step %d; continue with: %s", job.step, resume_hint(kind, run.dir))
            raise
        except BaseException as exc:
            if fresh and (job.step == 0 or (isinstance(exc, DiskFull) and job.saved_step is None)):
                run.discard()
            raise
        finally:
            job.close()
        if finished and kind == "search" and run.writes:
            _log_search_summary(run)
    if not finished:
        log.info("stopped at step %d (the end of the %s unit that passed --stop-after); continue with: %s",
                 job.step, kind, resume_hint(kind, run.dir))
    return run


def _log_search_summary(run: Run) -> None:
    """The finished search's summary (``derive/summary.py``), to standard error and log.txt; the
    run is complete already, so a summary that cannot be made is a warning, not a failure."""
    from nas_llv.derive.summary import search_summary

    try:
        lines = search_summary(run.dir)
    except Exception as exc:  # noqa: BLE001 - the genotype is written; say why the summary is missing
        log.warning("no search summary (%s: %s); nas-llv derive %s gives it", type(exc).__name__, exc, run.dir)
        return
    for line in lines:
        log.info("%s", line)


# -- a fixed network: evaluate, enhance, export -----------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """One evaluation: the mean of each metric over the images (None where a metric was not
    computed, e.g. LPIPS without its weights, or PSNR of images without ground truth), the cost,
    and every image's row in ``metrics``."""

    psnr: float | None
    ssim: float | None
    lpips: float | None
    rmse: float | None
    params: int | None  # None: the engine ran a file with no torch network (an ONNX file)
    flops: int | None  # at the first image's (input) size
    latency_s: float  # the engine's median
    metrics: pd.DataFrame  # one row per image: name, psnr, ssim, lpips, rmse (unpaired: name, niqe, brisque, ...)
    record: dict[str, Any] = field(repr=False)  # summary.json: the rules, the source, the device, ...
    out_dir: Path | None = None  # where metrics.csv and summary.json were written
    niqe: float | None = None  # images without ground truth: no-reference, lower is better
    brisque: float | None = None


def evaluate(model: RunOrPath, data: str | Path, options: EvalOptions | None = None,
             out_dir: str | Path | None = None, **option: Any) -> Summary:
    """Score ``model`` (a model file, or a run folder / ``Run`` holding model.pt) on ``data``'s
    pairs (DIR/low + DIR/high, a LOL root, or a RELLISUR root) by the rules of docs/evaluation.md,
    or on images without ground truth (inside DIR, or DIR/low alone) by NIQE and BRISQUE;
    ``options`` or keywords of ``EvalOptions`` (engine, device, lpips_net, ...). metrics.csv and
    summary.json go to ``out_dir`` (default: eval-<data name>/ beside the model)."""
    speak()
    import pandas as pd

    from nas_llv.evaluation.unpaired import evaluate_data
    from nas_llv.inference.engine import prepare
    from nas_llv.metrics.image import METRICS
    from nas_llv.paths import check_output_dir

    options = _options(options, option)
    options.check()
    if out_dir is not None:
        check_output_dir(out_dir, "--out-dir")
    prepared = prepare(_path(model), options.engine, options.device, options.output)
    where = Path(out_dir) if out_dir is not None else check_output_dir(
        RunLayout(prepared.source.parent).eval_dir(data),
        "output folder (beside the model; choose one with --out-dir)")
    from nas_llv.runlock import writing_into

    with writing_into(where):  # eval-<data>/ of a run folder: one writer at a time
        rows, record = evaluate_data(prepared, data, options, where)
    return Summary(**{k: record.get(k) for k in METRICS}, params=record["params"], flops=record["flops"],
                   latency_s=record["latency_s"], metrics=pd.DataFrame(rows, columns=list(rows[0])),
                   record=record, out_dir=where, niqe=record.get("niqe"), brisque=record.get("brisque"))


def _options(options: EvalOptions | None, given: dict[str, Any]) -> EvalOptions:
    from dataclasses import fields, replace

    allowed = {f.name for f in fields(EvalOptions)}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(f"evaluate: unknown option {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return replace(options or EvalOptions(), **given)


def enhance(model: RunOrPath, in_dir: str | Path, out_dir: str | Path, engine: str = "torch", output: str = "x",
            save: str = "round", device: str = "auto", overwrite: bool = False, progress: bool = True,
            tile: int | None = None, max_pixels: int | None = MAX_PIXELS) -> EnhanceResult:
    """Enhance every image directly inside ``in_dir`` into ``out_dir`` with ``model`` run by
    ``engine`` (nas_llv.inference.engines); a file that fails is listed in the result, the others written.
    An image too large for memory runs in tiles (``tile``: None from the free memory, 0 never;
    nas_llv.tiles); one over ``max_pixels`` (None: no limit) is refused before it is decoded."""
    speak()
    from nas_llv.enhance import check_folders, check_output_name, enhance_folder
    from nas_llv.inference.engine import prepare

    check_output_name(output)
    check_folders(in_dir, out_dir, overwrite)
    check_tile(tile)
    if save not in ("round", "truncate"):
        raise ConfigError(f"--save {save}: not allowed; allowed: round, truncate")
    prepared = prepare(_path(model), engine, device, output)
    return enhance_folder(prepared.runner, in_dir, out_dir, output=output, save=save, device=prepared.device,
                          progress=progress, tile=tile, max_pixels=max_pixels)


@dataclass(frozen=True)
class Exported:
    """An ONNX file ``export`` wrote, and how far onnxruntime's images were from torch's."""

    path: Path
    opset: int
    description: str  # the genotype, in one line
    max_difference: float | None  # None: not checked
    check_sizes: tuple[tuple[int, int], ...]  # (height, width) of the check's inputs

    @property
    def reproduces(self) -> bool:
        """The check ran and the difference is within ``EXPORT_TOLERANCE``."""
        return self.max_difference is not None and self.max_difference <= EXPORT_TOLERANCE


EXPORT_TOLERANCE = 1e-4  # max |torch - onnxruntime| accepted by the check
EXPORT_CHECK_SIZES = ((40, 56), (27, 33))  # two sizes, neither the traced one: the dynamic axes are used


def export(model: RunOrPath, path: str | Path, opset: int | None = None, check: bool = True) -> Exported:
    """Write ``model``'s network as an ONNX graph at ``path`` (input 'low' (N, 3, H, W), output 'x';
    batch, height and width dynamic), then (``check``) run it with onnxruntime at two sizes and
    compare with torch."""
    speak()
    import torch

    from nas_llv.export.modelfile import find_model, load_model
    from nas_llv.export.onnx import DEFAULT_OPSET, OnnxNet, export_onnx, max_difference
    from nas_llv.paths import check_output_file

    out = check_output_file(path, "--output")
    src = find_model(_path(model))
    if src.resolve() == out.resolve():
        raise ConfigError(f"--output {path} is the model file itself; give another file name")
    net, genotype = load_model(src)
    opset = DEFAULT_OPSET if opset is None else opset
    written = export_onnx(net, out, opset=opset)
    diff = None
    if check:
        diff = max_difference(net, OnnxNet(written), [torch.rand(1, 3, h, w) for h, w in EXPORT_CHECK_SIZES])
    return Exported(written, opset, genotype.describe(), diff, EXPORT_CHECK_SIZES)


def _path(run: RunOrPath) -> Path:
    return run.dir if isinstance(run, Run) else Path(run)
