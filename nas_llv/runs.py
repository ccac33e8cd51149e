"""Run folders: ``results/<name>-<YYYYmmdd-HHMMSS>/`` with the resolved config, a log, a
per-step trajectory and checkpoints; every write is atomic, so a killed run resumes cleanly.

Layout (see ``docs/runs.md``)::

    config.yaml          resolved recipe
    log.txt              the 'nas_llv' logger, with times
    trajectory.csv       one row per step (TrajectoryWriter)
    checkpoints/last.pt  torch.save of the state dict given to save_checkpoint
    genotype.yaml, genotype_best.yaml   written by the strategies
"""
from __future__ import annotations

import csv
import logging
import random
import shutil
import signal
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from nas_llv import distributed, signals
from nas_llv.config import ConfigError, load_yaml
from nas_llv.atomic import atomic_write, atomic_write_bytes, remove_temp_files, torch_bytes, write_yaml
from nas_llv.diskfull import disk_full, is_disk_full
from nas_llv.runlock import RunLock
from nas_llv.layout import CONFIG, LAST
from nas_llv.runview import RunView
from nas_llv.safe_load import load_torch_file

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Run(RunView):
    """One run folder. Build with ``Run.create`` (new run) or ``Run.open`` (resume); read it back
    with ``kind``, ``status``, ``steps``, ``genotype``, ``genotype_hash``, ``trajectory`` (a
    DataFrame), ``genotype_file`` and ``model_file`` (nas_llv.runview); a job appends its rows
    through ``trajectory_writer``."""

    writes = True  # False for MirrorRun: the other ranks of a data-parallel run write nothing
    _lock: RunLock | None = None  # held while this process writes the folder (nas_llv.runlock)

    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)
        self.trajectory_writer = TrajectoryWriter(self.trajectory_path)
        self._handler: logging.Handler | None = None
        self._old_level = logging.NOTSET
        self.created = False  # made by this process (Run.create), not reopened

    @classmethod
    def create(cls, config: Mapping[str, Any], name: str, root: str | Path = "results") -> Run:
        """A new folder ``root/<name>-<timestamp>`` (``-2``, ``-3``... when taken) holding config.yaml."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ConfigError(f"run name {name!r}: expected a plain folder name (no '/', not starting with '.')")
        base = Path(root) / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        base.parent.mkdir(parents=True, exist_ok=True)
        path, n = base, 1
        while True:
            try:
                path.mkdir()  # exist_ok=False: two processes cannot claim the same folder
                break
            except FileExistsError:
                n += 1
                path = base.with_name(f"{base.name}-{n}")
        run = cls(path)
        run._lock = RunLock(path).acquire()
        with run.discarded_on_error():
            write_yaml(run.config_path, _plain(config))
        run.created = True
        run._attach_log("w")
        log.info("run folder %s", path)
        return run

    @staticmethod
    def existing(path: str | Path) -> Path:
        """``path``, a run folder that exists (one line naming it otherwise)."""
        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"{path}: no such run folder")
        if not (path / CONFIG).is_file():
            raise ConfigError(f"{path}: not a run folder ({CONFIG} is missing)")
        return path

    @classmethod
    def open(cls, path: str | Path, begin: bool = True) -> Run:
        """An existing run (``--resume``), locked; log.txt is appended to from ``begin()``, at once
        unless ``begin`` is False (a resume that checks the folder first writes nothing until then)."""
        path = cls.existing(path)
        run = cls(path)
        run._lock = RunLock(path).acquire()  # before anything is written: a refused writer changes nothing
        if begin:
            run.begin()
        return run

    def begin(self) -> None:
        """Start writing a reopened run: append to log.txt, drop the temp files of interrupted writes."""
        if self._handler is None and self.writes:
            self._attach_log("a")
            log.info("resuming run %s", self.dir)
            self.remove_temp_files()

    @classmethod
    def resume(cls, path: str | Path, kind: str) -> tuple[Run, dict[str, Any]]:
        """``open`` the run, not begun, and read its last checkpoint, which ``kind`` ('search',
        'train') wrote; on any error the run is closed again, unchanged."""
        run = cls.open(path, begin=False)
        with run.closed_on_error():
            return run, run.load_checkpoint(kind=kind)

    @contextmanager
    def closed_on_error(self) -> Iterator[Run]:
        """Close the run (its log handler) when the block raises; leave it open otherwise."""
        try:
            yield self
        except BaseException:
            self.close()
            raise

    @contextmanager
    def discarded_on_error(self) -> Iterator[Run]:
        """Delete the whole run folder when the block raises: for a new run that has not taken a
        step, so a failure leaves nothing half-made behind."""
        try:
            yield self
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close the run and delete its folder."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def config(self) -> dict[str, Any]:
        return load_yaml(self.config_path)

    def save_checkpoint(self, state: Mapping[str, Any], name: str = LAST) -> Path:
        """``torch.save(state)`` into ``checkpoints/<name>`` via a temp file and rename (serialised in
        memory first, so a full disk is known, and said, before the write)."""
        return atomic_write_bytes(self.checkpoint_path(name), torch_bytes(dict(state)))

    def load_checkpoint(self, name: str = LAST, map_location: Any = "cpu",
                        kind: str | None = None) -> dict[str, Any]:
        """Read ``checkpoints/<name>`` safely (``weights_only``: a crafted file runs no code).
        ``kind`` ('search', 'train'): refuse a checkpoint another command wrote."""
        path = self.checkpoint_path(name)
        if not path.is_file():
            raise ConfigError(f"{self.dir}: no checkpoints/{name}; nothing to resume")
        state = load_torch_file(path, "nas-llv checkpoint", map_location)
        if not isinstance(state, dict) or (kind is not None and "kind" not in state):
            raise ConfigError(f"{path}: not a nas-llv checkpoint (no 'kind' entry)")
        if kind is not None and state["kind"] != kind:
            other = state["kind"]
            raise ConfigError(f"{self.dir}: a {other} run, not a {kind} run; resume it with "
                              f"`nas-llv {other} --resume {self.dir}`")
        return state

    def remove_temp_files(self) -> None:
        """Drop the temp files of writes a kill interrupted (they are never data)."""
        for folder in (self.dir, self.checkpoint_path().parent):
            for p in remove_temp_files(folder):
                log.info("removed %s, left by an interrupted write", p)

    def _attach_log(self, mode: str) -> None:
        self._handler = logging.FileHandler(self.dir / "log.txt", mode=mode, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        pkg = logging.getLogger("nas_llv")
        self._old_level = pkg.level
        if pkg.getEffectiveLevel() > logging.INFO:  # the log file wants INFO even when the console does not
            pkg.setLevel(logging.INFO)
        pkg.addHandler(self._handler)

    def close(self) -> None:
        """Remove stale temp files, detach and close log.txt, release the lock (idempotent)."""
        if self._handler is not None:
            self.remove_temp_files()
            pkg = logging.getLogger("nas_llv")
            pkg.removeHandler(self._handler)
            pkg.setLevel(self._old_level)
            self._handler.close()
            self._handler = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class MirrorRun(Run):
    """Rank 0's run folder as the other ranks of a data-parallel run see it (nas_llv.distributed):
    the same path, but no log file, trajectory rows, checkpoints or deletions; what a job writes
    itself (genotype, model files) it skips where ``writes`` is False."""

    writes = False

    def __init__(self, path: str | Path, created: bool = False) -> None:
        self.dir, self.created = Path(path), created
        self.trajectory_writer = _NoTrajectory()  # type: ignore[assignment]
        self._handler = None

    @classmethod
    def resume(cls, path: str | Path, kind: str) -> tuple[Run, dict[str, Any]]:
        run = cls(path)
        return run, run.load_checkpoint(kind=kind)

    def save_checkpoint(self, state: Mapping[str, Any], name: str = LAST) -> Path:
        return self.checkpoint_path(name)

    def discard(self) -> None:
        """Rank 0 deletes the folder."""

    def remove_temp_files(self) -> None:
        """Rank 0 tidies the folder."""


class _NoTrajectory:
    def append(self, row: Mapping[str, Any]) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass


def _plain(data: Any) -> Any:
    """A YAML-safe copy: tuples -> lists, Paths -> str (the config may come from dataclasses)."""
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return str(data) if isinstance(data, Path) else data


class TrajectoryWriter:
    """``trajectory.csv``: one row per step; the header grows when a row brings new keys."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fields: list[str] | None = None
        self._known = False  # the file's header read: not before a write needs it (opening a run writes nothing)

    @property
    def fields(self) -> list[str] | None:
        """The columns, from the file's header once it is read (a torn last line is dropped then)."""
        if not self._known:
            self._known = True
            if self.path.is_file() and self.path.stat().st_size:
                self._drop_torn_line()
                self._fields = self._read()[0] or None
        return self._fields

    @fields.setter
    def fields(self, value: list[str] | None) -> None:
        self._fields, self._known = value, True

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row and flush. Values: numbers (floats as repr), strings, 0-d tensors, None."""
        cells = {str(k): _cell(k, v) for k, v in row.items()}
        if self.fields is None:
            self.fields = list(cells)
            atomic_write(self.path, lambda p: self._write(p, self.fields or [], [cells]))
            return
        new = [k for k in cells if k not in self.fields]
        if new:
            _, rows = self._read()
            self.fields = self.fields + new
            atomic_write(self.path, lambda p: self._write(p, self.fields or [], [*rows, cells]))
            return
        try:
            with self.path.open("a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, self.fields, restval="").writerow(cells)
                f.flush()
        except OSError as exc:  # a torn last line is dropped when the folder is reopened
            if is_disk_full(exc, self.path.parent):
                raise disk_full(self.path, sum(len(v) + 1 for v in cells.values())) from None
            raise

    def truncate_after(self, step: int) -> None:
        """Drop rows with ``step`` greater than the given one (resuming from that step's checkpoint)."""
        if self.fields is None:
            return
        _, rows = self._read()
        kept = [r for r in rows if not r.get("step") or int(float(r["step"])) <= step]
        if len(kept) != len(rows):
            log.info("trajectory: dropped %d rows after step %d", len(rows) - len(kept), step)
            atomic_write(self.path, lambda p: self._write(p, self.fields or [], kept))

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows

    @staticmethod
    def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fields, restval="")
            writer.writeheader()
            writer.writerows(rows)

    def _drop_torn_line(self) -> None:
        """A run killed mid-append can leave a partial last line; it is not data."""
        text = self.path.read_text(encoding="utf-8")
        if text.endswith("\n"):
            return
        keep = text[: text.rfind("\n") + 1]
        log.warning("%s: dropping a partial last line %r", self.path, text[len(keep):][:80])
        atomic_write(self.path, lambda p: p.write_text(keep, encoding="utf-8"))


def _cell(key: Any, value: Any) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"trajectory column {key!r}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, (bool, int, str)):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: a resumed run compares equal
    raise TypeError(f"trajectory column {key!r}: expected a number, string or None, got {type(value).__name__}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all CUDA devices included) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (when present) all CUDA generators; loadable with weights_only."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {**np_state, "state": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                                        "pos": int(np_state["state"]["pos"])}},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state()`` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    key = np.asarray(np_state["state"]["key"].cpu().numpy() if isinstance(np_state["state"]["key"], torch.Tensor)
                     else np_state["state"]["key"]).astype(np.uint32)
    np_state["state"] = {"key": key, "pos": int(np_state["state"]["pos"])}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"].cpu())
    _set_cuda_state(state.get("cuda"))


def _set_cuda_state(states: list[torch.Tensor] | None) -> None:
    if not states:
        return
    if not torch.cuda.is_available():
        log.warning("checkpoint has CUDA RNG states but CUDA is not available; they are not restored")
        return
    count = torch.cuda.device_count()
    if len(states) != count:
        log.warning("checkpoint has %d CUDA RNG states, this machine %d devices; restoring the first %d",
                    len(states), count, min(count, len(states)))
    for i, s in enumerate(states[:count]):
        torch.cuda.set_rng_state(s.cpu(), i)


class _Interrupt:
    pending: int | None = None  # the first signal's number

    def check(self) -> None:
        # every rank of a data-parallel run stops at the same step when any was interrupted
        if distributed.any_rank(self.pending is not None):
            raise signals.raise_for(self.pending or signal.SIGINT)


@contextmanager
def deferred_interrupt() -> Iterator[_Interrupt]:
    """Ctrl-C or SIGTERM sets a flag that ``check()`` turns into KeyboardInterrupt (``Terminated``
    for SIGTERM) at a step boundary, so the checkpoint written then resumes exactly; a second
    signal interrupts at once."""
    flag = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.pending is not None:
            raise signals.raise_for(signum)
        flag.pending = signum
        if distributed.is_main():  # one line for a data-parallel run
            log.warning("%s: stopping after this step (send it again to stop at once)", signals.name(signum))

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
