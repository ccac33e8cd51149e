"""Loss hyper-variables (TriCo Sec. 3.3, CollaBA Eq. 11) and the composite loss.

Names: a loss's *coefficient* is the factor on it in a total (fixed in a composite, or 1/(2ς) and
the like from a hyper-variable); the *hyper-variables* ς, ϱ, λ are what a search learns; *weights*
are a network's ω only (docs/architecture.md, "Names").

``LossHypers`` holds one positive hyper-variable per named loss, starting at 1 (TriCo Alg. 1:
"ς as a unit vector"), and combines unweighted losses by ``form``:

- ``trico``:    sum_u L_u / (2 ς_u) + ln(1 + ς_u²)
- ``collaba``:  sum_u L_u / (2 ϱ_u²) + ln(1 + ϱ_u²). Eq. 11 as printed has an extra factor ϱ_u
  (L_u ϱ_u / (2 ϱ_u²)), which would make it the ``trico`` form; we read it as the
  uncertainty weighting that 1/(2ϱ²) with a log regulariser denotes.
- ``softplus``: sum_u λ_u L_u, λ_u = N softplus(w_u) / sum_j softplus(w_j). Without the
  normalisation the λ would all go to 0 under minimisation; with it only their ratios are
  learned. w_u starts at ln(e - 1), so every λ_u starts at 1.

Minimising ``trico`` over ς for a fixed L gives 4ς³ - Lς² - L = 0 (one positive root; L = 2 gives
ς = 1); ``collaba`` gives ϱ² = (L + sqrt(L² + 8L)) / 4.

Positivity (``positivity``, trico and collaba): ``exp`` (default) stores s = ln ς, so ς > 0 for any
optimiser and any hypergradient method (finite-difference perturbations, implicit steps) with no
projection step that every strategy would have to remember; a gradient step on s is a relative
step on ς, suited to hyper-variables spanning 0.18..2.2 (TriCo Fig. 7). ``clamp`` stores ς itself, as the
papers' plain gradient steps do; the caller must call ``project_()`` after each step, which clamps
to ``clamp_min``.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.config import ConfigError, build_entry
from nas_llv.registry import LOSSES

logger = logging.getLogger(__name__)

Form = Literal["trico", "collaba", "softplus"]
FORMS = ("trico", "collaba", "softplus")
POSITIVITY = ("exp", "clamp")
_SOFTPLUS_ONE = math.log(math.e - 1)  # softplus(_SOFTPLUS_ONE) == 1


def available_terms(terms: Mapping[str, nn.Module], who: str = "loss hyper-variables") -> dict[str, nn.Module]:
    """The terms whose ``available`` is not False; one log line names those left out."""
    kept = {n: t for n, t in terms.items() if getattr(t, "available", True)}
    dropped = [n for n in terms if n not in kept]
    if dropped:
        logger.warning("%s: leaving out unavailable loss(es) %s", who, ", ".join(dropped))
    return kept


class LossHypers(nn.Module):
    """One positive hyper-variable per loss name; ``forward(losses)`` gives the weighted total.

    ``names`` may be loss modules by name: unavailable ones are dropped (one log line).
    """

    def __init__(self, names: Sequence[str] | Mapping[str, nn.Module], form: Form = "trico",
                 positivity: Literal["exp", "clamp"] | None = None, clamp_min: float = 1e-3) -> None:
        super().__init__()
        if isinstance(names, Mapping):
            names = list(available_terms(names))
        if form not in FORMS:
            raise ConfigError(f"loss hyper-variables: form {form!r} is not allowed; allowed: {', '.join(FORMS)}")
        if form == "softplus" and positivity is not None:
            raise ConfigError("loss hyper-variables: form 'softplus' is positive by construction; "
                              "'positivity' applies to forms trico and collaba only")
        positivity = positivity or "exp"
        if positivity not in POSITIVITY:
            raise ConfigError(f"loss hyper-variables: positivity {positivity!r} is not allowed; allowed: exp, clamp")
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"loss hyper-variables: need distinct loss names, got {list(names)}")
        if not clamp_min > 0:
            raise ConfigError(f"loss hyper-variables: clamp_min must be > 0, got {clamp_min}")
        self.names, self.form, self.positivity, self.clamp_min = list(names), form, positivity, clamp_min
        start = {"softplus": _SOFTPLUS_ONE, "exp": 0.0, "clamp": 1.0}[form if form == "softplus" else positivity]
        self.raw = nn.Parameter(torch.full((len(self.names),), start))

    def hyper_parameters(self) -> list[nn.Parameter]:
        """The raw parameters (s = ln ς, ς itself, or w): keep them out of the weight optimiser."""
        return [self.raw]

    def hypers(self) -> torch.Tensor:
        """(N_losses,) the hyper-variables as the papers report them: ς (trico), ϱ (collaba), λ (softplus)."""
        if self.form == "softplus":
            s = F.softplus(self.raw)
            return len(self.names) * s / s.sum()
        return self.raw.exp() if self.positivity == "exp" else self.raw

    def values(self) -> dict[str, float]:
        """Name -> hyper-variable (ς, ϱ or λ), as numbers (the search's ``hyper`` file)."""
        return dict(zip(self.names, self.hypers().detach().cpu().tolist()))

    def coefficients(self) -> dict[str, float]:
        """Name -> the coefficient on each loss in the total (1/(2ς), 1/(2ϱ²) or λ), as numbers."""
        return dict(zip(self.names, self._coefficients().cpu().tolist()))

    def columns(self) -> dict[str, torch.Tensor]:
        """The trajectory's ``hyper/`` and ``coef/`` columns, 0-dim tensors left on the device."""
        return {**{f"hyper/{k}": v for k, v in zip(self.names, self.hypers().detach().unbind())},
                **{f"coef/{k}": v for k, v in zip(self.names, self._coefficients().unbind())}}

    def _coefficients(self) -> torch.Tensor:
        w = self.hypers().detach()
        return {"trico": 1 / (2 * w), "collaba": 1 / (2 * w.square()), "softplus": w}[self.form]

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp ς to ``clamp_min`` (positivity 'clamp'); a no-op for the other parametrisations."""
        if self.form != "softplus" and self.positivity == "clamp":
            self.raw.clamp_(min=self.clamp_min)

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted total of scalar ``losses`` keyed by exactly this object's names."""
        if set(losses) != set(self.names):
            raise ConfigError(f"loss hyper-variables: got losses {sorted(losses)}, expected exactly {self.names}")
        ref = losses[self.names[0]]
        L = torch.stack([losses[n].to(ref.dtype) for n in self.names])
        w = self.hypers().to(dtype=ref.dtype, device=ref.device)
        if self.form == "trico":
            return (L / (2 * w) + torch.log1p(w.square())).sum()
        if self.form == "collaba":
            return (L / (2 * w.square()) + torch.log1p(w.square())).sum()
        return (w * L).sum()

    def extra_repr(self) -> str:
        return f"names={self.names}, form={self.form}, positivity={self.positivity}"


def _build_term(name: str, cfg: Mapping[str, Any] | nn.Module) -> nn.Module:
    if isinstance(cfg, nn.Module):
        return cfg
    return build_entry(LOSSES, cfg, f"loss term '{name}'")


class CompositeLoss(nn.Module):
    """Named loss terms combined with fixed ``coefficients`` (default 1 each) or ``learned`` LossHypers.

    ``terms``: name -> ``{type: ..., **options}`` (or a built loss). ``learned``: LossHypers options
    (``{form: trico}``) or a LossHypers. ``forward(out, batch)`` returns (total, unweighted terms);
    the terms keep their graph (callers log them with ``.item()``).
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Any] | nn.Module],
                 coefficients: Mapping[str, float] | None = None,
                 learned: Mapping[str, Any] | LossHypers | None = None) -> None:
        super().__init__()
        if not isinstance(terms, Mapping) or not terms:
            raise ConfigError(f"loss: 'terms' must be a non-empty mapping of name -> loss config, got {terms!r}")
        bad = [n for n in terms if not isinstance(n, str) or "." in n or not n]
        if bad:
            raise ConfigError(f"loss: term names must be non-empty and contain no '.', got {bad}")
        if coefficients is not None and learned is not None:
            raise ConfigError("loss: give fixed 'coefficients' or 'learned' hyper-variables, not both")
        built = {n: _build_term(n, cfg) for n, cfg in terms.items()}
        self.terms = nn.ModuleDict(available_terms(built, "composite loss"))
        if not self.terms:
            raise ConfigError(f"loss: every term is unavailable ({', '.join(built)})")
        self.fixed = self._fixed_coefficients(coefficients or {}, built) if learned is None else None
        if isinstance(learned, LossHypers):
            if set(learned.names) != set(self.terms):
                raise ConfigError(f"loss: learned hyper-variables cover {learned.names}, terms are {list(self.terms)}")
            self.learned: LossHypers | None = learned
        else:
            self.learned = None if learned is None else self._learned(learned)

    def _learned(self, options: Mapping[str, Any]) -> LossHypers:
        if not isinstance(options, Mapping):
            raise ConfigError(f"loss.learned: expected a mapping of LossHypers options, got {options!r}")
        try:
            return LossHypers(list(self.terms), **dict(options))
        except TypeError as exc:
            raise ConfigError(f"loss.learned: {exc}; allowed: form, positivity, clamp_min") from None

    def _fixed_coefficients(self, coefficients: Mapping[str, float], built: Mapping[str, nn.Module]) -> dict[str, float]:
        unknown = sorted(set(coefficients) - set(built))
        if unknown:
            raise ConfigError(f"loss.coefficients: unknown term '{unknown[0]}'; terms: {', '.join(built)}")
        for n, c in coefficients.items():
            if isinstance(c, bool) or not isinstance(c, (int, float)) or c < 0:
                raise ConfigError(f"loss.coefficients.{n}: expected a number >= 0, got {c!r}")
        return {n: float(coefficients.get(n, 1.0)) for n in self.terms}

    def hyper_parameters(self) -> list[nn.Parameter]:
        return [] if self.learned is None else self.learned.hyper_parameters()

    def values(self) -> dict[str, float]:
        """Name -> each term's fixed coefficient, or its learned hyper-variable ς / ϱ / λ."""
        return dict(self.fixed) if self.learned is None else self.learned.values()

    def forward(self, out: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {n: term(out, batch) for n, term in self.terms.items()}
        if self.learned is not None:
            return self.learned(parts), parts
        total = sum(self.fixed[n] * v for n, v in parts.items())
        return total, parts


def build_composite(cfg: Mapping[str, Any]) -> CompositeLoss:
    """CompositeLoss from a recipe subtree ``{terms: ..., coefficients: ...}`` or ``{terms: ..., learned: ...}``.

    ``weights``, the key's name before "weights" came to mean ω only, is read as ``coefficients``
    (one info line); giving both is an error."""
    allowed = ("terms", "coefficients", "learned")
    unknown = sorted(set(cfg) - {*allowed, "weights"})
    if unknown:
        raise ConfigError(f"loss: unknown key '{unknown[0]}'; allowed: {', '.join(allowed)}")
    if "terms" not in cfg:
        raise ConfigError("loss: missing required key 'terms'")
    return CompositeLoss(cfg["terms"], _coefficients(cfg), cfg.get("learned"))


def _coefficients(cfg: Mapping[str, Any]) -> Mapping[str, float] | None:
    if "weights" not in cfg:
        return cfg.get("coefficients")
    if "coefficients" in cfg:
        raise ConfigError("loss: give 'coefficients' only ('weights' is its old name)")
    logger.info("loss: 'weights' is now called 'coefficients'; reading it as such")
    return cfg["weights"]


def build_loss(cfg: dict[str, Any]) -> CompositeLoss:
    """``{type: ..., **opts}`` (one term) or ``{terms: {...}, coefficients|learned: ...}``."""
    if "type" in cfg:
        return CompositeLoss({cfg["type"]: cfg})
    return build_composite(cfg)
