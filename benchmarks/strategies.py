"""Does the search pay? RUAS Table 4 with a random baseline and a cost-aware search, at a budget
where α settles; every genotype retrained with one train recipe and scored on the MIT pairs.

Arms, each run with every seed (the seed is the search's, its data's and its retraining's, so
arms are paired by seed):

- ``cooperative``, ``global``, ``independent``: the DARTS strategies of RUAS Table 4,
  ``--epochs`` x ``--steps-per-epoch`` iterations with ``recipes/ruas_demo.yaml``'s α optimizer
  (Adam, lr 0.1, cosine: α settles in that budget, docs/search.md);
- ``random``: random search at equal forward-backward passes (docs/random.md): a
  finite_difference level update costs 5 passes where a random-search one costs 1, so
  ``--candidates`` genotypes of 5 x epochs x steps_per_epoch / candidates iterations each;
- ``cost_<T>``: cooperative search with ``search.cost`` (FLOPs at 600x400, a hinge above T
  GFLOPs, docs/cost.md), one arm per target of ``--cost-targets``;
- ``skip_only``: no search, the genotype with every edge a skip op (the cheapest network), a
  control for what a cheap network scores after the same retraining;
- ``random_limit``: random search drawing only candidates under ``--cost-limit`` GFLOPs at
  600x400 (the cost arms' fair baseline); ``limit_<T>``: the same under T, one arm per target of
  ``--cost-targets`` (``--arms limit``; benchmarks/front.py's random front);
- ``--random-genotypes`` genotypes drawn uniformly (``nas-llv derive --sample``, seed 0), no
  search: genotype i retrained with seed i mod 5 and scored the same way, for the PSNR-vs-FLOPs plot.

Two protocols (``--protocol``): ``demo``, the demo recipes on small synthesised data with a
120-step retraining, arms cooperative, global, independent, random, cost_1.5, cost_2.5,
skip_only; ``quality``, the quality pair's recipes (docs/quality.md) and 400-step retraining, arms
cooperative (without the recipe's hinge), random, cost_1, random_limit, skip_only.

Each run is the real command line (``nas-llv search``, ``train``, ``eval``) in a fresh process,
``--jobs`` at a time with one torch thread each. Rows go to ``WORK/results.jsonl`` as they finish;
rerunning with the same ``--work`` skips the rows it has. The summary: PSNR/SSIM mean ± std per
arm, a paired t-test (and the exact sign-flip test) of each arm against ``random`` over the seeds,
how firmly each search chose (edges within noise, the epoch α settled), and the plot.

    python benchmarks/strategies.py [--protocol demo|quality] [--seeds 0-4] [--jobs 2] [--work DIR] [--plot PNG]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DARTS = ("cooperative", "global", "independent")
# both recipes' data: low-light images synthesised from the bundled photographs (docs/data.md),
# exposures 1/8 to 1/2 as MIT-Adobe FiveK's under-exposed inputs; the MIT pairs are test data only
SYNTH = ["data.type=synth", "data.demo_count=null", "data.demo_size=null", "data.exposure_min=0.125",
         "data.exposure_max=0.5"]
SEARCH_DATA = [*SYNTH, "data.synth_count=16", "data.synth_size=64", "data.paired=false", "data.crop=32",
               "data.batch_size=1"]
TRAIN_DATA = [*SYNTH, "data.synth_count=32", "data.synth_size=64", "data.crop=32", "data.batch_size=2"]
# protocol -> recipes, data overrides, iterations per epoch, retraining steps (None: the recipe's),
# default arms ("cost": one arm cost_<T> per --cost-targets entry)
PROTOCOLS = {
    "demo": {"search": "ruas_demo.yaml", "train": "ruas_demo_train.yaml", "search_data": SEARCH_DATA,
             "train_data": TRAIN_DATA, "steps_per_epoch": 2, "train_steps": 120, "cost_targets": "1.5,2.5",
             "arms": (*DARTS, "random", "cost", "skip_only")},
    # the quality pair's recipes (docs/quality.md): its data and task objective, its 400-step retraining
    "quality": {"search": "ruas_quality.yaml", "train": "ruas_quality_train.yaml", "search_data": [],
                "train_data": [], "steps_per_epoch": 4, "train_steps": None, "cost_targets": "1.0",
                "arms": ("cooperative", "random", "cost", "random_limit", "skip_only")},
}
RECIPE_STEPS = "the train recipe's"
PASSES_PER_SEARCH_UPDATE = 5  # finite_difference: 4 passes for the hypergradient + 1 weight step
PAPER = {"global": "14.496 / 0.543", "independent": "15.841 / 0.584", "cooperative": "18.226 / 0.717"}
LOCK = threading.Lock()


def nas_llv(*args: str) -> str:
    """``nas-llv ARGS`` in a fresh process on one thread; the last line of its standard output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nas_llv", *args, "--threads", "1"] if args[0] != "derive" else
                          [sys.executable, "-m", "nas_llv", *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"nas-llv {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def search_overrides(arm: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The search recipe's overrides for ``arm`` at ``seed``, at the shared budget."""
    strategy, cost = arm_search(arm, args)
    common = [f"seed={seed}", f"data.seed={seed}", *args.p["search_data"], f"search.strategy={strategy}",
              f"search.cost={cost}", *args.set]
    if strategy != "random":
        return [*common, f"search.epochs={args.epochs}", f"search.steps_per_epoch={args.steps_per_epoch}"]
    return [*common, f"search.epochs={args.candidates}", f"search.steps_per_epoch={random_steps(args)}"]


def arm_search(arm: str, args: argparse.Namespace) -> tuple[str, str]:
    """(``search.strategy``, ``search.cost``) of ``arm``: ``cost_<T>`` is cooperative with the hinge
    above T, ``limit_<L>`` random search under L GFLOPs (``random_limit``: under ``--cost-limit``)."""
    if arm.startswith("cost_"):
        return "cooperative", f"{{type: flops, target: {arm[5:]}, weight: 1.0}}"
    if arm.startswith("limit_") or arm == "random_limit":
        return "random", f"{{limit: {arm[6:] if arm.startswith('limit_') else args.cost_limit}}}"
    return arm, "null"


def random_steps(args: argparse.Namespace) -> int:
    """Training iterations per random candidate at the DARTS strategies' number of passes."""
    return max(1, round(PASSES_PER_SEARCH_UPDATE * args.epochs * args.steps_per_epoch / args.candidates))


def retrain_and_score(target: str, seed: int, key: str, args: argparse.Namespace, work: Path) -> dict:
    """Train ``target`` (a run folder or genotype) with the shared train recipe, evaluate on MIT."""
    steps = [f"train.steps={args.train_steps}"] if args.train_steps else []
    trained = nas_llv("train", target, "--recipe", str(ROOT / "recipes" / args.p["train"]), f"seed={seed}",
                      f"data.seed={seed}", *args.p["train_data"], *steps, "--output", str(work / "train"))
    out = work / "eval" / key
    nas_llv("eval", trained, "--data", str(args.mit), "--lpips-net", "none", "--repeats", "1", "--warmup", "0",
            "-q", "-o", str(out))
    summary = json.loads((out / "summary.json").read_text())
    return {"psnr": summary["psnr"], "ssim": summary["ssim"], "gflops": summary["flops"] / 1e9,
            "params": summary["params"]}


def search_arm(arm: str, seed: int, args: argparse.Namespace, work: Path) -> dict:
    """Search, retrain, evaluate one (arm, seed); with how firmly the search chose."""
    if arm == "skip_only":
        return {"arm": arm, "seed": seed, **retrain_and_score(str(skip_only(work)), seed, f"{arm}-{seed}", args, work)}
    run = nas_llv("search", str(ROOT / "recipes" / args.p["search"]), *search_overrides(arm, seed, args), "--output", str(work / "search"))
    row = {"arm": arm, "seed": seed, "run": run, **choice_stats(Path(run), arm)}
    return {**row, **retrain_and_score(run, seed, f"{arm}-{seed}", args, work)}


def choice_stats(run: Path, arm: str) -> dict:
    """Edges within noise and the epoch α settled (``nas-llv derive``'s diagnostics); none for random."""
    import csv

    with open(run / "trajectory.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stats = {"search_s": float(rows[-1]["seconds"])}  # the loop's own clock, no start-up
    if (run / "candidates.csv").is_file():  # random search: drawn, not chosen by α
        return stats
    sys.path.insert(0, str(ROOT))
    from nas_llv.derive.margins import edge_margins, settled_epoch

    table = edge_margins(run)
    epochs = max(int(r["epoch"]) for r in rows)
    return {**stats, "within_noise": int(table["within_noise"].sum()), "edges": len(table),
            "settled": settled_epoch(table) < epochs}


def sampled_arm(folder: str, index: int, args: argparse.Namespace, work: Path) -> dict:
    """Retrain and score the uniformly drawn genotype in ``folder`` with seed ``index`` mod 5, so
    the drawn genotypes meet the retraining seeds the arms meet."""
    return {"arm": "sampled", "seed": index, "run": folder, "train_seed": index % 5,
            **retrain_and_score(folder, index % 5, f"sampled-{index}", args, work)}


def skip_only(work: Path) -> Path:
    """A genotype file of the demo network with a skip op on every edge (written once)."""
    import yaml

    folder = work / "skip_only"
    with LOCK:
        if not (folder / "genotype.yaml").is_file():
            nas_llv("derive", "--sample", "1", str(ROOT / "recipes" / "ruas_demo.yaml"), "-o", str(work / "skip_sample"))
            data = yaml.safe_load(next((work / "skip_sample").glob("*/genotype.yaml")).read_text())
            data["genotype"] = {label: "skip" for label in data["genotype"]}
            data["meta"] = {"control": "every edge a skip op"}
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "genotype.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


# -- statistics ------------------------------------------------------------------------------------

def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (Simpson's rule on the density; the
    benchmark needs no scipy)."""
    if t < 0:
        return 1 - t_sf(-t, df)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    density = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    n = 20000
    h = t / n
    area = density(0) + density(t) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
    return 0.5 - area * h / 3


def paired_tests(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(mean of a - b, two-sided paired t-test p, exact two-sided sign-flip permutation p)."""
    d = [x - y for x, y in zip(a, b)]
    n, mean = len(d), statistics.mean(d)
    if n < 2:
        return mean, math.nan, math.nan
    sd = statistics.stdev(d)
    p_t = 2 * t_sf(abs(mean) / (sd / math.sqrt(n)), n - 1) if sd > 0 else (0.0 if mean else 1.0)
    flips = [statistics.mean(s * x for s, x in zip(signs, d)) for signs in itertools.product((1, -1), repeat=n)]
    p_perm = sum(abs(f) >= abs(mean) - 1e-12 for f in flips) / len(flips)
    return mean, p_t, p_perm


def pm(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def report(rows: list[dict], args: argparse.Namespace) -> list[str]:
    by_arm: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    arm_names = [a for a in arms(args) if a in by_arm]
    seeds = sorted(set.intersection(*(set(by_arm[a]) for a in arm_names))) if arm_names else []
    lines = [f"protocol {args.protocol} ({args.p['search']}, {args.p['train']}): seeds {seeds}; search {args.epochs} epochs x {args.steps_per_epoch} it. (random: {args.candidates} "
             f"cand. x {random_steps(args)} it.); retrained {args.train_steps or RECIPE_STEPS} steps; scored on {args.mit.name}", "",
             "| arm | PSNR (dB) | SSIM | GFLOPs at 500x333 | edges within noise | α settled | vs random: ΔPSNR, "
             "paired t p, sign-flip p | paper Table 4 |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm in arm_names:
        rs = [by_arm[arm][s] for s in seeds]
        chose = "edges" in rs[0] and not arm.startswith("random")  # (older rows of random_limit carry them)
        noise = f"{statistics.mean(r['within_noise'] for r in rs):.1f} of {rs[0]['edges']}" if chose else "-"
        settled = f"{sum(r['settled'] for r in rs)} of {len(rs)}" if chose else "-"
        versus = "-"
        if arm != "random" and "random" in by_arm:
            diff, p_t, p_perm = paired_tests([r["psnr"] for r in rs], [by_arm["random"][s]["psnr"] for s in seeds])
            versus = f"{diff:+.2f} dB, p = {p_t:.3f}, p = {p_perm:.3f}"
        lines.append(f"| {arm} | {pm([r['psnr'] for r in rs], 2)} | {pm([r['ssim'] for r in rs], 3)} | "
                     f"{pm([r['gflops'] for r in rs], 3)} | {noise} | {settled} | {versus} | {PAPER.get(arm, '-')} |")
    lines += ["", "Per seed, PSNR (dB): " + "; ".join(
        f"seed {s}: " + " / ".join(f"{by_arm[a][s]['psnr']:.2f}" for a in arm_names) for s in seeds)
        + f" ({' / '.join(arm_names)})"]
    for a, b in (pair.split(":") for pair in args.compare):
        if a in by_arm and b in by_arm:
            diff, p_t, p_perm = paired_tests([by_arm[a][s]["psnr"] for s in seeds], [by_arm[b][s]["psnr"] for s in seeds])
            lines.append(f"{a} vs {b}, paired over the seeds: {diff:+.2f} dB, t-test p = {p_t:.3f}, sign-flip p = {p_perm:.3f}")
    sampled = sorted(by_arm.get("sampled", {}).values(), key=lambda r: r["seed"])
    if sampled:
        lines.append(f"{len(sampled)} uniformly drawn genotypes, no search, retrained the same way (genotype i with seed i mod 5): "
                     f"PSNR {pm([r['psnr'] for r in sampled], 2)} dB, GFLOPs {pm([r['gflops'] for r in sampled], 3)}")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"sampled": ("lightgray", "o", "random genotypes (no search)"), "random": ("tab:orange", "s", "random search"),
             "cooperative": ("tab:blue", "^", "cooperative"), "global": ("tab:green", "v", "global"),
             "independent": ("tab:purple", "<", "independent"),
             "random_limit": ("tab:olive", "D", "random search under the cost limit"),
             "skip_only": ("black", "x", "every edge skip (no search)")}
    for i, arm in enumerate(sorted({r["arm"] for r in rows if r["arm"].startswith("cost_")})):
        style[arm] = (("tab:red", "tab:brown", "tab:pink")[i % 3], "*", f"cooperative + cost hinge at {arm[5:]} GFLOPs (600x400)")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for arm, (colour, marker, label) in style.items():
        pts = [(r["gflops"], r["psnr"]) for r in rows if r["arm"] == arm]
        if pts:
            ax.scatter(*zip(*pts), c=colour, marker=marker, s=60 if marker == "*" else 30, label=label,
                       edgecolors="black" if arm not in ("sampled", "skip_only") else None, linewidths=0.4,
                       zorder=2 if arm == "sampled" else 3)
    ax.set_xlabel("GFLOPs of the derived network at 500x333")
    ax.set_ylabel("PSNR on mit5 after retraining (dB)")
    ax.set_title("Searched vs random genotypes, retrained alike")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# -- driver ----------------------------------------------------------------------------------------

def arms(args: argparse.Namespace) -> list[str]:
    """``--arms`` with "cost" and "limit" expanded to one arm per ``--cost-targets`` entry
    (``cost_<T>``, ``limit_<T>``)."""
    out = []
    for arm in args.arms.split(","):
        out += [f"{arm}_{float(t):g}" for t in args.cost_targets.split(",")] if arm in ("cost", "limit") else [arm]
    return out


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="demo", help="the recipes and data (default demo)")
    p.add_argument("--seeds", default="0-4", help="a range or a list (default 0-4)")
    p.add_argument("--arms", help="comma-separated (default: the protocol's)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--steps-per-epoch", type=int, help="default: the protocol's")
    p.add_argument("--candidates", type=int, default=8, help="random search: genotypes sampled (default 8)")
    p.add_argument("--train-steps", type=int, help="default: the protocol's")
    p.add_argument("--random-genotypes", type=int, default=20, help="uniform genotypes retrained for the plot")
    p.add_argument("--cost-targets", help="GFLOPs at 600x400 of the cost arms' hinges (default: the protocol's)")
    p.add_argument("--cost-limit", type=float, default=1.0, help="GFLOPs at 600x400: random_limit's candidates")
    p.add_argument("--compare", nargs="*", default=["cost_1:random_limit", "cooperative:random"], metavar="A:B",
                   help="extra paired tests")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each (default 2)")
    p.add_argument("--mit", type=Path, default=ROOT.parent / "shared" / "data" / "mit5")
    p.add_argument("--work", type=Path, help="folder for the runs and results.jsonl (default: a temporary one)")
    p.add_argument("--plot", type=Path, help="the PNG (default benchmarks/strategies[_quality]_psnr_flops.png)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra search-recipe overrides")
    p.add_argument("--report-only", action="store_true", help="print the table and plot of --work's results")
    args = p.parse_args()
    args.p = PROTOCOLS[args.protocol]
    tag = "" if args.protocol == "demo" else f"_{args.protocol}"
    args.plot = args.plot or ROOT / "benchmarks" / f"strategies{tag}_psnr_flops.png"
    args.arms = args.arms or ",".join(args.p["arms"])
    args.cost_targets = args.cost_targets or args.p["cost_targets"]
    args.steps_per_epoch = args.steps_per_epoch or args.p["steps_per_epoch"]
    args.train_steps = args.train_steps if args.train_steps is not None else args.p["train_steps"]
    if not (args.mit / "low").is_dir():
        sys.exit(f"{args.mit}: no low/ folder; pass --mit DIR with the MIT pairs (low/, high/)")
    work = args.work or Path(tempfile.mkdtemp(prefix="strategies-"))
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    if not args.report_only:
        rows += run_all(args, work, results, {(r["arm"], r["seed"]) for r in rows})
    print("\n".join(report(rows, args)))
    plot(rows, args.plot)
    print(f"\nplot: {args.plot}", file=sys.stderr)


def run_all(args: argparse.Namespace, work: Path, results: Path, done: set) -> list[dict]:
    print(f"runs under {work}", file=sys.stderr)
    jobs = [("search", arm, seed) for seed in parse_seeds(args.seeds) for arm in arms(args)]
    if args.random_genotypes:
        samples = work / "samples"
        if not samples.is_dir():
            nas_llv("derive", "--sample", str(args.random_genotypes), str(ROOT / "recipes" / args.p["search"]), "-o",
                    str(samples))
        jobs += [("sampled", str(g.parent), i) for i, g in enumerate(sorted(samples.glob("*/genotype.yaml")))]
    jobs = [j for j in jobs if ((j[1] if j[0] == "search" else "sampled"), j[2]) not in done]
    new = []
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(search_arm if kind == "search" else sampled_arm, what, seed, args, work): (kind, what, seed)
                   for kind, what, seed in jobs}
        for fut in cf.as_completed(futures):
            row = fut.result()
            with LOCK, open(results, "a") as f:  # kept as it goes: a stopped run keeps its rows
                f.write(json.dumps(row) + "\n")
            new.append(row)
            print(f"{row['arm']} {row['seed']}: {row['psnr']:.2f} dB / {row['ssim']:.3f}, {row['gflops']:.3f} GFLOPs",
                  file=sys.stderr, flush=True)
    return new


if __name__ == "__main__":
    main()
