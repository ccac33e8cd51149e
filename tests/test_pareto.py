"""nas_llv.metrics.pareto: the front and the hypervolume benchmarks/front.py reports, against areas
computed by hand and by counting unit cells."""
from __future__ import annotations

import random

import pytest

from nas_llv.metrics.pareto import hypervolume, pareto_front

# (GFLOPs, PSNR): (3, 21) is dominated by (2, 22); (5, 30) lies beyond the cost reference and
# (0.5, 10) below the quality reference
POINTS = [(3.0, 21.0), (1.0, 20.0), (5.0, 30.0), (2.0, 22.0), (0.5, 10.0)]
REFERENCE = (4.0, 15.0)


def test_the_front_keeps_the_non_dominated_points_by_cost():
    assert pareto_front(POINTS) == [(0.5, 10.0), (1.0, 20.0), (2.0, 22.0), (5.0, 30.0)]
    assert pareto_front([(1.0, 20.0), (1.0, 20.0), (1.0, 19.0)]) == [(1.0, 20.0)]


def test_hypervolume_of_a_hand_computed_case():
    # (1, 20) holds 20 - 15 = 5 dB from 1 to 2 GFLOPs, (2, 22) 7 dB from 2 to 4: 5 + 14
    assert hypervolume(POINTS, REFERENCE) == pytest.approx(19.0)
    assert hypervolume([(1.0, 20.0)], REFERENCE) == pytest.approx(15.0)


def test_points_outside_the_box_or_dominated_add_nothing():
    assert hypervolume([], REFERENCE) == 0.0
    assert hypervolume([(5.0, 30.0), (0.5, 10.0), (4.0, 40.0), (1.0, 15.0)], REFERENCE) == 0.0
    base = hypervolume([(1.0, 20.0), (2.0, 22.0)], REFERENCE)
    assert hypervolume([(1.0, 20.0), (2.0, 22.0), (3.0, 21.0), (2.5, 22.0)], REFERENCE) == pytest.approx(base)


def test_hypervolume_counts_the_unit_cells_dominated():
    rng = random.Random(0)
    for _ in range(20):
        points = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(rng.randint(1, 6))]
        cells = sum(any(c <= x and q >= y + 1 for c, q in points) for x in range(8) for y in range(2, 10))
        assert hypervolume(points, (8, 2)) == pytest.approx(cells)
