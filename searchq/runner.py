"""The run directory and the result every algorithm returns.

::

    <out>/result.json           the Result (schema_version, algorithm, task, hardware, budget,
                                metrics, assignment, timings, seed, elapsed_s, ...)
    <out>/resolved_config.json  every setting used, defaults filled in
    <out>/tb/                   TensorBoard events (tags search/, eval/, agent/, train/, hw/)
    <out>/plots/*.png           figures (also sent to TensorBoard)
    <out>/checkpoints/          what a resumed run needs

Algorithms never write files themselves: they report to a :class:`Run`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from searchq import __version__
from searchq._io import read_json, write_json_atomic
from searchq.core.assignment import Assignment
from searchq.errors import CheckpointError, ConfigError

__all__ = ["RESULT_SCHEMA_VERSION", "Result", "Run", "default_run_dir"]

RESULT_SCHEMA_VERSION = 1
T = TypeVar("T")


@dataclass
class Result:
    """What a search produced (``result.json``)."""

    algorithm: str
    task: str
    hardware: str
    budget: dict[str, Any]
    metrics: dict[str, float]
    assignment: Assignment
    seed: int = 0
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    # the live QuantizedModel a quantization search leaves in the model (not saved)
    handle: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "searchq_version": __version__,
            "algorithm": self.algorithm,
            "task": self.task,
            "hardware": self.hardware,
            "budget": dict(self.budget),
            "metrics": dict(self.metrics),
            "assignment": self.assignment.to_dict(),
            "layers": list(self.layers),
            "timings": dict(self.timings),
            "seed": self.seed,
            "elapsed_s": self.elapsed_s,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | None = None) -> Result:
        where = source or "result"
        version = d.get("schema_version")
        if version != RESULT_SCHEMA_VERSION:
            raise CheckpointError(
                f"{where}: schema_version {version!r} is not supported (this searchq reads "
                f"{RESULT_SCHEMA_VERSION}); re-run the search with searchq {__version__}"
            )
        missing = [k for k in ("algorithm", "budget", "metrics", "assignment") if k not in d]
        if missing:
            raise CheckpointError(f"{where}: missing keys {missing}; is this a result.json?")
        return cls(
            algorithm=str(d["algorithm"]),
            task=str(d.get("task", "?")),
            hardware=str(d.get("hardware", "?")),
            budget=dict(d["budget"]),
            metrics=dict(d["metrics"]),
            assignment=Assignment.from_dict(d["assignment"], source=source),
            seed=int(d.get("seed", 0)),
            elapsed_s=float(d.get("elapsed_s", 0.0)),
            timings=dict(d.get("timings", {})),
            layers=list(d.get("layers", [])),
            extra=dict(d.get("extra", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> Result:
        p = Path(path)
        if p.is_dir():
            p = p / "result.json"
        try:
            data = read_json(p)
        except FileNotFoundError:
            raise ConfigError(
                "no result.json here; pass a run directory or its result.json", file=str(p)
            ) from None
        except ValueError as exc:
            raise CheckpointError(f"{p}: not valid JSON ({exc}); the file is corrupt") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{p}: not a result.json (top level is not an object)")
        result = cls.from_dict(data, source=str(p))
        result.run_dir = p.parent
        return result


def default_run_dir(algorithm: str, task: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_task = "".join(c if c.isalnum() or c in "-_" else "_" for c in task)[:40]
    return Path("runs") / f"{algorithm}-{safe_task}-{stamp}"


class Run:
    """Owns one run directory: timings, TensorBoard, plots, the result file."""

    def __init__(
        self,
        out: str | Path,
        *,
        algorithm: str,
        task: str,
        hardware: str,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        progress: bool = True,
        tensorboard: bool = True,
        writer: bool = True,
    ) -> None:
        """``writer=False`` (e.g. ranks > 0 of a distributed run) writes no file at all."""
        self.dir = Path(out)
        self.writes = writer
        if writer:
            for sub in ("tb", "plots", "checkpoints"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.algorithm, self.task, self.hardware, self.seed = algorithm, task, hardware, seed
        self.timings: dict[str, float] = {}
        self.show_progress = progress
        self._tensorboard = tensorboard and writer
        self._writer: Any = None
        self._start = time.perf_counter()
        if config is not None and writer:
            write_json_atomic(self.dir / "resolved_config.json", dict(config))

    # -- timing ----------------------------------------------------------------------------
    @contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            key = f"{stage}_s"
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._start

    def progress(self, items: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        if not self.show_progress:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, total=total, leave=False, mininterval=0.5, delay=1.0)

    # -- TensorBoard / plots -----------------------------------------------------------------
    @property
    def writer(self) -> Any:
        if self._writer is None and self._tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.dir / "tb"))
        return self._writer

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, value: str, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, value, step)

    def figure(self, name: str, fig: Any) -> Path:
        """Save ``fig`` as ``plots/<name>.png`` and to TensorBoard; closes it."""
        import matplotlib.pyplot as plt

        path = self.dir / "plots" / f"{name}.png"
        if not self.writes:
            plt.close(fig)
            return path
        fig.savefig(path, dpi=110, bbox_inches="tight")
        if self.writer is not None:
            self.writer.add_figure(f"plots/{name}", fig, close=False)
        plt.close(fig)
        return path

    # -- result ------------------------------------------------------------------------------
    def finish(self, result: Result) -> Result:
        result.timings = {**self.timings, **result.timings}
        result.elapsed_s = round(self.elapsed_s, 3)
        result.run_dir = self.dir
        if self.writes:
            write_json_atomic(self.dir / "result.json", result.to_dict())
        self.close()
        return result

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
