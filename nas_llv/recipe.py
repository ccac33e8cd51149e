"""Recipes: YAML files loaded into typed, frozen dataclasses.

A recipe names the network (its spaces and builder options), the data, the losses of each
module, and the search (strategy, hypergradient method, optimizers). Unknown keys fail with
the key's path and the allowed keys; ``KEY=VALUE`` overrides are parsed by ``yaml.safe_load``.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

from nas_llv.device import DEVICES
from nas_llv.optim import OptimConfig
from nas_llv.config import (Variant, apply_overrides, check_range, entry_options, from_dict, load_yaml,
                            to_dict, variant_keys)
from nas_llv.data import DataConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkConfig(Variant):
    """``type``: a network builder (``nas-llv list networks``); ``spaces``: module -> space file or
    name; ``options``: the builder's own options, checked against its dataclass (RUAS:
    ``RUASOptions``); ``merge_edges``: run each mixed edge of linear ops as one convolution whose
    kernel is the α-weighted sum of its candidates' kernels (exact; ``supernet.MixedEdge``)."""

    NESTED = True
    OLD_KEYS = {"fuse": "merge_edges"}  # read from recipes and run folders written before the rename

    type: str = "ruas"
    spaces: dict[str, str] = field(default_factory=lambda: {"scene": "ruas_scene", "denoise": "ruas_denoise"})
    options: Any = None
    merge_edges: bool = True

    @classmethod
    def variant_registry(cls) -> Any:
        from nas_llv.registry import NETWORKS

        return NETWORKS

    def builder_config(self) -> dict[str, Any]:
        """``{type, **options}``: what the network builder and a genotype file take."""
        return {"type": self.type, **(to_dict(self.options) if self.options is not None else {})}


def _arch_optim() -> OptimConfig:
    # RUAS Sec. 6.1 / DARTS: Adam, lr 3e-4, betas (0.5, 0.999), weight decay 1e-3, no schedule
    return OptimConfig(lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3, schedule="constant", grad_clip=None)


@dataclass(frozen=True)
class SearchConfig(Variant):
    """The ``search:`` section: the keys every strategy shares, plus (in ``options``) the keys of
    the strategy ``strategy`` names (its options dataclass, ``nas-llv list strategies``), and (in
    ``extensions``) one key per search extension (``nas-llv list extensions``, docs/extensions.md),
    all written among these ones."""

    VARIANT_KEY = "strategy"
    OWN = ("extensions", "options")

    strategy: str = "cooperative"
    epochs: int = 20
    steps_per_epoch: int | None = None   # default: one pass over the training split
    hypergrad: dict[str, Any] = field(default_factory=lambda: {"type": "finite_difference"})
    weights: OptimConfig = field(default_factory=OptimConfig)
    arch: OptimConfig = field(default_factory=_arch_optim)
    val_batches: int = 4                 # batches in the end-of-epoch validation (best genotype)
    checkpoint_every: int = 50           # steps between checkpoints (and at every epoch end)
    # how α becomes op probabilities: softmax, or FairDARTS' sigmoid of each α_i (docs/remedies.md)
    relaxation: Literal["softmax", "sigmoid"] = "softmax"
    # the first arch_warmup epochs train the weights only, α held (PC-DARTS' warm-up; docs/search.md)
    arch_warmup: int = 0
    # search extension key -> its value, off (null or 0) by default: the collapse remedies hessian,
    # perturb, aux_skip, zero_one, max_skip (docs/remedies.md) and the cost term cost (docs/cost.md)
    extensions: dict[str, Any] = field(default_factory=dict)
    options: Any = None

    @classmethod
    def variant_registry(cls) -> Any:
        from nas_llv.registry import STRATEGIES

        return STRATEGIES

    def validate(self) -> None:
        check_range("epochs", self.epochs, 1)
        for name in ("val_batches", "checkpoint_every"):
            check_range(name, getattr(self, name), 1)
        if self.steps_per_epoch is not None:
            check_range("steps_per_epoch", self.steps_per_epoch, 1)
        if "type" not in self.hypergrad:
            raise ValueError("hypergrad needs a 'type' (see `nas-llv list hypergrads`)")
        check_range("arch_warmup", self.arch_warmup, 0, self.epochs - 1)
        from nas_llv.registry import EXTENSIONS, STRATEGIES

        if self.arch_warmup and not STRATEGIES.get(self.strategy).warms_up:
            takes = [n for n in STRATEGIES.names() if STRATEGIES.get(n).warms_up]
            raise ValueError(f"arch_warmup={self.arch_warmup} applies to the strategies that step α each "
                             f"iteration ({', '.join(takes)}); leave it 0 for {self.strategy}")

        for key, value in self.extensions.items():  # each extension that is on, against the other keys
            if value != EXTENSIONS.get(key).off:
                EXTENSIONS.get(key).check(value, self)

    @property
    def kind(self) -> str:
        """The kind its strategy declares (``Strategy.kind``): one_shot or multi_trial."""
        from nas_llv.registry import STRATEGIES

        return STRATEGIES.get(self.strategy).kind

    def strategies_of(self, kind: str) -> str:
        """The registered strategies of ``kind``, for messages."""
        from nas_llv.registry import STRATEGIES

        return ", ".join(n for n in STRATEGIES.names() if STRATEGIES.get(n).kind == kind)

    @classmethod
    def extra_keys(cls) -> list[str]:
        """Every search extension's key, in the order their hooks run."""
        from nas_llv.registry import EXTENSIONS

        return sorted(EXTENSIONS.names(), key=lambda key: (EXTENSIONS.get(key).order, key))

    @classmethod
    def parse_extra(cls, own: Mapping[str, Any], where: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
        """``extensions``: each extension's key typed as that extension declares it (``off`` where
        not given); the other keys are the strategy's."""
        from nas_llv.registry import EXTENSIONS

        keys = cls.extra_keys()
        table = dataclasses.make_dataclass("SearchExtensions", [
            (key, EXTENSIONS.get(key).value_type(), field(default=EXTENSIONS.get(key).off)) for key in keys])
        typed = from_dict(table, {k: v for k, v in own.items() if k in keys}, where)
        return ({"extensions": {key: getattr(typed, key) for key in keys}},
                {k: v for k, v in own.items() if k not in keys})


def _train_optim() -> OptimConfig:
    # Retraining a fixed network: Adam, lr 1e-3, cosine over all train.steps (stepped per iteration)
    return OptimConfig(lr=1e-3)


@dataclass(frozen=True)
class TrainConfig:
    """The ``train:`` section of ``nas-llv train`` (docs/training.md).

    ``objective`` sums entries of the recipe's ``losses`` with these coefficients. ``channels`` and
    ``repeat`` rebuild the genotype at full size (an int for every module, or module -> int).
    ``epochs``, when set, replaces ``steps`` by epochs x batches per training epoch. The lr
    schedule of ``optim`` runs over all steps and is stepped once per iteration (not per epoch
    as in search). ``variant`` overrides the genotype network's variant, where its network has
    variants (RUAS: ruas_s, ruas, ruas_a); the network checks the name when the run is built.
    """

    steps: int = 1000
    epochs: int | None = None
    channels: dict[str, int] | int | None = None
    repeat: dict[str, int] | int | None = None
    objective: dict[str, float] = field(default_factory=lambda: {"scene": 1.0, "task": 1.0})
    optim: OptimConfig = field(default_factory=_train_optim)
    val_every: int = 100          # steps between validations (and trajectory rows)
    val_batches: int = 4          # batches per validation (the same batches every time)
    checkpoint_every: int = 100   # steps between checkpoints (and at the end)
    variant: str | None = None
    keep: Literal["last", "best"] = "last"   # which weights model.pt holds (the other: model_best/last.pt)
    strict: bool = False   # outputs out of the plausible range fail the run (exit 3), not only warn

    def validate(self) -> None:
        for name in ("steps", "val_every", "val_batches", "checkpoint_every"):
            check_range(name, getattr(self, name), 1)
        if self.epochs is not None:
            check_range("epochs", self.epochs, 1)
        for name in ("channels", "repeat"):
            value = getattr(self, name)
            for key, n in (value.items() if isinstance(value, dict) else [("", value)]):
                if n is not None:
                    check_range(f"{name}{'.' + key if key else ''}", n, 1)
        if not self.objective:
            raise ValueError("objective is empty; name at least one entry of losses, e.g. {scene: 1.0}")
        for key, w in self.objective.items():
            check_range(f"objective.{key}", w, 0.0)
        if not any(w > 0 for w in self.objective.values()):
            raise ValueError("objective: every weight is 0; at least one must be > 0")

        if self.variant is not None and not self.variant:
            raise ValueError("variant is empty; give a variant name, or null to keep the genotype's")


@dataclass(frozen=True)
class SpeedConfig:
    """The ``speed:`` section, for ``search`` and ``train`` (docs/speed.md).

    ``shortcuts`` (search, exact): the logged ``val_loss`` is the upper loss the hypergradient
    computed (no extra forward), and the arch step and the first weight step share one training
    objective. ``amp``: ``bf16`` runs the forward passes under bfloat16 autocast (CPU and CUDA;
    not exact, docs/speed.md states the tolerance); null keeps float32. ``channels_last``
    (exact): the network and its batches in channels-last memory format (default: on for search,
    off for train). ``compile``:
    ``torch.compile`` of the network's modules (one log line and eager mode where it cannot).
    ``cuda_graphs``: on a CUDA device, the modules are compiled in ``reduce-overhead`` mode, which
    replays each compiled forward and backward as one CUDA graph; elsewhere one log line, and the
    run goes on as ``compile`` says. ``sync_every`` (search and train, exact): a step reads nothing
    to the host; its figures (a search's trajectory rows, a training's losses) and finiteness checks
    stay on the device and are read in one transfer every ``sync_every`` steps (and at each epoch end,
    validation row and checkpoint), so a GPU is never
    left idle while the host waits for a number; a NaN is reported with the step it happened at,
    up to ``sync_every - 1`` steps later.
    """

    shortcuts: bool = True
    amp: Literal["bf16"] | None = None
    channels_last: bool | None = None   # None: on for search, off for train
    compile: bool = False
    cuda_graphs: bool = False
    sync_every: int = 1   # search, train: steps between host reads of the step's figures and finiteness checks

    def validate(self) -> None:
        check_range("sync_every", self.sync_every, 1)

    def graphs(self, device: Any) -> bool:
        """Whether CUDA graphs are captured on ``device`` (a ``torch.device``): ``cuda_graphs`` on CUDA."""
        return self.cuda_graphs and getattr(device, "type", None) == "cuda"

    def compiles(self, device: Any) -> bool:
        """Whether the network's modules are compiled on ``device``: ``compile``, or CUDA graphs
        there (they are captured by compile's ``reduce-overhead`` mode)."""
        return self.compile or self.graphs(device)

    def uses_channels_last(self, command: str) -> bool:
        """``channels_last``, or where unset its default for ``command``: on for ``search`` (exact,
        measured faster on CPU), off for ``train`` (not measured there)."""
        return self.channels_last if self.channels_last is not None else command == "search"


@dataclass(frozen=True)
class LoggingConfig:
    """The ``logging:`` section. ``tensorboard``: the trajectory's rows also as TensorBoard
    scalars in ``RUN/tensorboard/`` as the run goes (``nas_llv/tensorboard.py``; needs the
    ``tensorboard`` extra)."""

    tensorboard: bool = False

    def validate(self) -> None:
        from nas_llv.tensorboard import INSTALL, installed

        if self.tensorboard and not installed():
            raise ValueError(f"tensorboard: true needs the tensorboard package; {INSTALL}")


@dataclass(frozen=True)
class Recipe:
    name: str
    network: NetworkConfig = field(default_factory=lambda: from_dict(NetworkConfig, {}, "network"))
    data: DataConfig = field(default_factory=lambda: from_dict(DataConfig, {}, "data"))
    losses: dict[str, dict[str, Any]] = field(default_factory=dict)
    search: SearchConfig = field(default_factory=lambda: from_dict(SearchConfig, {}, "search"))
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    device: str = "auto"
    output: str = "results"

    def validate(self) -> None:
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}; allowed: {', '.join(DEVICES)}, cuda:N")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file, apply ``KEY=VALUE`` overrides, and check everything. An override that
    switches a variant (``data.type=folder``) drops the file's keys of the old variant that the new
    one does not take (``drop_switched``)."""
    written = load_yaml(path)
    data = apply_overrides(written, overrides)
    dropped = drop_switched(written, data, [tuple(item.partition("=")[0].split(".")) for item in overrides], str(path))
    recipe = recipe_from_dict(data, str(path))
    for line in dropped:  # once the recipe is good: a refused one is one line, its error
        log.info("%s", line)
    return recipe


KeyPath = tuple[str, ...]  # ('data', 'type') for data.type


def drop_switched(written: Mapping[str, Any], data: dict[str, Any], given: Sequence[KeyPath], source: str) -> list[str]:
    """Remove from ``data`` (``written`` with the overrides at the key paths ``given`` applied) the
    keys that ``written`` gave a variant an override switched away from and the new variant does
    not take; returns one line per section saying which. A key given on the command line is kept,
    so a wrong one for the new variant is still refused; so is a section given whole."""
    from nas_llv.registry import RegistryError

    lines = []
    for key, at, registry, shared, default in _variant_sections(data):
        old, new, section = _get(written, key, default), _get(data, key, default), _get(data, at, None)
        if old is None or old == new or not isinstance(section, dict) or any(at[:len(g)] == g for g in given):
            continue  # not switched, or the section is the command line's own
        explicit = {g[len(at)] for g in given if len(g) > len(at) and g[:len(at)] == at}
        try:
            taken = set(shared) | set(variant_keys(registry, str(new))) | explicit
            dropped = [k for k in section if k in variant_keys(registry, str(old)) and k not in taken]
        except RegistryError:
            continue  # an unknown name: checking the recipe says so
        for k in dropped:
            del section[k]
        if dropped:
            lines.append(f"{source}: {'.'.join(key)} switched from {old} to {new}: dropped {', '.join(dropped)} "
                         f"({registry.kind} {old}'s keys, which {new} does not take)")
    return lines


def _variant_sections(data: Mapping[str, Any]) -> Iterator[tuple[KeyPath, KeyPath, Any, list[str], Any]]:
    """(path of the variant's name, path of its keys, registry, the section's keys every variant
    takes, the name when absent) of each section of recipe ``data`` that names a registered
    variant: network, data, search, search.hypergrad and every loss."""
    from nas_llv.registry import HYPERGRADS, LOSSES

    for name, cls in (("network", NetworkConfig), ("data", DataConfig), ("search", SearchConfig)):
        default = next(f.default for f in fields(cls) if f.name == cls.VARIANT_KEY)
        shared = [] if cls.NESTED else [*(f.name for f in fields(cls) if f.name not in cls.OWN), *cls.extra_keys()]
        at = (name, "options") if cls.NESTED else (name,)
        yield (name, cls.VARIANT_KEY), at, cls.variant_registry(), shared, default
    entries = [("search", "hypergrad")]
    losses = data.get("losses")
    for module, cfg in losses.items() if isinstance(losses, Mapping) else ():
        terms = cfg.get("terms") if isinstance(cfg, Mapping) else None
        entries += [("losses", module), *(("losses", module, "terms", t) for t in
                                          (terms if isinstance(terms, Mapping) else ()))]
    for at in entries:
        yield (*at, "type"), at, HYPERGRADS if at[0] == "search" else LOSSES, ["type"], None


def _get(data: Any, path: KeyPath, default: Any) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return default
        data = data[key]
    return data


def recipe_from_dict(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """A checked Recipe; each variant section (data, network, search) takes its variant's keys."""
    if "name" not in data:
        data = {**data, "name": Path(source).stem}
    recipe = from_dict(Recipe, data, f"{source}:")
    _check_entries(recipe, f"{source}:")
    return recipe


def _check_entries(recipe: Recipe, where: str) -> None:
    """Each loss and the hypergradient method against its options dataclass, as a dataset's or a
    strategy's keys are checked: a wrong key fails here, naming the file, the key and what is allowed."""
    from nas_llv.registry import HYPERGRADS, LOSSES

    entry_options(HYPERGRADS, recipe.search.hypergrad, f"{where} search.hypergrad")
    for path, cfg in _loss_entries(recipe.losses):
        entry_options(LOSSES, cfg, f"{where} {path}")


def _loss_entries(losses: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, ``{type, **options}``) of every loss a ``losses:`` section names: one loss per
    module, or a composite's ``terms`` (its other keys are checked where it is built)."""
    for module, cfg in losses.items():
        terms = cfg.get("terms")
        if "type" in cfg:
            yield f"losses.{module}", cfg
        elif isinstance(terms, Mapping):
            yield from ((f"losses.{module}.terms.{name}", term) for name, term in terms.items())
