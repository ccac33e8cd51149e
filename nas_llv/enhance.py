"""Run a fixed network on images: pick its output, enhance a folder file by file.

A folder run never stops at a bad file: each unreadable image (or one the network fails on) is
logged on one line and listed in the result; the others are written.
"""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from nas_llv.atomic import TEMP_SUFFIX
from nas_llv.config import ConfigError, first_line
from nas_llv.data import list_images, read_image, write_image
from nas_llv.data.io import to_levels
from nas_llv.diskfull import DiskFull
from nas_llv.tiles import DEFAULT_PAD, MAX_PIXELS, Tiler

log = logging.getLogger(__name__)

# Formats written losslessly keep their extension; the others are written as PNG (same stem).
LOSSLESS_EXTS = (".png", ".bmp", ".tif", ".tiff")


OUTPUTS = ("x", "u")  # the final image; the RUAS scene module's enhanced image, before denoising


def check_output_name(output: str) -> None:
    """``output`` one of the images networks name (``OUTPUTS``); whether a given network gives it
    is checked on its first image (``select_output``)."""
    if output not in OUTPUTS:
        raise OutputError(f"--output {output}: not allowed; allowed: {', '.join(OUTPUTS)}")


class OutputError(ConfigError):
    """The requested output is not one the network gives (the same for every image)."""


def select_output(out: torch.Tensor | dict[str, Any], which: str = "x") -> torch.Tensor:
    """The image ``which`` names among a network's outputs.

    Networks return a tensor (the final image, 'x') or a dict holding 'x' and whatever
    intermediate images the network names (e.g. 'u', the enhanced image before denoising).
    """
    if isinstance(out, torch.Tensor):
        if which != "x":
            raise OutputError(f"output '{which}' is not available: this network returns one image ('x')")
        return out
    if which not in out or not isinstance(out[which], torch.Tensor):
        names = [k for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 4]
        raise OutputError(f"output '{which}' is not available; this network gives: {', '.join(names)}")
    return out[which]


@torch.no_grad()
def enhance_tensor(net: nn.Module, y: torch.Tensor, output: str = "x") -> torch.Tensor:
    """y: (N, 3, H, W) in [0, 1] on the net's device -> the chosen output (unclipped), (N, 3, H, W),
    or (N, 3, sH, sW) for a super-resolution network of scale s."""
    return select_output(net(y), output)


def output_path(src: Path, out_dir: Path, taken: set[str]) -> Path:
    """Same file name in ``out_dir``; lossy formats (JPEG, WEBP) become ``<stem>.png``."""
    if src.suffix.lower() in LOSSLESS_EXTS:
        return out_dir / src.name
    name = f"{src.stem}.png"
    return out_dir / (name if name not in taken else f"{src.name}.png")


@dataclass
class EnhanceResult:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def plan_outputs(files: Iterable[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs; lossless names are reserved first so a converted one never clobbers them."""
    files = list(files)
    taken = {f.name for f in files if f.suffix.lower() in LOSSLESS_EXTS}
    plan = []
    for f in files:
        dst = output_path(f, out_dir, taken)
        taken.add(dst.name)
        plan.append((f, dst))
    return plan


def levels_runner(net: nn.Module, output: str = "x", save: str = "round") -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 levels (N, 3, h, w) -> the network's chosen output as uint8 levels (``save``: round or
    truncate), as ``write_image`` would save the whole image's."""
    def run(y8: torch.Tensor) -> torch.Tensor:
        return to_levels(enhance_tensor(net, y8.to(torch.float32).div_(255.0), output), save)
    return run


def sweep_own_temp_files(targets: Iterable[Path]) -> None:
    """Remove the temp files a killed earlier run left for these outputs (``.<name>.<random>.tmp``,
    nas_llv.atomic's naming); other hidden files are not touched."""
    for dst in targets:
        for stale in dst.parent.glob(f".{glob.escape(dst.name)}.*{TEMP_SUFFIX}") if dst.parent.is_dir() else ():
            stale.unlink(missing_ok=True)
            log.info("removed %s, left by an interrupted write", stale)


def enhance_folder(net: nn.Module, in_dir: str | Path, out_dir: str | Path, output: str = "x",
                   save: str = "round", device: str | torch.device = "cpu", progress: bool = True,
                   tile: int | None = None, pad: int = DEFAULT_PAD, max_pixels: int | None = MAX_PIXELS) -> EnhanceResult:
    """Enhance every image directly inside ``in_dir`` into ``out_dir`` (8-bit, ``save`` = round|truncate);
    a super-resolution network writes images scale x larger. An image too large for memory runs in
    tiles (``tile``: None decides from the free memory, 0 never tiles; nas_llv.tiles); one over
    ``max_pixels`` is refused before it is decoded."""
    device = torch.device(device)
    net = net.to(device).eval()
    out_dir = Path(out_dir)
    tiler = Tiler(levels_runner(net, output, save), tile, pad)
    result = EnhanceResult()
    plan = plan_outputs(list_images(in_dir), out_dir)
    sweep_own_temp_files(dst for _, dst in plan)
    for src, dst in tqdm(plan, desc="enhance", unit="img",
                        disable=None if progress else True):  # None: a bar on a terminal only
        try:
            y = read_image(src, max_pixels, levels=True)[None].to(device)
            with torch.no_grad():
                x = tiler(y)[0]
            del y
            write_image(dst, x, mode=save)
        except (OutputError, DiskFull):
            raise  # a wrong --output or a full disk fails every file alike: stop at once
        except (ConfigError, RuntimeError, ValueError, OSError, MemoryError) as exc:
            reason = first_line(exc, type(exc).__name__) if not isinstance(exc, MemoryError) else \
                "not enough memory"
            if isinstance(exc, MemoryError) or "allocate" in reason:
                reason += " (run it in tiles: --tile 1024, or smaller)"
            log.warning("failed: %s", reason if reason.startswith(str(src)) else f"{src}: {reason}")
            result.failed.append((src, reason))
            continue
        result.written.append(dst)
    return result


def check_folders(in_dir: str | Path, out_dir: str | Path, overwrite: bool) -> None:
    """IN_DIR must be a folder; OUT_DIR a writable folder that is neither IN_DIR nor inside it
    (the results would replace or mix with the user's images) unless ``overwrite``."""
    from nas_llv.paths import check_output_dir

    src, dst = Path(in_dir), Path(out_dir)
    if not src.is_dir():
        raise ConfigError(f"IN_DIR {in_dir}: {'is a file' if src.exists() else 'no such folder'}; "
                          f"give a folder of images")
    check_output_dir(dst, "OUT_DIR")
    if overwrite:
        return
    src, dst = src.resolve(), dst.resolve()
    if dst == src:
        raise ConfigError(f"OUT_DIR {out_dir} is the input folder: the results would overwrite your images; "
                          f"give another folder, or --overwrite to replace them")
    if src in dst.parents:
        raise ConfigError(f"OUT_DIR {out_dir} lies inside the input folder {in_dir}; give a folder outside it, "
                          f"or --overwrite to write there anyway")
