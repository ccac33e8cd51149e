"""``nas-llv eval MODEL --data DIR``: per-image and mean metrics, params, FLOPs and latency."""
from __future__ import annotations

import argparse
from typing import Any, Sequence

from nas_llv.commands._images import add_tile_options
from nas_llv.device import DEVICES
from nas_llv.registry import COMMANDS


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def table(rows: list[dict[str, Any]], mean: dict[str, Any], columns: Sequence[str]) -> list[str]:
    """Per image and mean, one column each of ``columns`` (the metrics computed)."""
    width = max(len("mean"), *(len(r["name"]) for r in rows))
    sizes = [max(8, len(m)) for m in columns]
    lines = [f"{'image':{width}s}  " + "  ".join(f"{m.upper():>{n}s}" for m, n in zip(columns, sizes))]
    for r in [*rows, {"name": "mean", **mean}]:
        lines.append(f"{r['name']:{width}s}  " + "  ".join(f"{_cell(r[m]):>{n}s}" for m, n in zip(columns, sizes)))
    return lines


NOREF_NOTE = ("no ground truth: NIQE and BRISQUE are no-reference, lower is better; BRIGHTNESS is the mean "
              "luma in [0, 1]; NOISE is the noise level in 8-bit levels of luma, lower is quieter; INPUT_*: the "
              "same of the unenhanced input")


def cost_lines(s: dict[str, Any]) -> list[str]:
    w, h = (int(v) for v in s["resolution"].split("x"))
    at = s["resolution"] + (f" input (output {s['scale'] * w}x{s['scale'] * h})" if s["scale"] != 1 else "")
    counted = s["params"] is not None
    return [f"params: {s['params']:,}" if counted else "params: not counted (an ONNX file has no torch network)",
            f"FLOPs at {at}: {s['flops'] / 1e9:.3f} G ({s['flops'] / 2e9:.3f} GMAC)" if counted else
            "FLOPs: not counted (an ONNX file has no torch network)",
            f"latency: {1e3 * s['latency_s']:.1f} ms median of {s['repeats']} after {s['warmup']} warm-up "
            f"on {s['device']} ({s['device_name']})" + (f", engine {s['engine']}" if s.get("engine", "torch") != "torch" else "")]


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from nas_llv import pipeline

    options = pipeline.EvalOptions(split=args.split, gt_mean=args.gt_mean, lpips_net=args.lpips_net, quantize=args.quantize,
                          output=args.output, repeats=args.repeats, warmup=args.warmup, engine=args.engine,
                          device=args.device, progress=not args.quiet, tile=args.tile)
    with logging_redirect_tqdm():
        summary = pipeline.evaluate(args.model, args.data, options, out_dir=args.out_dir)
    columns = [c for c in summary.metrics.columns if c != "name"]
    notes = [] if summary.record.get("ground_truth", True) else [NOREF_NOTE]
    print("\n".join(table(summary.metrics.to_dict("records"), summary.record, columns) + notes
                    + cost_lines(summary.record)))
    print(f"wrote {summary.out_dir / 'metrics.csv'} and {summary.out_dir / 'summary.json'}")
    return 0


@COMMANDS.register("eval")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM/LPIPS/RMSE on paired images (NIQE/BRISQUE without ground truth), "
                       "plus params, FLOPs, latency",
                       description="Evaluate a model on paired folders (DIR/low + DIR/high, a LOL root's "
                                   "eval15, or a RELLISUR root). A super-resolution model's output is scored "
                                   "against ground truths scale x its inputs. Images without ground truth "
                                   "(directly inside DIR, or DIR/low alone) get the no-reference NIQE and BRISQUE "
                                   "(the 'noref' extra) and brightness, of the outputs and the inputs. Outputs "
                                   "are quantised to 8 bits before scoring; see docs/evaluation.md for the rules.")
    p.add_argument("model", help="a model file, or a run folder with model.pt (with --engine onnx, also an ONNX file)")
    p.add_argument("--data", required=True, help="DIR with low/ and high/ (same names; high = scale x low for "
                   "an SR model), a LOL root, a RELLISUR root, or unpaired images (in DIR, or DIR/low alone)")
    p.add_argument("--split", default="test",
                   help="split of a RELLISUR root: train, val, test (default) or eval; other layouts have none")
    p.add_argument("--gt-mean", action="store_true", help="rescale each output to the ground truth's mean "
                   "luma before scoring (GT-mean, as LLFlow/Retinexformer report); off by default")
    p.add_argument("--lpips-net", default="alex", help="LPIPS backbone: alex (default), vgg, squeeze, or none (skip)")
    p.add_argument("--quantize", default="round",
                   help="8-bit quantisation of outputs before scoring: round (default) or truncate")
    p.add_argument("--output", default="x", help="which network output to score: x, the final image (default), "
                   "or an intermediate one the network names (u: the RUAS scene module's)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs for latency (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs (default 2)")
    p.add_argument("--engine", default="torch",
                   help="an inference engine (nas-llv list engines): torch, the model as built (default); "
                        "fast / compiled: folded for inference; onnx: onnxruntime on the CPU, on a model file "
                        "exported on the fly or on an ONNX file. The same images up to float rounding; the "
                        "latency is the engine's, params and FLOPs the model's")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    p.add_argument("-o", "--out-dir", help="where to write metrics.csv and summary.json "
                   "(default: eval-<data name>/ beside the model)")
    add_tile_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
