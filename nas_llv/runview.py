"""What a run folder holds, read back: ``Run``'s accessors for a script or notebook (``run.kind``,
``run.status``, ``run.steps``, ``run.genotype``, ``run.genotype_hash``, ``run.trajectory``,
``run.genotype_file``, ``run.model_file``), and ``RunFolder``, the same accessors on any folder
without opening it for writing (``nas-llv runs``). Everything is read from the folder when asked,
so the answers follow a run that another process is writing. No torch here: listing runs stays
quick."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nas_llv.layout import GENOTYPE, TRAJECTORY, RunLayout

if TYPE_CHECKING:
    import pandas as pd


class RunView(RunLayout):
    """Read-only accessors over ``self.dir`` (mixed into ``nas_llv.runs.Run``): the files of
    ``RunLayout``, and what they say."""

    @property
    def kind(self) -> str:
        """'search' or 'train': the trajectory's ``phase`` says (a search's rows are 'search');
        before its first row a run is 'train' when genotype.yaml is there (training writes it as it
        starts), else 'search'."""
        return run_kind(self.dir, read_wide(self.dir))

    @property
    def status(self) -> str:
        """'finished', 'running, at step N' (a live process of this host writes it), 'stopped at
        step N' (a checkpoint to resume from) or 'not started'."""
        return run_status(self.dir, read_wide(self.dir))

    @property
    def steps(self) -> int:
        """The last step in the trajectory (0 before the first)."""
        return last_step(read_wide(self.dir))

    @property
    def genotype_file(self) -> Path | None:
        """The run's genotype.yaml (a search's result, or the network a training run trains), once
        written; ``nas_llv.space.genotype.load_genotype`` rebuilds its network."""
        path = self.genotype_path
        return path if path.is_file() else None

    @property
    def genotype(self) -> dict[str, str] | None:
        """The genotype's op per edge label, ``{label: op}``, once genotype.yaml is written (the
        network itself: ``load_genotype(run.genotype_file).build()``)."""
        from nas_llv.config import load_yaml

        path = self.genotype_file
        return None if path is None else dict(load_yaml(path).get("genotype") or {})

    @property
    def genotype_hash(self) -> str | None:
        """12 hex digits that equal genotypes share (``nas_llv.sweep.genotype_hash``, as a sweep's summary)."""
        from nas_llv.sweep import genotype_hash

        choices = self.genotype
        return None if choices is None else genotype_hash(choices)

    @property
    def model_file(self) -> Path | None:
        """A training run's model.pt, once written."""
        path = self.model_path()
        return path if path.is_file() else None

    @property
    def trajectory(self) -> pd.DataFrame:
        """The trajectory as pandas, tidy: one row per step, module, edge and op (a training run's:
        one row per step); ``trajectory_frame(wide=True)`` as in trajectory.csv."""
        return self.trajectory_frame()

    def trajectory_frame(self, wide: bool = False) -> pd.DataFrame:
        """The trajectory as pandas: tidy (one row per step, module, edge and op) or ``wide`` (as
        in trajectory.csv); nas_llv.results, docs/runs.md."""
        from nas_llv.results import load_trajectory, load_trajectory_wide

        return load_trajectory_wide(self.dir) if wide else load_trajectory(self.dir)

    def __repr__(self) -> str:
        """``Run('results/x', search, finished, 8 steps, genotype 1a2b3c4d5e6f)``."""
        try:
            wide = read_wide(self.dir)
            status = run_status(self.dir, wide)  # 'stopped at step N' says its steps already
            said = [run_kind(self.dir, wide), status, *([f"{last_step(wide)} steps"] if status == "finished" else [])]
            digest = self.genotype_hash
            said += [f"genotype {digest}"] if digest else []
        except Exception:  # a torn or foreign folder still prints
            said = ["unreadable"]
        return f"{type(self).__name__}({str(self.dir)!r}, {', '.join(said)})"


class RunFolder(RunView):
    """The accessors of ``Run`` on a folder, read only: no lock, no log, no torch."""


def read_wide(folder: Path) -> pd.DataFrame | None:
    """``folder``'s trajectory.csv as written (``results.load_trajectory_wide``), or None before
    the run's first row."""
    from nas_llv.results import load_trajectory_wide

    path = folder / TRAJECTORY
    return load_trajectory_wide(folder) if path.is_file() and path.stat().st_size else None


def run_kind(folder: Path, wide: pd.DataFrame | None) -> str:
    """'search' or 'train' (``RunView.kind``) from the wide trajectory (None: no rows yet)."""
    from nas_llv.results import PROB

    if wide is None:
        return "train" if (folder / GENOTYPE).is_file() else "search"
    if "phase" in wide.columns and wide["phase"].notna().any():
        return "search" if (wide["phase"] == "search").any() else "train"
    return "search" if any(c.startswith(PROB) for c in wide.columns) else "train"


def run_status(folder: Path, wide: pd.DataFrame | None) -> str:
    """``RunView.status`` from the wide trajectory (None: no rows yet)."""
    from nas_llv.results import is_finished
    from nas_llv.runlock import writer_pid

    if wide is not None and is_finished(folder, wide):
        return "finished"
    step = last_step(wide)
    if writer_pid(folder) is not None:
        return f"running, at step {step}"
    return f"stopped at step {step}" if step else "not started"


def last_step(wide: pd.DataFrame | None) -> int:
    """The largest step of the wide trajectory (0: none)."""
    steps = wide["step"].dropna() if wide is not None and "step" in wide.columns else []
    return int(max(steps)) if len(steps) else 0
