"""How an evaluation scores: ``EvalOptions``, every field an ``eval`` option (docs/evaluation.md).

Kept apart from ``scoring`` so that the pipeline and the command line can name these options
without importing torch, the datasets or the metrics (a command that fails on its input answers
in the time torch takes to import, not the metrics' torchvision as well).
"""
from __future__ import annotations

from dataclasses import dataclass

from nas_llv.config import ConfigError

LPIPS_NETS = ("alex", "vgg", "squeeze", "none")
QUANTIZE = ("round", "truncate")


@dataclass(frozen=True)
class EvalOptions:
    """How ``evaluate_model`` scores (docs/evaluation.md); every field is an ``eval`` option."""

    split: str = "test"  # of a RELLISUR root
    gt_mean: bool = False  # rescale each output to its ground truth's mean luma first
    lpips_net: str = "alex"  # or vgg, squeeze, none (skip)
    quantize: str = "round"  # or truncate, as the RUAS authors save
    output: str = "x"  # which network output to score
    repeats: int = 10  # timed runs for latency
    warmup: int = 2  # untimed runs before them
    engine: str = "torch"  # an inference engine (nas_llv.inference.engines)
    device: str = "auto"
    progress: bool = True  # a progress bar on a terminal
    tile: int | None = None  # tile side for images too large for memory; None: from the free memory, 0: never

    def check(self) -> None:
        from nas_llv.enhance import check_output_name
        from nas_llv.tiles import check_tile

        check_output_name(self.output)
        check_tile(self.tile)
        if self.repeats < 1 or self.warmup < 0:
            raise ConfigError(f"need --repeats >= 1 and --warmup >= 0, got {self.repeats} and {self.warmup}")
        for name, value, allowed in (("--lpips-net", self.lpips_net, LPIPS_NETS),
                                     ("--quantize", self.quantize, QUANTIZE)):
            if value not in allowed:
                raise ConfigError(f"{name} {value}: not allowed; allowed: {', '.join(allowed)}")
