"""Engine ``compiled``: the fold of ``fast``, then ``torch.compile`` (frozen weights, dynamic sizes)."""
from __future__ import annotations

from torch import nn

from nas_llv.inference.engine import Engine
from nas_llv.space.fold import fold
from nas_llv.registry import ENGINES


@ENGINES.register("compiled")
class Compiled(Engine):
    """fast, then torch.compile: about a minute of compilation before the first image, faster after it"""

    def runner(self, net: nn.Module) -> nn.Module:
        return fold(net, compile=True)
