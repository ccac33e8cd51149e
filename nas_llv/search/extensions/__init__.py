"""Search extensions: what a search can add to plain DARTS, each switched on by its key of the
recipe's ``search:`` section and called by the loop through the hooks of ``base.Extension``.

``EXTENSIONS`` imports every module of this package on its first lookup (``nas_llv.registry``),
which registers ``hessian`` (RobustDARTS, DARTS-ES), ``perturb`` (SDARTS-RS), ``aux_skip``
(DARTS-), ``zero_one`` (FairDARTS, ``fair.py``), ``cost`` (the cost term, docs/cost.md) and
``max_skip`` (P-DARTS, ``skip_cap.py``): a new extension is one new file here (docs/extensions.md).
"""
from __future__ import annotations

from nas_llv.search.extensions.base import Extension, Search, build, register

__all__ = ["Extension", "Search", "build", "register"]
