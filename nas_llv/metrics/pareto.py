"""The cost-quality Pareto front of a set of networks and the hypervolume it dominates.

A point is ``(cost, quality)``: cost is minimised (GFLOPs, ms), quality maximised (PSNR, SSIM).
The hypervolume of a set against a reference point ``(cost_ref, quality_ref)`` is the area of the
region ``{(c, q): c <= cost_ref, q >= quality_ref}`` that some point of the set dominates (cost at
most its cost and quality at most its quality): larger is better, and a point dominated by
another, or outside the reference box, adds nothing (Zitzler & Thiele 1999, the S-metric).
"""
from __future__ import annotations

from collections.abc import Iterable


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points, sorted by cost (ascending; quality then rises strictly).
    Of equal points, one is kept."""
    front: list[tuple[float, float]] = []
    for cost, quality in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or quality > front[-1][1]:
            front.append((cost, quality))
    return front


def hypervolume(points: Iterable[tuple[float, float]], reference: tuple[float, float]) -> float:
    """The area dominated by ``points`` inside the reference box (cost units x quality units).

    ``reference``: ``(cost_ref, quality_ref)``, the worst cost and the worst quality counted; a
    point at or beyond either adds nothing. 0.0 for no point inside the box.
    """
    cost_ref, quality_ref = reference
    inside = [(c, q) for c, q in points if c < cost_ref and q > quality_ref]
    front = pareto_front(inside)
    edges = [c for c, _ in front[1:]] + [cost_ref]
    return sum((right - c) * (q - quality_ref) for (c, q), right in zip(front, edges))
