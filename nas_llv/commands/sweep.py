"""``nas-llv sweep RECIPE --seeds 0-7 [--grid KEY=V1,V2 ...] [--eval DIR]``: one search per seed and
grid point, each an ordinary run folder in one sweep folder, run as Ray tasks (docs/scale.md).
With ``--max-gflops G`` a trial whose genotype costs more than G GFLOPs at 600x400 is not retrained
or evaluated: its row says ``over cost limit`` (docs/cost.md).

Ray runs embedded in this process unless ``--address`` names a cluster. Every trial's recipe is
checked before anything is written; ``--resume SWEEP_DIR`` reruns the trials that did not finish
(each from its own checkpoint). ``nas_llv.sweep`` plans the trials and writes the summary.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from nas_llv.config import ConfigError, first_line

log = logging.getLogger("nas_llv.sweep")

INSTALL = "pip install -e '.[ray]'"
FLOPS_AT = (600, 400)  # (width, height) of the input the summary's FLOPs are counted at, as `derive`'s default
SEEDS_DEFAULT = "0"
EVAL_REPEATS, EVAL_WARMUP = 3, 1  # latency runs of each trial's eval (the summary does not report latency)
OVER_LIMIT = "over cost limit"  # a searched trial --max-gflops kept from retraining and evaluation
DONE = ("finished", OVER_LIMIT)  # statuses --resume leaves alone


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"sweeps run their trials on Ray, which is not installed; install it with: "
                          f"{INSTALL}") from None
    return ray


# -- planning (the driver, before anything is written) -------------------------------------------

def new_plan(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
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
    trials = plan_trials(parse_seeds(args.seeds), parse_grid(args.grid or []))
    overrides = list(args.overrides or [])
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
    root = args.output or base.output
    check_output_dir(root, "--output" if args.output else f"{args.recipe}: output")
    _check_first_trial(entries[0])
    plan = {"nas_llv": __version__, "recipe": args.recipe, "train_recipe": train_path, "overrides": overrides,
            "seeds": args.seeds, "grid": list(args.grid or []), "grid_keys": list(trials[0].grid),
            "eval": eval_dir, "max_gflops": args.max_gflops, "name": base.name, "trials": entries}
    return plan, root


def _train_recipe(args: argparse.Namespace, raw: dict[str, Any]) -> str | None:
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
    from nas_llv.derive.evaluate import open_pairs

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


def resumed_plan(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
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
    run_dir = _search(sweep_dir, entry)
    searched = collect_row(sweep_dir, entry, spec["eval"], spec["max_gflops"])
    if entry.get("train") is None or searched["status"] == OVER_LIMIT:
        return searched
    _evaluate(_train(sweep_dir, entry, run_dir), spec["eval"], entry["train"].get("device", "auto"))
    return collect_row(sweep_dir, entry, spec["eval"], spec["max_gflops"])


def _stage(parent: Path, name: str, kind: str, new: Callable[[], tuple[Any, Any]],
           resume: Callable[[str], tuple[Any, Any]]) -> Path:
    """Run folder ``parent/<name>-*`` brought to its end: kept when finished, resumed from its
    checkpoint, or (none yet, or killed before its first checkpoint) started anew."""
    from nas_llv.commands._job import run_job
    from nas_llv.sweep import find_run

    run_dir = find_run(parent, name)
    if run_dir is not None and finished(run_dir):
        return run_dir
    if run_dir is not None and (run_dir / "checkpoints" / "last.pt").is_file():
        job, run = resume(str(run_dir))
    else:
        if run_dir is not None:
            shutil.rmtree(run_dir)
        job, run = new()
    if run_job(job, run, kind, None) != 0 or not finished(run.dir):
        raise RuntimeError(f"{run.dir}: the {kind} stopped before its end")
    return run.dir


def _search(sweep_dir: Path, entry: dict[str, Any]) -> Path:
    from nas_llv.commands import search
    from nas_llv.commands._job import start_job
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.search.loop import Searcher

    def new() -> tuple[Any, Any]:
        recipe = recipe_from_dict(entry["search"], entry["name"])
        return start_job(recipe, entry["name"], str(sweep_dir), lambda: Searcher(recipe))

    return _stage(sweep_dir, entry["name"], "search", new,
                  lambda path: search.start(argparse.Namespace(resume=path, recipe=None, overrides=None)))


def _train(sweep_dir: Path, entry: dict[str, Any], search_dir: Path) -> Path:
    from nas_llv.commands import train
    from nas_llv.commands._job import start_job
    from nas_llv.derive.train import Trainer, resolve_build
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.space.genotype import load_genotype
    from nas_llv.sweep import RETRAIN

    def new() -> tuple[Any, Any]:
        recipe = recipe_from_dict(entry["train"], entry["train_name"])
        return start_job(recipe, entry["train_name"], str(sweep_dir / RETRAIN), lambda: Trainer(
            recipe, load_genotype(search_dir / "genotype.yaml"), resolve_build(recipe.train), source=search_dir))

    return _stage(sweep_dir / RETRAIN, entry["train_name"], "train", new, lambda path: train.resume(
        argparse.Namespace(resume=path, target=None, recipe=None, overrides=None, init=None, keep=None)))


def _evaluate(train_dir: Path, data: str, device: str) -> None:
    from nas_llv.commands import eval as eval_command

    out = train_dir / f"eval-{Path(data).name}"
    if not (out / "summary.json").is_file():  # written last: its presence means the evaluation ended
        # through eval's own parser, so every option it has gets its default
        parser = argparse.ArgumentParser(prog="nas-llv")
        eval_command.add_parser(parser.add_subparsers())
        eval_command.run(parser.parse_args([
            "eval", str(train_dir), "--data", data, "--repeats", str(EVAL_REPEATS), "--warmup", str(EVAL_WARMUP),
            "--device", device, "--out-dir", str(out), "--quiet"]))


def finished(run_dir: Path) -> bool:
    from nas_llv.results import is_finished

    return (run_dir / "trajectory.csv").is_file() and is_finished(run_dir)


def collect_row(sweep_dir: Path, entry: dict[str, Any], eval_data: str | None,
                max_gflops: float | None = None) -> dict[str, Any]:
    """The trial's summary row from its folders: 'not started', 'unfinished', 'finished' or (a finished
    search whose genotype costs more than ``max_gflops`` at FLOPS_AT) 'over cost limit', and what it
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
        summary = train_dir / f"eval-{Path(eval_data or '').name}" / "summary.json"
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

    genotype = load_genotype(run_dir / "genotype.yaml")
    net = genotype.build()
    return {"val_loss": genotype.meta.get("val_loss"), "genotype_hash": genotype_hash(genotype.choices),
            "params": count_params(net), "flops": count_flops(net, torch.rand(1, 3, FLOPS_AT[1], FLOPS_AT[0]))}


# -- the driver ------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    from nas_llv.sweep import make_sweep_dir, write_plan

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
    print(sweep_dir)  # the one line on standard output, as search prints its run folder
    return 1 if failed else 0


def _init_ray(ray: Any, args: argparse.Namespace) -> bool:
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


def _run_trials(ray: Any, args: argparse.Namespace, plan: dict[str, Any], sweep_dir: Path) -> int:
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
            f"params and FLOPs: the derived network at its searched size, FLOPs at {FLOPS_AT[0]}x{FLOPS_AT[1]} input")
    if plan.get("eval"):
        text += f"; psnr, ssim, lpips: retrained with {plan['train_recipe']}, evaluated on {plan['eval']}"
    if plan.get("max_gflops") is not None:
        text += (f"; --max-gflops {plan['max_gflops']:g}: a trial whose genotype has more FLOPs at "
                 f"{FLOPS_AT[0]}x{FLOPS_AT[1]} is '{OVER_LIMIT}', not retrained or evaluated")
    return text + "."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a recipe's search over seeds and a grid of settings, as Ray tasks",
                       description="One search per seed and grid point, each an ordinary run folder in "
                                   "<output>/<name>-sweep-<time>/, with summary.csv and summary.md; with --eval "
                                   "each genotype is also retrained and evaluated (docs/scale.md). Needs Ray: "
                                   f"{INSTALL}.")
    p.add_argument("recipe", nargs="?", help="search recipe YAML, e.g. recipes/ruas_demo.yaml")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for every trial (and its retraining), "
                   "e.g. search.epochs=2")
    p.add_argument("--seeds", default=SEEDS_DEFAULT, help="seeds: a range and/or a list, e.g. 0-7 or 0,2,5 "
                   f"(default {SEEDS_DEFAULT})")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="a setting to sweep (repeatable; the "
                   "trials are the product of all grids and seeds), e.g. search.beta=0.5,1,2")
    p.add_argument("--eval", metavar="DIR", help="also retrain each genotype and evaluate it on DIR (paired "
                   "low/ and high/, as nas-llv eval takes)")
    p.add_argument("--train-recipe", metavar="R", help="the retraining recipe for --eval (default: the recipe "
                   "itself when it has a train: section, else <recipe>_train.yaml beside it)")
    p.add_argument("--max-gflops", type=float, metavar="G", help="a hard cost limit: a trial whose genotype has "
                   f"more than G GFLOPs at {FLOPS_AT[0]}x{FLOPS_AT[1]} input is not retrained or evaluated; its "
                   f"summary row says '{OVER_LIMIT}' (docs/cost.md)")
    p.add_argument("--address", metavar="ADDR", help="join this Ray cluster (e.g. HEAD:6379) instead of "
                   "starting Ray here")
    p.add_argument("--cpus-per-trial", type=float, default=1, metavar="C",
                   help="CPUs each trial reserves, and its torch threads (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, metavar="G", help="GPUs each trial reserves (default 0)")
    p.add_argument("--output", metavar="DIR", help="parent folder of the sweep folder (default: the recipe's "
                   "output, results/)")
    p.add_argument("--resume", metavar="SWEEP_DIR", help="rerun the trials of this sweep that did not finish")
    p.set_defaults(run=run)
