"""``nas-llv eval MODEL --data DIR``: per-image and mean metrics, params, FLOPs and latency."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas_llv.choices import DEVICES, ENGINES, METRICS, OUTPUTS, SPLIT_DIRS
from nas_llv.config import ConfigError

LPIPS_NETS = ("alex", "vgg", "squeeze", "none")


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def table(rows: list[dict[str, Any]], mean: dict[str, Any]) -> list[str]:
    width = max(len("mean"), *(len(r["name"]) for r in rows))
    lines = [f"{'image':{width}s}  " + "  ".join(f"{m.upper():>8s}" for m in METRICS)]
    for r in [*rows, {"name": "mean", **mean}]:
        lines.append(f"{r['name']:{width}s}  " + "  ".join(f"{_cell(r[m]):>8s}" for m in METRICS))
    return lines


def cost_lines(s: dict[str, Any]) -> list[str]:
    w, h = (int(v) for v in s["resolution"].split("x"))
    at = s["resolution"] + (f" input (output {s['scale'] * w}x{s['scale'] * h})" if s["scale"] != 1 else "")
    return [f"params: {s['params']:,}",
            f"FLOPs at {at}: {s['flops'] / 1e9:.3f} G ({s['flops'] / 2e9:.3f} GMAC)",
            f"latency: {1e3 * s['latency_s']:.1f} ms median of {s['repeats']} after {s['warmup']} warm-up "
            f"on {s['device']} ({s['device_name']})" + (f", engine {s['engine']}" if s.get("engine", "torch") != "torch" else "")]


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None when unreadable (reading it reports why)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # PIL raises many types; reading the image later reports the reason
        return None


def check_sizes(pairs: Any, min_size: int, needs: str) -> None:
    """Every ground truth (the size metrics see) at least ``min_size`` px high and wide."""
    for _, high in pairs.pairs:
        size = image_size(high)
        if size is not None and min(size) < min_size:
            raise ConfigError(f"{high}: the ground truth is {size[0]}x{size[1]}, smaller than {needs} needs "
                              f"(at least {min_size}x{min_size})")


def metric_needs(lpips: Any) -> tuple[int, str]:
    """The least image side the metrics take, and which metric sets it."""
    from nas_llv.metrics.image import SSIM_WIN_SIZE

    if lpips is not None and lpips.available and lpips.min_size > SSIM_WIN_SIZE:
        return lpips.min_size, f"LPIPS ({lpips.net}; use --lpips-net none to skip it)"
    return SSIM_WIN_SIZE, f"SSIM ({SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window)"


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from nas_llv.derive.evaluate import build_summary, evaluate_images, model_cost, open_pairs, write_metrics_csv, write_summary
    from nas_llv.space.genotype import genotype_scale
    from nas_llv.device import keep_freed_memory, resolve_device
    from nas_llv.metrics import LPIPSMetric
    from nas_llv.export.fold import for_engine
    from nas_llv.export.modelfile import find_model, load_model
    from nas_llv.paths import check_output_dir

    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError(f"need --repeats >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    if args.out_dir:
        check_output_dir(args.out_dir, "--out-dir")
    device = resolve_device(args.device)
    keep_freed_memory(device)  # as enhance does, so the latency measured is the one enhance gets
    model_path = find_model(args.model)
    net, genotype = load_model(model_path)
    scale = genotype_scale(genotype)
    pairs = open_pairs(args.data, scale, args.split)
    data_name = Path(args.data).resolve().name
    out_dir = Path(args.out_dir) if args.out_dir else check_output_dir(
        model_path.parent / f"eval-{data_name}", "output folder (beside the model; choose one with --out-dir)")
    lpips = None if args.lpips_net == "none" else LPIPSMetric(args.lpips_net, device=device)
    check_sizes(pairs, *metric_needs(lpips))
    engine = for_engine(net.to(device), args.engine)
    with logging_redirect_tqdm():
        rows = evaluate_images(engine, pairs, device, args.output, args.quantize, args.gt_mean,
                               lpips if lpips is not None and lpips.available else None, progress=not args.quiet)
    # at the (LR) input size; params and FLOPs are the model's, the latency the engine's
    cost = model_cost(net, pairs[0]["low"], device, args.repeats, args.warmup, timed=engine)
    rules = {"quantize": args.quantize, "data_range": 1.0, "gt_mean": args.gt_mean, "output": args.output,
             "lpips_net": None if lpips is None or not lpips.available else args.lpips_net, "scale": scale,
             "engine": args.engine}
    source = {"model": str(model_path.resolve()), "data": str(Path(args.data).resolve()), "data_name": data_name}
    summary = build_summary(rows, cost, rules, source)
    write_metrics_csv(out_dir / "metrics.csv", rows)
    write_summary(out_dir / "summary.json", summary)
    print("\n".join(table(rows, summary) + cost_lines(summary)))
    print(f"wrote {out_dir / 'metrics.csv'} and {out_dir / 'summary.json'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM/LPIPS/RMSE on paired images, plus params, FLOPs, latency",
                       description="Evaluate a model on paired folders (DIR/low + DIR/high, a LOL root's "
                                   "eval15, or a RELLISUR root). A super-resolution model's output is scored "
                                   "against ground truths scale x its inputs. Outputs are quantised to 8 bits "
                                   "before scoring; see docs/evaluation.md for the rules.")
    p.add_argument("model", help="a model file, or a run folder with model.pt")
    p.add_argument("--data", required=True, help="DIR with low/ and high/ (same names; high = scale x low for "
                   "an SR model), a LOL root, or a RELLISUR root")
    p.add_argument("--split", choices=tuple(SPLIT_DIRS), default="test",
                   help="split of a RELLISUR root (default test); other layouts have none")
    p.add_argument("--gt-mean", action="store_true", help="rescale each output to the ground truth's mean "
                   "luma before scoring (GT-mean, as LLFlow/Retinexformer report); off by default")
    p.add_argument("--lpips-net", choices=LPIPS_NETS, default="alex", help="LPIPS backbone (default alex; none: skip)")
    p.add_argument("--quantize", choices=("round", "truncate"), default="round",
                   help="8-bit quantisation of outputs before scoring (default round)")
    p.add_argument("--output", choices=OUTPUTS, default="x", help="which network output to score (default x)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs for latency (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs (default 2)")
    p.add_argument("--engine", choices=ENGINES, default="torch",
                   help="torch: the model as built (default); fast / compiled: folded for inference as "
                        "enhance --engine runs it (the same images up to float rounding; the latency is "
                        "the engine's, params and FLOPs the model's)")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    p.add_argument("-o", "--out-dir", help="where to write metrics.csv and summary.json "
                   "(default: eval-<data name>/ beside the model)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
