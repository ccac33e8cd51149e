"""Is a retraining usable? Guards against a training that ends without error and is wrong
(docs/training.md, "Is the result usable?").

- ``drift_warnings``, before training: an objective known to drift (RUAS's scene loss with
  nothing holding the exposure); ``selection_warnings``: ``train.keep: best`` on a handful of
  validation images.
- ``OutputStats``, at every validation: the network's outputs on the validation inputs, measured
  against those inputs. ``Implausibility.of`` names what leaves the plausible range that
  ``LIMITS`` sets: a colour cast, saturated channels, outputs darker than the input. Any objective,
  any data: it needs no ground truth.

The trainer logs each finding at the end and records it; with ``train.strict`` it then raises
``Implausible`` (exit status 3) once the run folder is complete.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from nas_llv.config import ConfigError

CHANNELS = ("R", "G", "B")
PIXELS = ("in_pixels", "out_pixels", "gt_pixels")
WHITE = 254.5 / 255  # an output at or above this is written as 255 (eval's 8-bit rounding)


@dataclass(frozen=True)
class Limits:
    """The plausible range of an enhancer's outputs, relative to its inputs (pooled over the
    validation inputs). docs/training.md says where each number comes from."""

    #: how far a channel's share of the output's brightness, m_c / (m_R + m_G + m_B), may lie outside
    #: the range between its share in the input and a third (gray): moving towards gray is white
    #: balance, anything else a cast added by the network
    cast: float = 0.05
    #: how much larger the share of a channel's pixels at white may be in the output than in the input
    saturated: float = 0.2
    #: the least mean output / mean input; below it, the network darkens what it should brighten
    gain: float = 0.9


LIMITS = Limits()


class Implausible(ConfigError):
    """``train.strict``: the finished training's outputs left the plausible range (files are written)."""

    exit_status = 3


def _loss_types(cfg: Mapping[str, Any]) -> list[str]:
    """The loss types of one ``losses:`` entry (a ``{type: ...}`` or a ``{terms: ...}`` composite)."""
    if "type" in cfg:
        return [cfg["type"]]
    return [t.get("type") for t in cfg.get("terms", {}).values() if isinstance(t, Mapping)]


def drift_warnings(losses: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float]) -> list[str]:
    """A warning for an objective that trains RUAS's scene loss with nothing holding the exposure:
    met in the limit by over-brightening (or, with RTV, by a collapse to a colour cast)."""
    types = {k: _loss_types(losses[k]) for k in weights if k in losses}
    if any("exposure" in t for t in types.values()):
        return []
    return [f"train.objective: entry '{k}' trains the RUAS scene loss with no exposure term; trained long, it "
            f"drifts towards white or collapses to a colour cast (docs/training.md, 'Training without ground "
            f"truth'); recipes/ruas_unsupervised_train.yaml adds the terms that hold it"
            for k, t in types.items() if "ruas_scene" in t]


SELECT_IMAGES = 8  # fewer validation images than this, and train.keep: best chooses mostly on noise


def selection_warnings(keep: str, images: int) -> list[str]:
    """A warning for ``train.keep: best`` choosing on a handful of validation images: a step's
    mean over them differs from the next step's by less than images differ from one another."""
    if keep != "best" or images >= SELECT_IMAGES:
        return []
    return [f"train.keep: best chooses the step by its score on {images} validation image(s); on fewer than "
            f"{SELECT_IMAGES} the choice is mostly noise (docs/training.md, 'Is the result usable?'). Keep the "
            f"final weights (train.keep: last), or validate on more images (data.val_ratio, train.val_batches)"]


class OutputStats:
    """Sums over (input, output) batches, pooled: channel means and shares of pixels at white.

    ``add(low, x)``: low (N, 3, h, w), x (N, 3, H, W) (an SR output is larger), both in [0, 1]
    (x is clipped here as eval clips it). The sums are plain floats (``as_dict``), so ranks of a
    data-parallel run average them and a checkpoint keeps them.
    """

    KEYS = ("in_sum", "out_sum", "gt_sum", "in_white", "out_white", "gt_white")

    def __init__(self, sums: Mapping[str, Any] | None = None) -> None:
        sums = dict(sums or {})
        self.sums = {k: list(sums.get(k, [0.0] * 3)) for k in self.KEYS}
        self.pixels = {k: float(sums.get(k, 0.0)) for k in PIXELS}

    def add(self, low: torch.Tensor, x: torch.Tensor, high: torch.Tensor | None = None) -> None:
        images = {"in": low, "out": x.clamp(0.0, 1.0), **({"gt": high} if high is not None else {})}
        for key, t in ((k, v.detach().float()) for k, v in images.items()):
            for c, value in enumerate(t.sum(dim=(0, 2, 3)).tolist()):
                self.sums[f"{key}_sum"][c] += value
            for c, value in enumerate((t >= WHITE).sum(dim=(0, 2, 3)).tolist()):
                self.sums[f"{key}_white"][c] += float(value)
            self.pixels[f"{key}_pixels"] += float(t.shape[0] * t.shape[2] * t.shape[3])

    def flat(self) -> dict[str, float]:
        """Every sum under its own name (``in_sum.0``, ...): what ``distributed.mean_floats`` takes."""
        return {**{f"{k}.{c}": v for k, vs in self.sums.items() for c, v in enumerate(vs)}, **self.pixels}

    @classmethod
    def from_flat(cls, flat: Mapping[str, float]) -> OutputStats:
        return cls({**{k: [flat[f"{k}.{c}"] for c in range(3)] for k in cls.KEYS},
                    **{k: flat[k] for k in PIXELS}})

    def as_dict(self) -> dict[str, Any]:
        return {**{k: list(v) for k, v in self.sums.items()}, **self.pixels}

    def means(self, key: str) -> list[float]:
        return [s / max(self.pixels[f"{key}_pixels"], 1.0) for s in self.sums[f"{key}_sum"]]

    def white(self, key: str) -> list[float]:
        return [s / max(self.pixels[f"{key}_pixels"], 1.0) for s in self.sums[f"{key}_white"]]


def shares(means: list[float]) -> list[float]:
    """Each channel's share of the brightness, m_c / sum(m); gray (1/3 each) for a black image."""
    total = sum(means)
    return [m / total for m in means] if total > 1e-8 else [1 / 3] * 3


@dataclass(frozen=True)
class Implausibility:
    """The three measures of ``OutputStats`` (the trajectory's ``check/*`` columns) and the findings."""

    cast: float       # the largest channel share outside [its input share, 1/3]; 0 inside
    saturated: float  # the largest rise, over the channels, of the share of pixels at white
    gain: float       # mean output / mean input
    findings: tuple[str, ...]

    @classmethod
    def of(cls, stats: OutputStats, limits: Limits = LIMITS) -> Implausibility:
        """The measures, and a finding for each beyond ``limits``. Where the data has ground truth
        (``gt``), what it does is plausible too: its colour, its white pixels, its brightness."""
        refs = ["in", "gt"] if stats.pixels["gt_pixels"] else ["in"]
        a, b = shares(stats.means("in")), shares(stats.means("out"))
        ends = list(zip(*(shares(stats.means(r)) for r in refs), [1 / 3] * 3))  # per channel
        cast_by = [max(min(e) - bc, bc - max(e), 0.0) for e, bc in zip(ends, b)]
        white_ref = [max(w) for w in zip(*(stats.white(r) for r in refs))]
        white_out = stats.white("out")
        rise = [o - i for i, o in zip(white_ref, white_out)]
        mean_ref = min(sum(stats.means(r)) / 3 for r in refs)
        mean_out = sum(stats.means("out")) / 3
        gain = mean_out / mean_ref if mean_ref > 1e-8 else float("inf")
        ref = "the input's" if len(refs) == 1 else "the input's or the ground truth's"
        findings = []
        if max(cast_by) > limits.cast:
            findings.append(f"a colour cast: the output's channel shares ({_channels(b, '.3f')}) leave the range "
                            f"between gray and {ref} colour by {max(cast_by):.3f} (the input's shares: "
                            f"{_channels(a, '.3f')}; limit {limits.cast})")
        if max(rise) > limits.saturated:
            c = rise.index(max(rise))
            findings.append(f"saturated channels: {white_out[c]:.0%} of the output's {CHANNELS[c]} values are "
                            f"white, {white_ref[c]:.0%} of {ref} (white by channel: {_channels(white_out, '.0%')}; "
                            f"limit +{limits.saturated:.0%})")
        if gain < limits.gain:
            findings.append(f"outputs darker than the input: mean {mean_out:.3f} against {mean_ref:.3f} of {ref} "
                            f"(gain {gain:.2f}, limit {limits.gain})")
        return cls(max(cast_by), max(rise), gain, tuple(findings))

    def measures(self) -> dict[str, float]:
        return {"cast": self.cast, "saturated": self.saturated, "gain": self.gain}

    def columns(self) -> dict[str, float]:
        """The trajectory's columns."""
        return {f"check/{k}": v for k, v in self.measures().items()}


def _channels(values: list[float], fmt: str) -> str:
    return ", ".join(f"{c} {format(v, fmt)}" for c, v in zip(CHANNELS, values))
