"""Image files <-> tensors: ``(3, H, W)`` float32 in [0, 1], RGB only.

Reading goes through Pillow (PNG, JPEG, BMP, TIFF, WEBP). Every failure is a
``ConfigError`` whose message starts with the offending file, so a bad image in a
thousand-image folder is found at once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nas_llv.config import ConfigError
from nas_llv.atomic import atomic_write
from nas_llv.tiles import MAX_PIXELS

IMAGE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
# nas-llv's own limit (tiles.MAX_PIXELS, --max-pixels) names the file and the option; Pillow's
# decompression-bomb warning would only repeat it, less clearly
Image.MAX_IMAGE_PIXELS = None

# Modes that carry one intensity channel (with or without alpha): refused, never guessed into RGB.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WRITE_MODES = ("round", "truncate")


def _open_rgb(path: Path, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    try:
        with Image.open(path) as img:
            w, h = img.size
            if max_pixels is not None and w * h > max_pixels:
                raise ConfigError(f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
                                  f"(--max-pixels); raise it to process this image")
            img.load()  # decoding is lazy; force it here so a truncated file fails now
            img = img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ConfigError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    except MemoryError:
        raise ConfigError(f"{path}: not enough memory to decode this image") from None
    if img.mode in _GRAY_MODES:
        raise ConfigError(f"{path}: grayscale image (mode {img.mode}); nas-llv needs RGB")
    # RGBA/P/CMYK/YCbCr -> RGB; alpha is dropped, not composited.
    return img if img.mode == "RGB" else img.convert("RGB")


def read_image(path: str | Path, max_pixels: int | None = MAX_PIXELS, levels: bool = False) -> torch.Tensor:
    """Read an RGB image file; returns ``(3, H, W)`` float32 in [0, 1] (``levels``: uint8 in [0, 255],
    a quarter of the memory, for an image to be enhanced tile by tile).

    Raises ``ConfigError`` naming the file when it is missing, unreadable, corrupt, grayscale,
    over ``max_pixels`` (None: no limit) or too large to decode in memory. RGBA and palette images
    are converted to RGB (alpha dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such image file")
    img = _open_rgb(path, max_pixels)
    try:
        arr = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)
        return arr if levels else arr.to(torch.float32).div_(255.0)
    except MemoryError:
        raise ConfigError(f"{path}: not enough memory for this {img.width}x{img.height} image") from None


def to_uint8(x: torch.Tensor, mode: str = "round") -> np.ndarray:
    """``x: (3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8; values outside [0, 1] are clipped.

    ``round`` rounds to the nearest level; ``truncate`` is ``uint8(clip(x * 255))``, the way the
    RUAS authors save their outputs.
    """
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image tensor of shape (3, H, W), got {tuple(x.shape)}")
    return to_levels(x.detach().to("cpu")[None], mode)[0].permute(1, 2, 0).contiguous().numpy()


def to_levels(x: torch.Tensor, mode: str = "round") -> torch.Tensor:
    """``x: (N, C, H, W)`` in [0, 1] -> the 8-bit levels it saves as, uint8 of the same shape and
    device (``mode`` as in ``to_uint8``); pixel by pixel, so a tiled image gets a whole one's."""
    if mode not in WRITE_MODES:
        raise ValueError(f"mode={mode!r} is not allowed; allowed: {', '.join(WRITE_MODES)}")
    from nas_llv.metrics import quantize  # here: metrics pulls in torchvision (LPIPS)

    return quantize(x.to(torch.float32), mode).mul_(255.0).round_().to(torch.uint8)


def write_image(path: str | Path, x: torch.Tensor, mode: str = "round") -> Path:
    """Write ``x: (3, H, W)`` in [0, 1] (or uint8 levels) to ``path`` (format from the extension), atomically.

    Parent folders are created; the file appears complete or not at all (temp file + rename).
    """
    path = Path(path)
    fmt = _PIL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unsupported image extension; allowed: {', '.join(IMAGE_EXTS)}")
    arr = x.permute(1, 2, 0).contiguous().cpu().numpy() if x.dtype == torch.uint8 else to_uint8(x, mode)
    img = Image.fromarray(arr, mode="RGB")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))
    return path


def is_image(path: Path) -> bool:
    """True for a visible file whose extension is one of ``IMAGE_EXTS`` (any case)."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTS


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name.

    Raises ``ConfigError`` when the folder is missing or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    files = sorted((p for p in folder.iterdir() if is_image(p)), key=lambda p: p.name)
    if not files:
        raise ConfigError(f"{folder}: no images (looked for {', '.join(IMAGE_EXTS)})")
    return files
