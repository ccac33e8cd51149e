"""Engine ``torch``: the model as built, on the CPU or a GPU (the reference the others match)."""
from __future__ import annotations

from nas_llv.inference.engine import Engine
from nas_llv.registry import ENGINES


@ENGINES.register("torch")
class Plain(Engine):
    """the model file's network as built (the default; any output, CPU or GPU)"""
