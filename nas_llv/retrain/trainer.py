"""Retraining a derived network (``nas-llv train``; docs/training.md).

The genotype is rebuilt at the size ``recipe.train`` asks for (``channels``/``repeat``), optionally
started from a model file's weights, and trained on ``recipe.data`` with the weighted sum of the
``losses`` that ``train.objective`` names. The run folder has the layout of a search run
(config.yaml, log.txt, trajectory.csv, checkpoints/last.pt, genotype.yaml) plus ``model.pt``
and ``model_best.pt`` (best validation PSNR on paired data, else lowest validation loss):
``train.keep: last`` (default) leaves the final weights in ``model.pt``, ``best`` puts the best
step's there and the final ones in ``model_last.pt``. Random weights are never the best step's;
every validation measures the outputs' plausibility (``retrain/plausibility.py``), and the end
of the training reports what makes the result suspect (``train.strict``: exit status 3). A
checkpoint holds everything a resumed run needs to continue exactly. A super-resolution genotype
needs ``data.scale`` equal to its scale: losses and validation compare its (sH, sW) output with
the HR ground truth.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from nas_llv import __version__, distributed
from nas_llv.config import ConfigError
from nas_llv.data import build_loaders
from nas_llv.evaluation.scoring import image_metrics
from nas_llv.metrics.cost import eval_mode
from nas_llv.space.genotype import Genotype, find_genotype, genotype_from_dict, genotype_scale, load_genotype, with_variant
from nas_llv.space.models.hooks import EntryOutputs, ObjectiveModules, PartialForward
from nas_llv.enhance import select_output
from nas_llv.device import resolve_device
from nas_llv.export.modelfile import BUILD_KEYS, load_weights, read_model_file, save_model
from nas_llv.atomic import atomic_write_bytes
from nas_llv.job import Job
from nas_llv.layout import MODEL, MODEL_BEST, MODEL_LAST
from nas_llv.losses import Loss, build_loss, step_discriminators
from nas_llv.optim import make_optimizer, make_scheduler
from nas_llv.retrain.plausibility import Implausibility, Implausible, OutputStats, drift_warnings, selection_warnings
from nas_llv.rows import PendingRows
from nas_llv.runs import Run, rng_state, seed_everything, set_rng_state
from nas_llv.speed import apply_speed, channels_last_batch, new_graph_step

log = logging.getLogger(__name__)

# Hooks a network may define to shape its retraining (RUAS defines them all, space/models/networks.py);
# without them every entry reads the full forward and is back-propagated through all of it:
#   objective_modules: {entry: attribute}   the submodule an entry trains; None there -> entry refused
#   own_output_entries: set of entries      they read entry_outputs(entry, out, batch), not the full outputs
#   partial_forward(y), full_output_keys     a cheaper forward, lacking those keys, used when no
#                                            other entry reads them
#   variant: str                             named in the error for an absent module
#   random_init_warnings(entries) -> [str]   logged when retraining starts from random weights


def load_source(target: str | Path) -> tuple[Genotype, dict[str, Any]]:
    """The genotype to train and its build arguments, from a genotype file, a run folder
    (its ``genotype.yaml``) or a model file (its genotype and build)."""
    path = Path(target)
    if not path.is_dir() and not path.is_file():
        raise ConfigError(f"{target}: no such genotype file, run folder or model file")
    if path.is_dir() or path.suffix.lower() in (".yaml", ".yml"):
        return load_genotype(find_genotype(path)), {}
    data = read_model_file(path)
    build = {k: v for k, v in (data.get("build") or {}).items() if v is not None}
    return genotype_from_dict(data["genotype"], f"{path}: genotype"), build


def resolve_build(cfg: Any, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``Genotype.build`` arguments: ``train.channels``/``train.repeat`` where set, else ``base``'s."""
    base = base or {}
    out = {k: getattr(cfg, k) if getattr(cfg, k) is not None else base.get(k) for k in BUILD_KEYS}
    return {k: v for k, v in out.items() if v is not None}


def check_scale(genotype: Genotype, data_scale: int) -> None:
    """The recipe's ``data.scale`` must be the network's: its output is compared with ``high``."""
    scale = genotype_scale(genotype)
    if data_scale != scale:
        need = (f"super-resolves x{scale}; set data.scale={scale} with low-light SR data (demo_sr, rellisur, "
                f"or paired with high {scale}x low)" if scale != 1 else
                "enhances at the input size; set data.scale=1 with enhancement data "
                "(ground truth as large as the input)")
        raise ConfigError(f"data.scale={data_scale}, but the genotype's network {need}")


def load_init(net: nn.Module, path: str | Path, build: Mapping[str, Any], fresh: Iterable[str] = ()) -> list[str]:
    """Load a model file's weights into ``net``; they must fit exactly, except that a submodule named
    in ``fresh`` (one the objective trains) that the file lacks entirely keeps its new weights
    (e.g. RUAS_A's estimator on a RUAS model file). Returns the submodules so kept."""
    data = read_model_file(path)
    state, own, kept = dict(data["state_dict"]), net.state_dict(), []
    for name in fresh:
        keys = [k for k in own if k.startswith(f"{name}.")]
        if keys and not any(k.startswith(f"{name}.") for k in state):
            state.update({k: own[k] for k in keys})
            kept.append(name)
    load_weights(net, state, f"--init {path}", "the network being trained",
                 f"the network is built with {dict(build) or 'the genotype sizes'}, the file with "
                 f"{data.get('build') or 'its genotype sizes'}. Match train.channels, train.repeat and "
                 f"train.variant to the file")
    return kept


class TrainingObjective(nn.Module):
    """``sum_k c_k * losses[k](out, batch)``, c_k the coefficients of ``train.objective``; returns (total, terms, out).

    An entry the network lists in ``own_output_entries`` sees ``net.entry_outputs(entry, out, batch)``
    instead of ``out`` (on RUAS the entry ``task``, the denoiser's loss, sees the denoiser applied
    to the scene output *detached*: it trains the denoiser only; ``estimator`` sees RUAS_A's noise
    map of the batch's noisy images). Every other entry is back-propagated through the whole
    network. Terms are logged by entry name (``<entry>.<term>``
    for an entry that is a composite of several terms). A network with a ``partial_forward`` runs
    only that when no other entry reads its ``full_output_keys`` and the caller does not ask for
    the full output: on RUAS, with ``{scene, task}`` a step runs the scene module once and the
    denoiser once.
    """

    def __init__(self, losses: Mapping[str, Mapping[str, Any]], coefficients: Mapping[str, float], net: nn.Module) -> None:
        super().__init__()
        unknown = [k for k in coefficients if k not in losses]
        if unknown:
            raise ConfigError(f"train.objective: {', '.join(unknown)} not in the recipe's losses "
                              f"(it has: {', '.join(losses) or 'none'})")
        _check_modules(net, coefficients)
        self.terms = nn.ModuleDict({k: build_loss(dict(losses[k])) for k in coefficients})
        learned = [k for k, t in self.terms.items() if t.hyper_parameters()]
        if learned:
            raise ConfigError(f"losses.{learned[0]}: learned loss hyper-variables are found by "
                              f"`nas-llv search`; retraining takes fixed coefficients")
        self.coefficients = dict(coefficients)
        self.single = {k for k in coefficients if "type" in losses[k]}  # one loss: logged as the entry
        self.own = frozenset(net.own_output_entries if isinstance(net, EntryOutputs) else ()) & set(coefficients)
        full_keys = frozenset(net.full_output_keys if isinstance(net, PartialForward) else ())
        shared = [t for k, t in self.terms.items() if k not in self.own]
        self.partial = isinstance(net, PartialForward) and not any(_reads(t, full_keys) for t in shared)

    def outputs(self, net: nn.Module, low: torch.Tensor, need_x: bool = False) -> Any:
        """``net``'s outputs for ``low`` that the entries read: its ``partial_forward``'s (no ``x``)
        when no entry reads the full output and ``need_x`` is False."""
        return net.partial_forward(low) if self.partial and not need_x else net(low)

    def forward(self, net: nn.Module, batch: Mapping[str, Any],
                need_x: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        """-> (weighted total, unweighted terms by name, ``net``'s outputs for ``batch['low']``)."""
        out = self.outputs(net, batch["low"], need_x)
        total: torch.Tensor | float = 0.0
        terms: dict[str, torch.Tensor] = {}
        for key, loss in self.terms.items():
            seen = net.entry_outputs(key, out, batch) if key in self.own else out
            value, parts = loss(seen if isinstance(seen, Mapping) else {"x": seen}, batch)
            total = total + self.coefficients[key] * value
            terms.update({key: value} if key in self.single else {f"{key}.{n}": v for n, v in parts.items()})
        return total, terms, out  # type: ignore[return-value]

    def trained_parameters(self) -> list[nn.Parameter]:
        """The entries' own weights trained with the network's (``Loss.trained_parameters``:
        ``sci_calibration``'s calibration module); never part of the network's model file."""
        return [p for m in self.terms.modules() if isinstance(m, Loss) for p in m.trained_parameters()]

    def trained_state(self) -> dict[str, Any]:
        """{module path: state_dict} of the entries holding trained weights (checkpointed)."""
        return {name: m.state_dict() for name, m in self.terms.named_modules()
                if isinstance(m, Loss) and m.trained_parameters()}

    def load_trained_state(self, state: Mapping[str, Any]) -> None:
        modules = dict(self.terms.named_modules())
        for name, sub in state.items():
            modules[name].load_state_dict(sub)


def _check_modules(net: nn.Module, coefficients: Mapping[str, float]) -> None:
    """Entries that train a submodule ``net`` does not have are an error (RUAS_S: no denoiser)."""
    modules: Mapping[str, str] = net.objective_modules if isinstance(net, ObjectiveModules) else {}
    absent = [k for k in coefficients if k in modules and getattr(net, modules[k]) is None]
    if absent:
        variant = getattr(net, "variant", None)
        raise ConfigError(f"train.objective: {', '.join(absent)} trains the "
                          f"{', '.join(modules[k] for k in absent)} module, which this network "
                          f"does not have{f' (variant {variant})' if variant else ''}; drop it from train.objective")


def _score(entry: Mapping[str, Any]) -> str:
    """'step 50: PSNR 20.22 dB, SSIM 0.8512' (or the validation loss on unpaired data)."""
    if entry.get("step") is None:
        return "none"
    if entry.get("psnr") is not None and math.isfinite(entry["psnr"]):
        ssim = f", SSIM {entry['ssim']:.4f}" if entry.get("ssim") is not None else ""
        return f"step {entry['step']}: PSNR {entry['psnr']:.2f} dB{ssim}"
    return f"step {entry['step']}: validation loss {entry['val_loss']:.5f}"


def _measures(check: Implausibility) -> str:
    return f"cast {check.cast:.3f}, saturated {check.saturated:+.3f}, gain {check.gain:.2f}"


def _reads(loss: nn.Module, keys: frozenset[str]) -> bool:
    """Whether an objective entry reads any of ``keys`` (what the full forward adds); a term that
    does not declare its ``needs`` is assumed to."""
    needs = [getattr(term, "needs", None) for term in loss.terms.values()]
    return any(n is None or keys & set(n) for n in needs)


class Trainer(Job):
    """Retrains ``genotype`` with ``recipe.train``; build it before the run folder exists (it checks
    the recipe on one batch), then ``attach`` a Run and ``run()``."""

    kind = "train"

    def __init__(self, recipe: Any, genotype: Genotype, build: Mapping[str, Any] | None = None,
                 init: str | Path | None = None, source: str | Path | None = None) -> None:
        self.recipe, self.cfg = recipe, recipe.train
        self.source = None if source is None else str(source)  # where the genotype came from (logged)
        seed_everything(recipe.seed)
        self.device = distributed.local_device(resolve_device(recipe.device))
        self.genotype, self.build = with_variant(genotype, self.cfg.variant, "train.variant"), dict(build or {})
        check_scale(self.genotype, recipe.data.scale)
        self.net: nn.Module = self.genotype.build(**self.build)
        self.init = None if init is None else str(init)
        if init is not None:
            modules = self.net.objective_modules if isinstance(self.net, ObjectiveModules) else {}
            fresh = [modules[k] for k in self.cfg.objective if modules.get(k)]
            for name in load_init(self.net, init, self.build, fresh):
                log.info("--init %s has no %s module; it starts from random weights", init, name)
        self.net.to(self.device).train()
        self.amp = apply_speed(self.net, recipe.speed, self.device, "train")
        self.train_data, self.val_data = build_loaders(recipe.data, distributed.shard())  # this rank's slices
        self._val_start = self.val_data.state_dict()
        self.objective = TrainingObjective(recipe.losses, self.cfg.objective, self.net).to(self.device)
        self.total_steps = self.cfg.epochs * self.train_data.epoch_length if self.cfg.epochs else self.cfg.steps
        # the network's weights, then those of objective entries that train their own (sci_calibration),
        # by name: what the optimizer steps, the ranks average and the clipping bounds
        self.params = {**dict(self.net.named_parameters()),
                       **{f"objective.{i}": p for i, p in enumerate(self.objective.trained_parameters())}}
        self.opt = make_optimizer(self.cfg.optim, list(self.params.values()))
        self.sched = make_scheduler(self.cfg.optim, self.opt, self.total_steps)  # stepped per iteration
        self.paired = self._preflight()
        self.step, self.elapsed = 0, 0.0
        self.last_lr: float | None = None  # lr of the latest step
        self.best: dict[str, Any] = {"step": None, "psnr": -math.inf, "val_loss": math.inf}
        self.stats = OutputStats()  # the latest validation's inputs and outputs (plausibility)
        self.acc: dict[str, float] = {}  # sums of the steps' figures since the latest row, and their count "n"
        self.rows = PendingRows(recipe.speed.sync_every)  # the steps' figures, read every sync_every steps
        self.last: dict[str, float] = {}
        self.attached_run: Run | None = None

    @torch.no_grad()
    def _preflight(self) -> bool:
        """One training batch through the objective (not consumed): a loss that needs ground truth on
        unpaired data, or data the network cannot take, fails here. Returns whether the data is paired."""
        state = self.train_data.state_dict()
        batch = self._batch(self.train_data)
        self.train_data.load_state_dict(state)
        select_output(self.objective(self.net, batch, need_x=True)[2], "x")  # validation measures x
        return "high" in batch

    # -- run folder -------------------------------------------------------------------------------
    def attach(self, run: Run, new: bool | None = None) -> None:
        """Use ``run``; a new run (by default: one ``Run.create`` made) gets genotype.yaml and a
        step-0 validation row."""
        super().attach(run)
        if not (run.created if new is None else new):
            return
        if self.source is not None:
            log.info("genotype from %s%s", self.source, f", weights from {self.init}" if self.init else "")
        if run.writes:  # rank 0 alone in a data-parallel run
            self.genotype.save(run.genotype_path)
        params = sum(p.numel() for p in self.net.parameters())
        log.info("training %s; %s parameters, %s weights, %d steps on %s",
                 self.genotype.describe(**self.build), f"{params:,}", f"initial from {self.init}" if self.init else "random",
                 self.total_steps, self.device)
        images = min(len(self.val_data), self.cfg.val_batches * self.recipe.data.batch_size)
        for warning in [*drift_warnings(self.recipe.losses, self.cfg.objective), *selection_warnings(self.cfg.keep, images)]:
            log.warning(warning)
        if self.init is None:
            warnings = getattr(self.net, "random_init_warnings", None)
            for warning in warnings(self.cfg.objective) if warnings else ():
                log.warning(warning)
        self._log_row(time.perf_counter())

    # -- the loop ---------------------------------------------------------------------------------
    def done(self) -> bool:
        return self.step >= self.total_steps

    def progress(self) -> tuple[int, int]:
        return self.step, self.total_steps

    def advance(self, start: float) -> None:
        self._iteration()
        if self.step % self.cfg.val_every == 0 or self.step == self.total_steps:
            self._log_row(start)

    def checkpoint_due(self) -> bool:
        return self.step % self.cfg.checkpoint_every == 0

    def _batch(self, stream: Any) -> dict[str, Any]:
        batch = super()._batch(stream)
        return channels_last_batch(batch) if self.recipe.speed.uses_channels_last("train") else batch

    def _iteration(self) -> None:
        new_graph_step(self.recipe.speed.graphs(self.device))
        batch = self._batch(self.train_data)
        with self.amp():
            total, terms, _ = self.objective(self.net, batch)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        # data-parallel: the mean over ranks, as in search (DDP's wrapper would hide partial_forward
        # and entry_outputs, which the objective calls on the bare network)
        distributed.average_gradients(self.params)
        if self.cfg.optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params.values(), self.cfg.optim.grad_clip)
        self.last_lr = float(self.opt.param_groups[0]["lr"])
        self.opt.step()
        self.sched.step()
        disc = step_discriminators(self.objective)  # adversarial terms: their own optimizer step
        self.step += 1
        # the step's figures stay 0-dim tensors on the device (the global batch's: a mean over ranks), and
        # its checks are flags computed now; both are read to the host every sync_every steps
        values = distributed.all_reduce_mean({"train_loss": total.detach(), **{f"loss/{k}": v.detach() for k, v in terms.items()},
                                              **{f"discriminator/{k}": v.detach() for k, v in disc.items()}})
        self.rows.add(self.step, "all", values, {"training loss": {"total": total.detach(), **terms},
                                                  "weight": dict(self.net.named_parameters())})
        if self.rows.due():
            self.flush_rows()

    def flush_rows(self) -> None:
        """Add the figures of the steps kept on the device to the running sums of the next row."""
        self.rows.flush(self._accumulate, self.diverged)

    def _accumulate(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.acc[key] = self.acc.get(key, 0.0) + value
        self.acc["n"] = self.acc.get("n", 0.0) + 1

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean objective (``val_loss``), the plausibility measures of the outputs against the
        inputs (``check/*``; their sums in ``self.stats``) and, on paired data, mean PSNR/SSIM of
        the 8-bit output (as eval computes them; at the ground truth's, i.e. HR, size for a
        super-resolution network), over the same ``val_batches`` validation batches every time."""
        self.val_data.load_state_dict(self._val_start)
        loss, sums, n, stats = 0.0, {"psnr": 0.0, "ssim": 0.0}, 0, OutputStats()
        with eval_mode(self.net, self.objective):  # the objective's own networks too (SCI's K: BatchNorm)
            for _ in range(self.cfg.val_batches):
                batch = self._batch(self.val_data)
                total, _, out = self.objective(self.net, batch, need_x=True)
                loss += float(total)
                x = select_output(out, "x")
                stats.add(batch["low"], x, batch.get("high"))
                if "high" in batch:
                    metrics = image_metrics(x, batch["high"])
                    sums = {k: v + float(metrics[k].sum()) for k, v in sums.items()}
                    n += batch["high"].shape[0]
        # the global batches': each rank's sums, averaged, over the ranks' image counts, averaged
        sums = distributed.mean_floats({"loss": loss, "n": n, **sums, **stats.flat()})
        self.stats = OutputStats.from_flat({k: sums.pop(k) for k in stats.flat()})
        loss, n = sums.pop("loss"), sums.pop("n")
        result = {"val_loss": loss / self.cfg.val_batches, **Implausibility.of(self.stats).columns()}
        if n:
            result.update({f"metric/{k}": v / n for k, v in sums.items()})
        return result

    def _log_row(self, start: float) -> None:
        self.flush_rows()
        val = self.validate()
        n = self.acc.pop("n", 0.0)
        epoch = math.ceil(self.train_data.position / len(self.train_data))
        lr = self.last_lr if self.last_lr is not None else float(self.opt.param_groups[0]["lr"])
        row: dict[str, Any] = {"step": self.step, "epoch": epoch, "module": "all",
                               "phase": "train" if self.step else "val",
                               "train_loss": self.acc.pop("train_loss", 0.0) / n if n else None,
                               "val_loss": val["val_loss"], "lr": lr,
                               "seconds": round(time.perf_counter() - start, 4)}
        row.update({k: v / n for k, v in self.acc.items()})
        row.update({k: v for k, v in val.items() if k != "val_loss"})
        self.acc, self.last = {}, {k: v for k, v in row.items() if isinstance(v, float)}
        self.attached_run.trajectory_writer.append(row)
        self._update_best(val)
        log.info("step %d/%d: val loss %.5f%s", self.step, self.total_steps, val["val_loss"],
                 f", PSNR {val['metric/psnr']:.2f} dB, SSIM {val['metric/ssim']:.4f}" if "metric/psnr" in val else "")

    def _update_best(self, val: Mapping[str, float]) -> None:
        """A validation better than every earlier one writes ``model_best.pt``. Random weights are
        never 'best': without ``--init`` step 0 only sets the bar a trained step must clear, so a
        training that never improves on its start (or diverges first) writes no model_best.pt."""
        better = (val["metric/psnr"] > self.best["psnr"]) if self.paired else (val["val_loss"] < self.best["val_loss"])
        if better:
            random = self.step == 0 and self.init is None
            self.best = {"step": None if random else self.step, "psnr": val.get("metric/psnr", -math.inf),
                         "val_loss": val["val_loss"], "ssim": val.get("metric/ssim")}
            if not random:
                self._save_model(MODEL_BEST)

    # -- results and checkpoints ------------------------------------------------------------------
    def _save_model(self, name: str, **more: Any) -> Path:
        if not self.attached_run.writes:  # another rank than 0 of a data-parallel run
            return self.attached_run.model_path(name)
        extra = {"run": self.attached_run.dir.name, "recipe": self.recipe.name, "step": self.step,
                 "init": self.init, "validation": dict(self.last), **more}
        return save_model(self.attached_run.model_path(name), self.genotype, self.net, self.build, extra)

    def findings(self) -> list[str]:
        """What makes the finished training unusable: its final outputs out of the plausible range
        (``plausibility.LIMITS``), or no trained step validating better than the random start."""
        found = list(Implausibility.of(self.stats).findings)
        if self.best["step"] is None and self.init is None:
            found.append(f"no validation improved on the untrained network's ({_score(dict(self.best, step=0))}); "
                         f"no model_best.pt is written")
        return found

    def finish(self, start: float) -> None:
        """Write the final weights, and make ``model.pt`` the ones ``train.keep`` names (``last``:
        the final weights, ``model_best.pt`` beside them; ``best``: the best validation step's,
        the final ones in ``model_last.pt``); log both scores and the findings (``findings``),
        recorded in model.pt; with ``train.strict``, raise ``Implausible`` when there are any."""
        self.save(start)
        check, found = Implausibility.of(self.stats), self.findings()
        keep = "best" if self.cfg.keep == "best" and self.best["step"] is not None else "last"
        if self.attached_run.writes:
            final = self._save_model(MODEL if keep == "last" else MODEL_LAST,
                                     plausibility={**check.measures(), "findings": found})
            if keep == "best":
                best = self.attached_run.model_path(MODEL_BEST).read_bytes()
                atomic_write_bytes(self.attached_run.model_path(), best)
            last = {"step": self.step, "psnr": self.last.get("metric/psnr"), "ssim": self.last.get("metric/ssim"),
                    "val_loss": self.last.get("val_loss")}
            log.info("training finished after %d steps; final %s; best %s; model.pt holds the %s weights%s; %s",
                     self.step, _score(last), _score(self.best), keep,
                     f" (the final ones are in {final.name})" if keep == "best" else "",
                     f"{len(found)} finding(s) below make it suspect" if found else
                     f"outputs in the plausible range ({_measures(check)})")
            for finding in found:
                log.warning("%s: %s", self.attached_run.dir.name, finding)
        if found and self.cfg.strict:
            raise Implausible(f"{self.attached_run.dir}: train.strict: {'; '.join(found)} (docs/training.md, "
                              f"'Is the result usable?'; the run folder and its model files are written)")

    def state_dict(self) -> dict[str, Any]:
        return {
            "nas_llv": __version__, "kind": "train", "config": self.recipe.to_dict(), "build": self.build,
            "init": self.init, "network": self.net.state_dict(), "objective": self.objective.trained_state(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "data": {"train": self.train_data.state_dict(), "val": self.val_data.state_dict()},
            "progress": {"step": self.step, "elapsed": self.elapsed}, "best": dict(self.best),
            "acc": dict(self.acc), "last": dict(self.last), "stats": self.stats.as_dict(), "rng": rng_state(),
            "world_size": distributed.world_size(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["network"])
        self.objective.load_trained_state(state.get("objective", {}))
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.train_data.load_state_dict(state["data"]["train"])
        self.step, self.elapsed = state["progress"]["step"], state["progress"]["elapsed"]
        self.best, self.acc, self.last = dict(state["best"]), dict(state["acc"]), dict(state["last"])
        self.stats = OutputStats(state.get("stats"))
        self.init = state["init"]
        set_rng_state(state["rng"])
        if self.attached_run is not None:
            self.attached_run.trajectory_writer.truncate_after(self.step)

