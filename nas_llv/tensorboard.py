"""``logging.tensorboard: true``: a run's trajectory rows also as TensorBoard scalars.

Every number of a trajectory row (losses, metrics, α probabilities, hyper-variables, Hessian,
cost, ...; docs/runs.md) is written under its column name at the row's step to the event files
of ``RUN/tensorboard/`` as the run goes (``tensorboard --logdir results``). ``trajectory.csv``
stays the record; the event files are a view of it. A resumed run purges the steps after its
checkpoint, as the CSV drops them.
"""
from __future__ import annotations

import importlib.util
import numbers
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from nas_llv.runs import Run

INSTALL = "pip install -e '.[tensorboard]'"
FOLDER = "tensorboard"


def installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a trajectory row (numbers or 0-d tensors), less its ``step``."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        if isinstance(value, numbers.Real) and key != "step":
            out[key] = float(value)
    return out


class TensorBoardTee:
    """A run's trajectory writer that also writes each row's numbers to TensorBoard."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self.inner, self.folder = inner, folder
        self.writer = self._open(None)

    def _open(self, purge_step: int | None) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.folder), purge_step=purge_step)

    def append(self, row: Mapping[str, Any]) -> None:
        self.inner.append(row)
        step = int(row["step"])
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # a run killed at any moment keeps the rows it logged

    def truncate_after(self, step: int) -> None:
        """Resuming at ``step``: the CSV drops the later rows; TensorBoard hides their events."""
        self.inner.truncate_after(step)
        self.writer.close()
        self.writer = self._open(step + 1)

    def close(self) -> None:
        self.writer.close()


def tee(run: Run) -> TensorBoardTee:
    """Route ``run``'s trajectory rows to ``RUN/tensorboard/`` too; the writer closes with the run
    object (or at exit)."""
    writer = TensorBoardTee(run.trajectory_writer, run.dir / FOLDER)
    run.trajectory_writer = writer  # type: ignore[assignment]
    weakref.finalize(run, writer.close)
    return writer
