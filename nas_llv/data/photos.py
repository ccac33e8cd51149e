"""Normal-light photographs that installed packages ship: the named photo sets that
``data.type: synth`` darkens (``data.sources``; docs/data.md, "Sources").

Each set is a fixed, ordered list of colour photographs of scenes, read at run time from the
installed files of one package (PyPI or Debian); nothing is downloaded. Drawings, renders,
logos, microscopy and images of unclear or restricted licence in the same packages are left
out. A photograph's stable name is ``SET/PHOTO`` (``bundled/astronaut``,
``lomiri/Bridge_by_Sander_Klootwijk``); ``data.val_photos`` names photographs, or whole sets,
that only validation uses.

``bundled`` (the default) is what the required packages bundle, read as it always was: the same
photographs in the same order, so recipes reproduce bit for bit. A photograph with a short side
over ``MAX_SIDE`` pixels is reduced (a box filter by an integer factor) as it is read: the
synthesis crops half to all of the short side and resizes it to ``synth_size`` anyway, and the
decoded photographs stay cached in memory.
"""
from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from nas_llv.config import ConfigError

Loader = Callable[[], torch.Tensor]  # -> (3, H, W) uint8
MAX_SIDE = 1024


# -- the bundled set: what scikit-image and matplotlib ship (unchanged) -------------------------
def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data  # these ship inside the wheel: no download is triggered

        if name.startswith("motorcycle"):
            return data.stereo_motorcycle()[0 if name.endswith("left") else 1]
        return getattr(data, name)()
    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        with cbook.get_sample_data(name) as f:
            return np.asarray(Image.open(f).convert("RGB"))
    return load


# Every colour photograph of a scene that scikit-image and matplotlib ship (microscopy, fundus,
# astronomy, drawings and synthetic charts left out).
BUNDLED: dict[str, Callable[[], np.ndarray]] = {
    **{n: _skimage(n) for n in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")},
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
}


@functools.lru_cache(maxsize=None)
def bundled_image(name: str) -> torch.Tensor:
    """A bundled photograph as ``(3, H, W)`` uint8 (cached)."""
    arr = np.array(BUNDLED[name]()[..., :3], dtype=np.uint8)  # a writable copy
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


@functools.lru_cache(maxsize=None)
def read_photo(path: str) -> torch.Tensor:
    """The photograph at ``path`` as ``(3, H, W)`` uint8, its short side reduced to at most
    ``MAX_SIDE`` by an integer factor (cached)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
    factor = math.ceil(min(img.size) / MAX_SIDE)
    if factor > 1:
        img = img.reduce(factor)
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


# -- the sets ------------------------------------------------------------------------------------
def _python_package(module: str) -> Callable[[], Path | None]:
    """The installed folder of ``module`` (found without importing it), or None."""
    def locate() -> Path | None:
        spec = importlib.util.find_spec(module)
        return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    return locate


def _folder(path: str) -> Callable[[], Path | None]:
    return lambda: Path(path) if Path(path).is_dir() else None


def _stems(*files: str, under: str = "") -> tuple[tuple[str, str], ...]:
    return tuple((Path(f).stem, f"{under}{f}") for f in files)


@dataclass(frozen=True)
class PhotoSet:
    """The photographs ``files`` (``(name, path under the package's folder)``) of ``package``,
    which ``install`` installs and ``locate`` finds (None: not installed); or, for the bundled
    set, ``loaders`` by name. Each set's licence: docs/data.md."""

    package: str
    install: str
    files: tuple[tuple[str, str], ...] = ()
    locate: Callable[[], Path | None] = lambda: None
    loaders: tuple[tuple[str, Loader], ...] = ()

    def photos(self, name: str) -> list[tuple[str, Loader]]:
        """``(SET/PHOTO, loader)`` in order; a ConfigError when the package or a file is missing."""
        if self.loaders:
            return [(f"{name}/{n}", load) for n, load in self.loaders]
        root = self.locate()
        if root is None:
            raise ConfigError(f"data.sources: photo set '{name}' needs {self.package}, which is not "
                              f"installed; install it with: {self.install}")
        missing = [p for _, p in self.files if not (root / p).is_file()]
        if missing:
            raise ConfigError(f"data.sources: photo set '{name}': {root / missing[0]} is missing "
                              f"(another version of {self.package}?); reinstall it with: {self.install}")
        return [(f"{name}/{n}", functools.partial(read_photo, str(root / p))) for n, p in self.files]


_LOMIRI = ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
           "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
           "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
           "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
           "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")
_MATE = ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
         "Storm", "TwoWings", "Wood", "YellowFlower")
_PLASMA = ("BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
           "Kite", "OneStandsOut", "Path", "summer_1am")
_CAMPUS = [f"P1070{n}" for n in (491, 493, 494, 495, 496, 497, 498, 499, 500, 501, 503, 504, 505, 506, 507,
                                   509, 510, 512, 514, 515)]
_CAMPUS_HOLDOUT = [f"P1070{n}" for n in (492, 502, 508, 511, 513)]
_MVTB_OTHER = (*(f"flowers{k}" for k in range(1, 10)), "church", "eiffel-1", "notre-dame", "parks", "road",
               "rocks2-l", "roof", "walls-l")

# name -> set; docs/data.md lists each with its count and licence (a test holds the counts equal)
PHOTO_SETS: dict[str, PhotoSet] = {
    "bundled": PhotoSet("scikit-image and matplotlib", "pip install -e .",
                        loaders=tuple((n, functools.partial(bundled_image, n)) for n in BUNDLED)),
    "sklearn": PhotoSet("scikit-learn", "pip install scikit-learn (nni installs it)",
                        _stems("china.jpg", "flower.jpg", under="datasets/images/"), _python_package("sklearn")),
    "sporco": PhotoSet("sporco", "pip install -e '.[photos]'",
                       _stems("barbara.png", "kodim23.png", "monarch.png", "sail.png", "tulips.png", under="data/"),
                       _python_package("sporco")),
    "mvtb": PhotoSet("mvtb-data (130 MB)", "pip install mvtb-data",
                     _stems(*(f"{n}.png" for n in _CAMPUS), under="images/campus/")
                     + _stems(*(f"{n}.png" for n in _CAMPUS_HOLDOUT), under="images/campus/holdout/")
                     + _stems(*(f"{n}.png" for n in _MVTB_OTHER), under="images/"),
                     _python_package("mvtbdata")),
    "lomiri": PhotoSet("the Debian package lomiri-wallpapers-16.04", "apt-get install lomiri-wallpapers-16.04",
                       _stems(*(f"{n}.jpg" for n in _LOMIRI)), _folder("/usr/share/backgrounds")),
    "mate": PhotoSet("the Debian package mate-backgrounds", "apt-get install mate-backgrounds",
                     _stems(*(f"{n}.jpg" for n in _MATE)), _folder("/usr/share/backgrounds/mate/nature")),
    "plasma": PhotoSet("the Debian package plasma-workspace-wallpapers",
                       "apt-get install plasma-workspace-wallpapers",
                       tuple((n, f"{n}/contents/images/2560x1600.jpg") for n in _PLASMA),
                       _folder("/usr/share/wallpapers")),
}


def check_sources(sources: Sequence[str]) -> None:
    """ValueError unless ``sources`` names one or more known sets, each once."""
    if not sources:
        raise ValueError(f"sources is empty; allowed: one or more of {', '.join(PHOTO_SETS)}")
    for s in sources:
        if s not in PHOTO_SETS:
            raise ValueError(f"sources: '{s}' is not a photo set; allowed: {', '.join(PHOTO_SETS)}")
    if len(set(sources)) < len(sources):
        raise ValueError(f"sources names a set twice: {list(sources)}")


def resolve(sources: Sequence[str]) -> tuple[list[str], list[Loader]]:
    """The photographs of ``sources`` in order: their ``SET/PHOTO`` names and loaders."""
    pairs = [p for s in sources for p in PHOTO_SETS[s].photos(s)]
    return [n for n, _ in pairs], [load for _, load in pairs]


def photo_names(sources: Sequence[str] = ("bundled",)) -> list[str]:
    """The ``SET/PHOTO`` names of ``sources``' photographs, in the order synth draws them."""
    check_sources(sources)
    return resolve(sources)[0]
