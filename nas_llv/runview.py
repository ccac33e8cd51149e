"""What a run folder holds, read back: ``Run``'s accessors for a script or notebook
(``run.status``, ``run.choices``, ``run.genotype_file``, ``run.trajectory_frame()``, ``run.model_file``;
``run.trajectory`` is the writer). Everything is read from the folder when asked, so the answers
follow a run that another process is writing."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class RunView:
    """Read-only accessors over ``self.dir`` (mixed into ``nas_llv.runs.Run``)."""

    dir: Path

    @property
    def status(self) -> str:
        """'finished', 'stopped at step N' (a checkpoint to resume from) or 'not started'."""
        from nas_llv.results import is_finished, load_trajectory_wide

        if not (self.dir / "trajectory.csv").is_file():
            return "not started"
        wide = load_trajectory_wide(self.dir)
        if is_finished(self.dir, wide):
            return "finished"
        steps = wide["step"].dropna() if "step" in wide.columns else []
        return f"stopped at step {int(max(steps))}" if len(steps) else "not started"

    @property
    def genotype_file(self) -> Path | None:
        """The run's genotype.yaml (a search's result, or the network a training run trains), once
        written; ``nas_llv.space.genotype.load_genotype`` rebuilds its network."""
        path = self.dir / "genotype.yaml"
        return path if path.is_file() else None

    @property
    def choices(self) -> dict[str, str] | None:
        """The genotype's op per edge label, ``{label: op}``, once genotype.yaml is written."""
        from nas_llv.config import load_yaml

        path = self.genotype_file
        return None if path is None else dict(load_yaml(path).get("genotype") or {})

    @property
    def model_file(self) -> Path | None:
        """A training run's model.pt, once written."""
        path = self.dir / "model.pt"
        return path if path.is_file() else None

    def trajectory_frame(self, wide: bool = False) -> pd.DataFrame:
        """The trajectory as pandas: tidy (one row per step, module, edge and op) or ``wide`` (as
        in trajectory.csv); nas_llv.results, docs/runs.md."""
        from nas_llv.results import load_trajectory, load_trajectory_wide

        return load_trajectory_wide(self.dir) if wide else load_trajectory(self.dir)

    def __repr__(self) -> str:
        try:
            status = self.status
        except Exception:  # a torn or foreign folder still prints
            status = "unreadable"
        return f"Run({str(self.dir)!r}, {status})"
