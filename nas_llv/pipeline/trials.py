"""A sweep: one search per seed and grid point, each an ordinary run folder in one sweep folder,
run as Ray tasks (docs/scale.md); with ``eval`` each genotype is retrained and evaluated, all
through the pipeline's steps. With ``max_gflops`` a trial whose genotype costs more than that at
600x400 is not retrained or evaluated: its row says ``over cost limit`` (docs/cost.md).

Ray runs embedded in this process unless ``address`` names a cluster. Every trial's recipe is
checked before anything is written; ``resume`` (a sweep folder) reruns the trials that did not
finish, each from its own checkpoint. ``nas_llv.sweep`` plans the trials and writes the summary.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from nas_llv.config import ConfigError, first_line
from nas_llv.evaluation.compare import SUMMARY
from nas_llv.evaluation.options import EvalOptions
from nas_llv.pipeline import steps
from nas_llv.reference import REFERENCE_SIZE, size_text
from nas_llv.runs import Run
from nas_llv.runview import RunFolder
from nas_llv.sweep import INSTALL, OVER_LIMIT, SEEDS_DEFAULT

log = logging.getLogger("nas_llv.sweep")



@dataclass(frozen=True)
class SweepOptions:
    """What ``nas-llv sweep`` takes (its --help says each)."""

    recipe: str | None = None  # the search recipe; None with resume
    overrides: Sequence[str] = ()  # KEY=VALUE for every trial and its retraining
    seeds: str = SEEDS_DEFAULT  # a range and/or a list: 0-7, 0,2,5
    grid: Sequence[str] = ()  # KEY=V1,V2 each; the trials are the product of all grids and seeds
    eval: str | None = None  # retrain each genotype and evaluate it on this folder of pairs
    train_recipe: str | None = None  # the retraining recipe (default: the recipe's train: section, or <recipe>_train.yaml)
    max_gflops: float | None = None  # a hard cost limit on retraining
    address: str | None = None  # a Ray cluster to join (default: Ray embedded here)
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    output: str | Path | None = None  # parent of the sweep folder (default: the recipe's output)
    resume: str | Path | None = None  # a sweep folder to continue


EVAL_REPEATS, EVAL_WARMUP = 3, 1  # latency runs of each trial's eval (the summary does not report latency)
DONE = ("finished", OVER_LIMIT)  # statuses --resume leaves alone


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"sweeps run their trials on Ray, which is not installed; install it with: "
                          f"{INSTALL}") from None
    return ray


# -- planning (the driver, before anything is written) -------------------------------------------

def new_plan(args: SweepOptions) -> tuple[dict[str, Any], str]:
    """The plan of a new sweep, every trial's recipe checked; and the folder its sweep folder goes in."""
    from nas_llv import __version__
    from nas_llv.config import load_yaml
    from nas_llv.paths import check_output_dir
    from nas_llv.recipe import load_recipe
    from nas_llv.sweep import parse_grid, parse_seeds, plan_trials, trial_dict

    if not args.recipe:
        raise ConfigError("give a recipe file (e.g. recipes/ruas_demo.yaml) or --resume SWEEP_DIR")
    if args.max_gflops is not None and not (args.max_gflops > 0 and math.isfinite(args.max_gflops)):
        raise ConfigError(f"--max-gflops {args.max_gflops:g}: expected a number of GFLOPs > 0")
    trials = plan_trials(parse_seeds(args.seeds), parse_grid(list(args.grid)))
    overrides = list(args.overrides)
    base = load_recipe(args.recipe, overrides)
    train_path = _train_recipe(args, load_yaml(args.recipe))
    train_base = load_recipe(train_path, overrides) if train_path else None
    entries = []
    for t in trials:
        entry = trial_dict(t, base.name)
        entry["search"] = load_recipe(args.recipe, [*overrides, *t.overrides(), f"name={entry['name']}"]).to_dict()
        if train_base is not None:
            entry["train_name"] = t.name(train_base.name)
            train = [*overrides, f"seed={t.seed}", f"name={entry['train_name']}"]
            entry["train"] = load_recipe(train_path, train).to_dict()
        entries.append(entry)
    eval_dir = _check_eval(args.eval, base.data.scale)
    root = str(args.output or base.output)
    check_output_dir(root, "--output" if args.output else f"{args.recipe}: output")
    _check_first_trial(entries[0])
    plan = {"nas_llv": __version__, "recipe": args.recipe, "train_recipe": train_path, "overrides": overrides,
            "seeds": args.seeds, "grid": list(args.grid), "grid_keys": list(trials[0].grid),
            "eval": eval_dir, "max_gflops": args.max_gflops, "name": base.name, "trials": entries}
    return plan, root


def _train_recipe(args: SweepOptions, raw: dict[str, Any]) -> str | None:
    """The recipe that retrains with --eval: --train-recipe, else the recipe itself when it has a
    train: section, else ``<recipe>_train.yaml`` beside it (recipes/ruas_demo_train.yaml)."""
    if args.train_recipe and not args.eval:
        raise ConfigError("--train-recipe retrains for --eval; give --eval DIR too")
    if not args.eval:
        return None
    if args.train_recipe:
        return args.train_recipe
    if "train" in raw:
        return args.recipe
    beside = Path(args.recipe).with_name(f"{Path(args.recipe).stem}_train.yaml")
    if beside.is_file():
        log.info("retraining with %s (the recipe has no train: section)", beside)
        return str(beside)
    raise ConfigError(f"--eval retrains each trial's genotype, but {args.recipe} has no train: section and there "
                      f"is no {beside.name} beside it; give --train-recipe R (e.g. recipes/ruas_demo_train.yaml)")


def _check_eval(data: str | None, scale: int) -> str | None:
    if data is None:
        return None
    from nas_llv.evaluation.scoring import open_pairs

    try:
        open_pairs(data, scale)
    except ConfigError as exc:
        raise ConfigError(f"--eval {exc}") from None
    return str(Path(data).resolve())


def _check_first_trial(entry: dict[str, Any]) -> None:
    """Build the first trial's search (data, supernet, one batch through every objective) and drop it:
    a recipe that cannot run fails here, in one line, not in every trial."""
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.search.loop import Searcher

    Searcher(recipe_from_dict(entry["search"], entry["name"])).close()


def resumed_plan(args: SweepOptions) -> tuple[dict[str, Any], Path]:
    from nas_llv.sweep import read_plan

    if (args.recipe or args.overrides or args.grid or args.seeds != SEEDS_DEFAULT or args.eval or args.train_recipe
            or args.max_gflops is not None):
        raise ConfigError("--resume continues a sweep from its own sweep.yaml; give no recipe, --seeds, --grid, "
                          "--eval, --train-recipe, --max-gflops or overrides")
    plan = read_plan(args.resume)
    if plan.get("eval"):
        _check_eval(plan["eval"], int(plan["trials"][0]["search"].get("data", {}).get("scale", 1)))
    return plan, Path(args.resume).resolve()


# -- one trial (a Ray task; also measured by the driver when it finished before) --------------------

def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Search (resumed where it stopped), then with --eval retrain and evaluate unless the genotype is
    over --max-gflops; returns the summary row."""
    from nas_llv.device import set_threads

    if Path(spec["cwd"]).is_dir():  # relative data paths in recipes mean the driver's folder
        os.chdir(spec["cwd"])
    set_threads(spec["threads"])
    sweep_dir, entry = Path(spec["sweep_dir"]), spec["trial"]
    search_dir = _search(sweep_dir, entry)
    searched = collect_row(sweep_dir, entry, spec["eval"], spec["max_gflops"])
    if entry.get("train") is None or searched["status"] == OVER_LIMIT:
        return searched
    _evaluate(_train(sweep_dir, entry, search_dir), spec["eval"], entry["train"].get("device", "auto"))
    return collect_row(sweep_dir, entry, spec["eval"], spec["max_gflops"])


def _stage(parent: Path, name: str, new: Callable[[], Run]) -> Path:
    """Run folder ``parent/<name>-*`` brought to its end: kept when finished, resumed from its
    checkpoint, or (none yet, or killed before its first checkpoint) started anew by ``new()``."""
    from nas_llv.sweep import find_run

    run_dir = find_run(parent, name)
    if run_dir is not None and finished(run_dir):
        return run_dir
    if run_dir is not None and RunFolder(run_dir).checkpoint_path().is_file():
        run = steps.resume(run_dir)
    else:
        if run_dir is not None:
            shutil.rmtree(run_dir)
        run = new()
    if not finished(run.dir):
        raise RuntimeError(f"{run.dir}: the run stopped before its end")
    return run.dir


def _search(sweep_dir: Path, entry: dict[str, Any]) -> Path:
    from nas_llv.recipe import recipe_from_dict

    return _stage(sweep_dir, entry["name"], lambda: steps.search(recipe_from_dict(entry["search"], entry["name"]),
                                                                 output=sweep_dir))


def _train(sweep_dir: Path, entry: dict[str, Any], search_dir: Path) -> Path:
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.sweep import RETRAIN

    return _stage(sweep_dir / RETRAIN, entry["train_name"], lambda: steps.train(
        search_dir, recipe_from_dict(entry["train"], entry["train_name"]), output=sweep_dir / RETRAIN))


def _evaluate(train_dir: Path, data: str, device: str) -> None:
    out = RunFolder(train_dir).eval_dir(data)
    if not (out / SUMMARY).is_file():  # written last: its presence means the evaluation ended
        steps.evaluate(train_dir, data, EvalOptions(repeats=EVAL_REPEATS, warmup=EVAL_WARMUP, device=device,
                                                    progress=False), out_dir=out)


def finished(run_dir: Path) -> bool:
    return RunFolder(run_dir).status == "finished"


def collect_row(sweep_dir: Path, entry: dict[str, Any], eval_data: str | None,
                max_gflops: float | None = None) -> dict[str, Any]:
    """The trial's summary row from its folders: 'not started', 'unfinished', 'finished' or (a finished
    search whose genotype costs more than ``max_gflops`` at REFERENCE_SIZE) 'over cost limit', and what it
    measured so far."""
    from nas_llv.sweep import RETRAIN, find_run

    row: dict[str, Any] = {"trial": entry["index"], "seed": entry["seed"], **entry.get("grid", {}),
                           "status": "not started"}
    run_dir = find_run(sweep_dir, entry["name"])
    if run_dir is None:
        return row
    row.update(run=run_dir.name, status="unfinished")
    if not finished(run_dir):
        return row
    row.update(_search_row(run_dir))
    if max_gflops is not None and row["flops"] > max_gflops * 1e9:
        return {**row, "status": OVER_LIMIT}
    if entry.get("train") is None:
        return {**row, "status": "finished"}
    train_dir = find_run(sweep_dir / RETRAIN, entry["train_name"])
    if train_dir is not None:
        row["train_run"] = f"{RETRAIN}/{train_dir.name}"
        summary = RunFolder(train_dir).eval_dir(eval_data or "") / SUMMARY
        if finished(train_dir) and summary.is_file():
            import json

            scores = json.loads(summary.read_text())
            row.update({k: scores.get(k) for k in ("psnr", "ssim", "lpips")}, status="finished")
    return row


def _search_row(run_dir: Path) -> dict[str, Any]:
    import torch

    from nas_llv.metrics import count_flops, count_params
    from nas_llv.space.genotype import load_genotype
    from nas_llv.sweep import genotype_hash

    genotype = load_genotype(RunFolder(run_dir).genotype_path)
    net = genotype.build()
    return {"val_loss": genotype.meta.get("val_loss"), "genotype_hash": genotype_hash(genotype.choices),
            "params": count_params(net), "flops": count_flops(net, torch.rand(1, 3, REFERENCE_SIZE[1], REFERENCE_SIZE[0]))}


# -- the driver ------------------------------------------------------------------------------------

def sweep(options: SweepOptions) -> tuple[Path, int]:
    """Run (or with ``options.resume``, continue) a sweep; returns its folder and the number of
    trials that failed. Every trial's recipe is checked before anything is written."""
    from nas_llv.sweep import make_sweep_dir, write_plan

    args = options
    ray = require_ray()
    if args.cpus_per_trial < 1 or args.gpus_per_trial < 0:
        raise ConfigError(f"need --cpus-per-trial >= 1 and --gpus-per-trial >= 0, got {args.cpus_per_trial} "
                          f"and {args.gpus_per_trial}")
    plan, where = resumed_plan(args) if args.resume else new_plan(args)
    started = _init_ray(ray, args)
    try:
        sweep_dir = where if args.resume else make_sweep_dir(where, plan["name"]).resolve()
        if not args.resume:
            write_plan(sweep_dir, plan)
        failed = _run_trials(ray, args, plan, sweep_dir)
    finally:
        if started:
            ray.shutdown()
    return sweep_dir, failed


def _init_ray(ray: Any, args: SweepOptions) -> bool:
    """Join ``--address``'s cluster, or start Ray embedded here (no dashboard, quiet); True when this
    call started it. The trial's resources must fit the cluster."""
    from nas_llv.device import available_cores

    started = not ray.is_initialized()
    if started:
        quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
        if args.address:
            _check_reachable(args.address)
        try:
            if args.address:
                ray.init(address=args.address, **quiet)
            else:
                # "local": a Ray of our own even where `ray start` runs one on this machine
                ray.init(address="local", num_cpus=available_cores(), object_store_memory=100 * 2**20, **quiet)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
            hint = ("; a cluster that `ray start` made asks for its token: set RAY_AUTH_MODE=token here (the token is "
                    "read from ~/.ray/auth_token, or RAY_AUTH_TOKEN)" if args.address and "RAY_AUTH_MODE" not in
                    os.environ else "")
            raise ConfigError(f"Ray{f' at --address {args.address}' if args.address else ''} did not start: "
                              f"{type(exc).__name__}: {first_line(exc)}{hint}") from None
    have = ray.cluster_resources()
    for what, need, key in (("--cpus-per-trial", args.cpus_per_trial, "CPU"),
                            ("--gpus-per-trial", args.gpus_per_trial, "GPU")):
        if need > have.get(key, 0):
            if started:
                ray.shutdown()
            raise ConfigError(f"{what} {need:g}: the Ray cluster has {have.get(key, 0):g} {key}s in all")
    return started


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT that answers nothing fails here in seconds (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return  # 'auto', 'ray://...' and the like: Ray's own checks
    try:
        socket.create_connection((host.removeprefix("ray://") or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc.strerror or exc}); start Ray with "
                          f"`ray start --head --port {port}` on that machine") from None


def _run_trials(ray: Any, args: SweepOptions, plan: dict[str, Any], sweep_dir: Path) -> int:
    """Submit every trial that has not finished, rewrite the summary as each ends; returns the failures."""
    from nas_llv.sweep import write_summary

    keys, note = plan.get("grid_keys", []), _note(plan)
    limit = plan.get("max_gflops")  # absent from sweeps planned before --max-gflops
    rows = {e["index"]: collect_row(sweep_dir, e, plan.get("eval"), limit) for e in plan["trials"]}
    pending = [e for e in plan["trials"] if rows[e["index"]]["status"] not in DONE]
    write_summary(sweep_dir, keys, list(rows.values()), note)
    log.info("sweep %s: %d trials, %d to run, %g CPU%s per trial", sweep_dir, len(rows), len(pending),
             args.cpus_per_trial, f" and {args.gpus_per_trial:g} GPU" if args.gpus_per_trial else "")
    task = ray.remote(run_trial).options(num_cpus=args.cpus_per_trial, num_gpus=args.gpus_per_trial, max_retries=0)
    spec = {"sweep_dir": str(sweep_dir), "cwd": os.getcwd(), "eval": plan.get("eval"), "max_gflops": limit,
            "threads": max(1, math.ceil(args.cpus_per_trial))}
    futures = {task.remote({**spec, "trial": e}): e for e in pending}
    failed = 0
    try:
        while futures:
            done, _ = ray.wait(list(futures), num_returns=1)
            entry = futures.pop(done[0])
            try:
                rows[entry["index"]] = row = ray.get(done[0])
                log.info("trial %d (%s) %s: %s", entry["index"], entry["name"], row["status"], _scores(row))
            except ray.exceptions.RayError as exc:
                failed += 1
                rows[entry["index"]] = {**collect_row(sweep_dir, entry, plan.get("eval"), limit), "status": "failed"}
                cause = getattr(exc, "cause", None) or exc
                log.error("trial %d (%s) failed: %s: %s", entry["index"], entry["name"], type(cause).__name__,
                          first_line(cause))
            write_summary(sweep_dir, keys, list(rows.values()), note)
    except KeyboardInterrupt:
        log.info("interrupted; continue with: nas-llv sweep --resume %s", sweep_dir)
        raise
    log.info("summary: %s", sweep_dir / "summary.md")
    return failed


def _scores(row: dict[str, Any]) -> str:
    shown = [f"{k} {row[k]:.4f}" for k in ("val_loss", "psnr", "ssim") if isinstance(row.get(k), float)]
    return ", ".join([*shown, f"genotype {row.get('genotype_hash')}"])


def _note(plan: dict[str, Any]) -> str:
    text = (f"Recipe {plan['recipe']}, seeds {plan['seeds']}. val_loss: the validation loss genotype.yaml records (its last epoch's; random search: the best candidate's); "
            f"params and FLOPs: the derived network at its searched size, FLOPs at {size_text(REFERENCE_SIZE)} input")
    if plan.get("eval"):
        text += f"; psnr, ssim, lpips: retrained with {plan['train_recipe']}, evaluated on {plan['eval']}"
    if plan.get("max_gflops") is not None:
        text += (f"; --max-gflops {plan['max_gflops']:g}: a trial whose genotype has more FLOPs at "
                 f"{size_text(REFERENCE_SIZE)} is '{OVER_LIMIT}', not retrained or evaluated")
    return text + "."


