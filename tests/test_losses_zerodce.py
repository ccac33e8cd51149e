"""Zero-DCE's no-reference regularisers (nas_llv/losses/zerodce.py) against hand-computed values and
the public Zero-DCE code's own formula."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas_llv.config import ConfigError
from nas_llv.registry import LOSSES


def _patches(values: list[list[float]], patch: int = 16) -> torch.Tensor:
    """(1, 3, 2*patch, 2*patch): four constant patches, values[k] the RGB of patch k (row-major)."""
    x = torch.zeros(1, 3, 2 * patch, 2 * patch, dtype=torch.float64)
    for k, rgb in enumerate(values):
        r, c = divmod(k, 2)
        x[0, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = torch.tensor(rgb, dtype=torch.float64)[:, None, None]
    return x


def test_exposure_is_the_mean_distance_of_patch_intensities_to_the_level():
    # patch intensities (mean over RGB): 0.2, 0.6, 0.9, 0.6 -> |Y - 0.6| = 0.4, 0, 0.3, 0
    x = _patches([[0.1, 0.2, 0.3], [0.6, 0.6, 0.6], [1.0, 0.9, 0.8], [0.3, 0.6, 0.9]])
    assert LOSSES.build("exposure")({"u": x}, {}).item() == pytest.approx(0.7 / 4, rel=1e-12)
    squared = LOSSES.build({"type": "exposure", "power": 2})({"u": x}, {}).item()
    assert squared == pytest.approx((0.16 + 0.09) / 4, rel=1e-12)
    # the public Zero-DCE code's L_exp(16, 0.6) is the squared form
    code = torch.mean(torch.pow(F.avg_pool2d(x.mean(1, keepdim=True), 16) - 0.6, 2)).item()
    assert squared == pytest.approx(code, rel=1e-12)


def test_exposure_reads_its_key_level_and_a_whole_small_image():
    x = torch.full((2, 3, 8, 8), 0.25, dtype=torch.float64)
    loss = LOSSES.build({"type": "exposure", "key": "x", "level": 0.15, "patch": 4096})
    assert loss({"x": x, "u": torch.zeros_like(x)}, {}).item() == pytest.approx(0.1, rel=1e-12)


def test_color_constancy_sums_the_squared_gaps_of_the_channel_means():
    x = _patches([[0.2, 0.4, 0.5]] * 4)
    expected = 0.2 ** 2 + 0.3 ** 2 + 0.1 ** 2
    assert LOSSES.build("color_constancy")({"u": x}, {}).item() == pytest.approx(expected, rel=1e-12)
    gray = torch.rand(2, 1, 8, 8, dtype=torch.float64).expand(2, 3, 8, 8)
    assert LOSSES.build("color_constancy")({"u": gray}, {}).item() == pytest.approx(0.0, abs=1e-15)


def test_color_constancy_averages_over_images():
    a = _patches([[0.2, 0.4, 0.5]] * 4)
    both = torch.cat([a, torch.full_like(a, 0.3)])
    assert LOSSES.build("color_constancy")({"u": both}, {}).item() == pytest.approx(0.14 / 2, rel=1e-12)


@pytest.mark.parametrize("cfg", [{"type": "exposure", "level": -0.1}, {"type": "exposure", "power": 3},
                                 {"type": "exposure", "patch": 0}])
def test_bad_options_fail_in_one_line(cfg):
    with pytest.raises(ConfigError):
        LOSSES.build(cfg)
