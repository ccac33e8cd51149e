"""Pluggable hypergradient methods: ``HYPERGRADS.build({"type": name, **options})(problem)``.

``HYPERGRADS`` imports every module in this package on its first lookup (``nas_llv.registry``),
which registers ``first_order``, ``finite_difference``, ``unrolled_exact`` (``unrolled.py``) and
``implicit_cg``, ``implicit_gn`` (``implicit.py``): a new method is one new file here. See
docs/hypergradients.md for what each computes and costs.
"""
from __future__ import annotations

from nas_llv.search.hypergrad.base import Bilevel, HypergradMethod, apply_upper_grads, register
from nas_llv.search.hypergrad.implicit import ImplicitCG, ImplicitGN, conjugate_gradient
from nas_llv.search.hypergrad.unrolled import FiniteDifference, FirstOrder, UnrolledExact

__all__ = [
    "Bilevel", "HypergradMethod", "apply_upper_grads", "register", "conjugate_gradient",
    "FirstOrder", "FiniteDifference", "UnrolledExact", "ImplicitCG", "ImplicitGN",
]
