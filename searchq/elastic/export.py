"""Load a trained supernet from its run directory; write and read standalone subnets.

A subnet file holds the subnet's state dict and config (plus the task that defines the
architecture); :func:`load_subnet` rebuilds the module from the task and loads the weights, so
no code is unpickled (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from searchq.elastic.checkpoint import load_checkpoint
from searchq.elastic.space import SubnetConfig
from searchq.elastic.spec import ElasticSpec, StageSpec
from searchq.elastic.supernet import Supernet
from searchq.errors import CheckpointError, ConfigError

__all__ = ["extract_to_file", "load_subnet", "load_supernet"]

SUBNET_VERSION = 1


def _spec_from_dict(d: Mapping[str, Any]) -> ElasticSpec:
    names = {f.name for f in fields(ElasticSpec)}
    values: dict[str, Any] = {k: v for k, v in d.items() if k in names and k != "stages"}
    for key in ("available_dims", "progressivity", "width_multipliers", "skipped_blocks"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    values["stages"] = tuple(StageSpec.from_dict(s) for s in d.get("stages", []))
    return ElasticSpec(**values)


def load_supernet(run_dir: str | Path, *, best: bool = False) -> tuple[Supernet, Any, dict]:
    """(supernet with trained weights, its task, checkpoint meta) from an elastic run.

    The task is rebuilt with the run's seed (recorded in the metadata; checkpoints written
    before it was recorded use seed 0)."""
    from searchq.tasks import get_task

    name = "supernet_best.pt" if best else "supernet_last.pt"
    ckpt = load_checkpoint(Path(run_dir) / "checkpoints" / name)
    meta = ckpt["meta"]
    spec = _spec_from_dict(meta["spec"])
    task = get_task(meta["task"], seed=int(meta.get("seed", 0)))  # older checkpoints: no seed
    assert task.example_input is not None
    supernet = Supernet(
        task.model, task.example_input, dims=spec.available_dims, space_options=spec.space_options()
    )
    supernet.model.load_state_dict(ckpt["model"])
    supernet.model.eval()
    return supernet, task, meta


def _read_subnet(path: str | Path | None, supernet: Supernet, run_dir: Path) -> SubnetConfig:
    if path is None:  # the smallest subnet the schedule trained (recorded by the run)
        result = run_dir / "result.json"
        if result.exists():
            extra = json.loads(result.read_text(encoding="utf-8")).get("extra", {})
            if "min_subnet" in extra:
                return SubnetConfig.from_dict(extra["min_subnet"])
        return supernet.minimal()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("subnet file not found", key="subnet", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON ({exc.msg})",
            key="subnet",
            file=str(path),
            line=exc.lineno,
            column=exc.colno,
        ) from None
    if isinstance(data, Mapping) and "assignment" in data:  # a result.json
        data = data["assignment"].get("subnet", {})
    return SubnetConfig.from_dict(data)


def extract_to_file(
    run_dir: str | Path, *, subnet: str | Path | None, out: str | Path, best: bool = False
) -> Path:
    """Extract ``subnet`` (a JSON file, a result.json, or by default the smallest subnet the run
    trained) and save it to ``out``; BatchNorm is recalibrated for it first."""
    from searchq.core.bn import adapt_batchnorm
    from searchq.core.pipeline import take_samples

    supernet, task, meta = load_supernet(run_dir, best=best)
    cfg = supernet.activate(_read_subnet(subnet, supernet, Path(run_dir)))
    spec = _spec_from_dict(meta["spec"])
    bn = take_samples(task.train_loader, spec.bn_adaptation_samples)
    adapt_batchnorm(supernet.model, bn, sum(int(x.shape[0]) for x in bn))
    model = supernet.extract(cfg)
    payload = {
        "schema_version": SUBNET_VERSION,
        "task": meta["task"],
        "seed": int(meta.get("seed", 0)),
        "spec": json.dumps(meta["spec"]),
        "subnet": json.dumps(cfg.to_dict()),
        "macs": supernet.macs(cfg),
        "params": supernet.params(cfg),
        "state_dict": model.state_dict(),
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def load_subnet(path: str | Path) -> tuple[nn.Module, SubnetConfig]:
    """Rebuild a standalone subnet written by :func:`extract_to_file`."""
    from searchq.tasks import get_task

    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise ConfigError("subnet file not found", file=str(path)) from None
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the subnet ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("schema_version") != SUBNET_VERSION:
        raise CheckpointError(
            f"{path}: not a searchq subnet file of schema_version "
            f"{SUBNET_VERSION}; extract it again"
        )
    spec = _spec_from_dict(json.loads(payload["spec"]))
    task = get_task(payload["task"], seed=int(payload.get("seed", 0)))
    assert task.example_input is not None
    supernet = Supernet(
        task.model, task.example_input, dims=spec.available_dims, space_options=spec.space_options()
    )
    cfg = SubnetConfig.from_dict(json.loads(payload["subnet"]))
    model = supernet.extract(cfg)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), cfg
