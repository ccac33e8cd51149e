"""The layout of a run folder (docs/runs.md), spelt here alone: the rest of the package reaches a
run's files through these accessors, which ``Run`` (nas_llv.runs) and ``RunFolder``
(nas_llv.runview) inherit; ``RunLayout(path)`` names them for a folder known only by its path.
Paths only: no file is read or written here, and nothing of nas_llv imported."""
from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
TRAJECTORY = "trajectory.csv"
GENOTYPE = "genotype.yaml"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
MODEL = "model.pt"  # a training run's weights; model_best.pt and model_last.pt beside them (train.keep)
MODEL_BEST = "model_best.pt"
MODEL_LAST = "model_last.pt"
CANDIDATES = "candidates.csv"
EVAL_PREFIX = "eval-"


class RunLayout:
    """Where each file of the run folder ``dir`` is, or will be."""

    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)

    @property
    def config_path(self) -> Path:
        """config.yaml: the resolved recipe (written when the run is created)."""
        return self.dir / CONFIG

    @property
    def trajectory_path(self) -> Path:
        """trajectory.csv: one row per step (it may not exist before the first)."""
        return self.dir / TRAJECTORY

    @property
    def genotype_path(self) -> Path:
        """Where genotype.yaml is, or will be (``genotype_file``: None until it is written)."""
        return self.dir / GENOTYPE

    @property
    def best_genotype_path(self) -> Path:
        """genotype_best.yaml: the best genotype of a search so far."""
        return self.dir / "genotype_best.yaml"

    def capped_genotype_path(self, max_skip: int) -> Path:
        """``genotype_max_skip_<M>.yaml``: the genotype again with at most M skip ops per cell."""
        return self.dir / f"genotype_max_skip_{max_skip}.yaml"

    @property
    def candidates_path(self) -> Path:
        """candidates.csv: a random search's candidates (docs/random.md)."""
        return self.dir / CANDIDATES

    def checkpoint_path(self, name: str = LAST) -> Path:
        """``checkpoints/<name>``; the last one by default."""
        return self.dir / CHECKPOINTS / name

    def model_path(self, name: str = MODEL) -> Path:
        """A training run's model file (model.pt, model_best.pt, model_last.pt), written or not."""
        return self.dir / name

    def eval_dir(self, data: str | Path) -> Path:
        """``eval-<data name>/``: where ``nas-llv eval`` of this run's model on ``data`` writes."""
        return self.dir / f"{EVAL_PREFIX}{Path(data).resolve().name}"

    def eval_dirs(self) -> list[Path]:
        """The run's evaluation folders, ``eval-*/``, by name."""
        return sorted(p for p in self.dir.glob(f"{EVAL_PREFIX}*") if p.is_dir())

    def drawing_path(self, module: str) -> Path:
        """``cell_<module>.png``: ``nas-llv derive --draw``'s drawing of a derived cell."""
        return self.dir / f"cell_{module}.png"

    @property
    def entropy_path(self) -> Path:
        """entropy.png: ``nas-llv derive --draw``'s plot of each edge's entropy against step."""
        return self.dir / "entropy.png"
