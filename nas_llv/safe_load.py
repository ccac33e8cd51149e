"""Reading PyTorch files a user hands over: tensors and plain containers, never code."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas_llv.config import ConfigError, first_line


def load_torch_file(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers, never code.

    A file holding anything else (a pickled object, a code payload) is refused with one line
    naming it, and so is an empty, truncated or foreign file; ``what`` names the expected kind.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a class or function to import and call: code
            raise ConfigError(f"{path}: refused: it holds objects other than tensors and plain data, so it is not "
                              f"a {what} or was written by an untrusted source (nothing in it was run)") from None
        raise ConfigError(f"{path}: cannot read as a {what} (not a PyTorch file, or a damaged one)") from None
    except Exception as exc:  # torch raises many types for an empty, torn or foreign file
        raise ConfigError(f"{path}: cannot read as a {what} ({type(exc).__name__}: {first_line(exc)})") from None
