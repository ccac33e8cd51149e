"""``nas-llv data noise DIR``: fit the synthesis's noise keys to a folder of real photographs.

The keys go to standard output as ``key: value`` lines to paste under a recipe's ``data:`` (with
``--overrides``, one line of ``data.key=value`` words for a command line); what
they were fitted from (each image's fit, spread and noise level function) goes to standard error.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from nas_llv.registry import COMMANDS

if TYPE_CHECKING:
    from nas_llv.pipeline import NoiseFit


def _image_line(f: Any) -> str:
    """One image's fit (a ``noisecal.ImageFit``) as a row of the table."""
    channels = "/".join(f"{p:.0f}" for p, _ in f.channels) or "-"
    photons = f"{f.photons:.0f} [{f.photons_range[0]:.0f}, {f.photons_range[1]:.0f}]"
    read = f"{f.read:.2g} [{f.read_range[0]:.2g}, {f.read_range[1]:.2g}]"
    return f"  {f.name:14s} {f.tiles:6d}  {photons:26s}  {read:26s}  {f.row:<8.2g}  {f.correlation:5.2f}  {channels}"


def summary(fit: NoiseFit) -> list[str]:
    """The human-readable account of a calibration: per-image fits, then each image's NLF."""
    cal = fit.calibration
    lines = [f"noise fitted on {len(cal.fits)} image(s), reading '{fit.reading}' (photons, read: median and 16th-84th "
             "percentile over bootstrap refits; row: std in linear light; corr: pixel over high-passed variance)",
             f"  {'image':14s} {'tiles':>6s}  {'photons':26s}  {'read':26s}  {'row':8s}  {'corr':>5s}  R/G/B photons"]
    lines += [_image_line(f) for f in cal.fits]
    lines += [f"  {name}: left out, {why}" for name, why in cal.skipped]
    lines.append("noise level function (var_L = a L + b in linear light; points: 8-bit level -> noise std in levels)")
    for f in cal.fits:
        levels, std = fit.points(f)
        points = ", ".join(f"{m:.1f}: {s:.2f}" for m, s in zip(levels, std))
        lines.append(f"  {f.name}: a = {f.nlf.a:.3g}, b = {f.nlf.b:.3g}; {points}")
    return lines


def run_noise(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    fit = pipeline.fit_noise(args.dir, patch=args.patch, max_images=args.max_images, reading=args.reading,
                             gamma=args.gamma, tone_curve=args.tone_curve)
    print("\n".join(summary(fit)), file=sys.stderr)
    print("\n".join(fit.recipe_lines(overrides=args.overrides)))
    return 0


@COMMANDS.register("data")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="measure data: fit the synthesis's noise to real photographs",
                       description="Tools that measure data for recipes.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    noise = actions.add_parser(
        "noise", help="fit photons/read/row_ratio to a folder of real photographs",
        description="Measure the noise level function (noise variance against intensity, in flat tiles) of "
                    "every image in DIR, carry it back through the synthesis's tone curve and fit the "
                    "synthesis's noise keys to it (docs/data.md). Prints the keys to paste under a recipe's "
                    "data:, and what they were fitted from on standard error.")
    noise.add_argument("dir", help="a folder of real photographs from the camera to match")
    noise.add_argument("--patch", type=int, default=16, metavar="P", help="side of the flat tiles (default 16)")
    noise.add_argument("--max-images", type=int, metavar="N", help="fit the first N images only (sorted by name)")
    noise.add_argument("--reading", choices=("pixel", "highpass"), default="pixel",
                       help="match the photographs' pixel variance (default), or only the fine grain a high-pass "
                            "filter sees (they differ where the noise is spatially correlated)")
    noise.add_argument("--gamma", type=float, default=2.2, help="the recipe's data.gamma (default 2.2)")
    noise.add_argument("--tone-curve", action=argparse.BooleanOptionalAction, default=True,
                       help="the recipe's data.tone_curve (default: on)")
    noise.add_argument("--overrides", action="store_true",
                       help="print the keys as one line of data.KEY=VALUE overrides, for $(...) in a train command")
    noise.set_defaults(run=run_noise)
