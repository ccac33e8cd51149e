"""``nas-llv derive GENOTYPE_OR_RUN``: build the fixed network, print ops, params, FLOPs."""
from __future__ import annotations

import argparse


def summary(geno, net, size: tuple[int, int] | None) -> list[str]:
    from nas_llv.space.genotype import genotype_scale

    scale = genotype_scale(geno)
    lines = [f"network: {geno.network.get('type', 'single')}"
             + "".join(f" {k}={v}" for k, v in geno.network.items() if k != "type")
             + (f" (super-resolution x{scale})" if scale != 1 else "")]
    for label, op in geno.choices.items():
        lines.append(f"  {label:18s} {op}")
    lines.append(f"params: {sum(p.numel() for p in net.parameters()):,}")
    if size is not None:
        lines.append(flops_line(net, size, scale))
    return lines


def flops_line(net, size: tuple[int, int], scale: int = 1) -> str:
    """FLOPs of one forward pass on a ``size`` (width, height) input: the LR size of an SR network."""
    import torch

    from nas_llv.metrics import count_flops

    flops = count_flops(net, torch.rand(1, 3, size[1], size[0]))
    at = f"{size[0]}x{size[1]}" + (f" input (output {scale * size[0]}x{scale * size[1]})" if scale != 1 else "")
    return f"FLOPs at {at}: {flops / 1e9:.3f} G ({flops / 2e9:.3f} GMAC)"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 600x400, got '{text}'") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be >= 1, got '{text}'")
    return w, h


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{text}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def run(args: argparse.Namespace) -> int:
    from nas_llv.config import ConfigError
    from nas_llv.space.genotype import find_genotype, load_genotype, module_prefix

    path = find_genotype(args.target)
    geno = load_genotype(path)
    try:
        net = geno.build(channels=args.channels, repeat=args.repeat)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    print("\n".join(summary(geno, net, None if args.no_flops else args.size)))
    if args.draw:
        from nas_llv.space.draw import draw_cell

        for name, spec in geno.spaces.items():
            prefix = module_prefix(geno.network, name)
            choices = {k[len(prefix):]: v for k, v in geno.choices.items() if k.startswith(prefix)}
            out = draw_cell(spec.cell, path.parent / f"cell_{name}.png", title=f"derived {name}", choices=choices)
            print(f"wrote {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("derive", help="build the fixed network of a genotype and summarise it",
                       description="Build the derived network from a genotype file (or a run folder) alone.")
    p.add_argument("target", help="genotype.yaml, or a run folder containing one")
    p.add_argument("--channels", type=_positive, help="rebuild every module at this width (full-size retraining)")
    p.add_argument("--repeat", type=_positive, help="rebuild with this many stages/blocks per module")
    p.add_argument("--size", type=_size, default=(600, 400), help="input WIDTHxHEIGHT for FLOPs, the low-resolution "
                   "size for a super-resolution network (default 600x400)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--draw", action="store_true", help="draw each derived cell to PNG beside the genotype")
    p.set_defaults(run=run)
