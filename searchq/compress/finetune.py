"""``searchq finetune``: the framework-style loop — compress, fine-tune with the schedule,
validate every epoch, checkpoint, export.

Run directory: ``resolved_config.json``; ``checkpoints/last.pth`` after every epoch (model,
optimizer, LR schedule, compression state, loader and torch RNG, history; written atomically, read
with ``weights_only=True``); ``epochs.csv``; TensorBoard ``train/`` (loss, lr), ``val/``
(accuracy, loss) and ``compression/`` (sparsity level, size and bit-complexity ratios, quantizers
on); ``plots/finetune.png``; ``result.json`` (final metrics, bits and sparsity per layer; the
precision-init search's own run directory is under ``precision_init/``).

``--resume`` continues from a checkpoint (file or run directory): the same config is required
(a different one fails naming the keys), and the run goes on exactly as if it had not stopped.
The optimizer is the config's ``optimizer`` section (NNCF example scripts' keys: ``type`` SGD /
Adam / AdamW, ``base_lr``, ``weight_decay``, ``schedule_type`` multistep with ``steps`` and
``gamma`` / cosine / constant), else SGD with momentum 0.9 and cosine decay; with staged
quantization that drives the LR (``lr_poly_drop_*``), NNCF's Adam with ``base_lr`` / ``base_wd``.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from searchq._io import load_checkpoint_file, save_atomic
from searchq.compress.api import create_compressed_model
from searchq.compress.controller import CompressionController
from searchq.compress.nncf_config import NNCFConfig, register_default_init_args
from searchq.config.warn import SearchqWarning
from searchq.core.assignment import Assignment
from searchq.core.evaluate import _split
from searchq.errors import CheckpointError, ConfigError
from searchq.runner import Result, Run, default_run_dir

__all__ = ["finetune_run"]

CHECKPOINT = "last.pth"
CHECKPOINT_VERSION = 1
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("cosine", "multistep", "constant")


def finetune_run(
    config: str | Path,
    *,
    task: str = "digits",
    epochs: int | None = None,
    lr: float | None = None,
    resume: str | Path | None = None,
    export: str | Path | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Result:
    from searchq.tasks import get_task

    nncf_config = NNCFConfig.from_json(config)
    checkpoint = _load_checkpoint(resume) if resume is not None else None
    run_dir = Path(out) if out else _resume_dir(resume) or default_run_dir("finetune", task)
    nncf_config["log_dir"] = str(run_dir)
    n_epochs = epochs if epochs is not None else int(nncf_config.get("epochs", 5))
    if n_epochs < 1:
        raise ConfigError(f"--epochs {n_epochs} must be >= 1", key="epochs")
    t = get_task(task, seed=seed)
    criterion = t.criterion
    assert criterion is not None and t.evaluator is not None
    rec = Run(
        run_dir,
        algorithm="finetune",
        task=t.name,
        hardware=str(nncf_config.get("target_device", "any")),
        seed=seed,
        config={**dict(nncf_config), "searchq_run": {"epochs": n_epochs, "lr": lr, "task": task}},
        progress=progress,
    )
    torch.manual_seed(seed)
    fp32 = dict(t.evaluator(t.model))
    register_default_init_args(
        nncf_config, t.train_loader, criterion=criterion, val_loader=t.val_loader
    )
    with rec.timer("compress"):
        ctrl, model = create_compressed_model(
            t.model,
            nncf_config,
            checkpoint["compression_state"] if checkpoint is not None else None,
            seed=seed,
            progress=progress,
        )
    optimizer, lr_schedule = _optimizer(ctrl, nncf_config, lr, n_epochs)
    history: list[dict[str, Any]] = []
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        lr_schedule.load_state_dict(checkpoint["lr_schedule"])
        t.train_loader.generator.set_state(checkpoint["loader_rng"])  # type: ignore[union-attr]
        torch.set_rng_state(checkpoint["torch_rng"])
        history = [dict(r) for r in checkpoint["history"]]
        start = int(checkpoint["epoch"]) + 1
        fp32 = dict(checkpoint["fp32"])
    for epoch in range(start, n_epochs):
        ctrl.scheduler.epoch_step()
        with rec.timer("train"):
            train_loss = _train_epoch(model, ctrl, t.train_loader, criterion, optimizer)
        lr_used = optimizer.param_groups[0]["lr"]
        lr_schedule.step()
        with rec.timer("validate"):
            metrics = dict(t.evaluator(model))
            metrics["val_loss"] = _val_loss(model, t.val_loader, criterion)
        stats = ctrl.statistics()
        row = {"epoch": epoch, "train_loss": train_loss, **metrics, **_numeric(stats.totals)}
        row["lr"] = lr_used
        history.append(row)
        _log_epoch(rec, row)
        save_atomic(
            rec.dir / "checkpoints" / CHECKPOINT,
            {
                "schema_version": CHECKPOINT_VERSION,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_schedule": lr_schedule.state_dict(),
                "compression_state": ctrl.state_dict(),
                "loader_rng": t.train_loader.generator.get_state(),  # type: ignore[union-attr]
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "fp32": fp32,
            },
        )
    _write_csv(rec.dir / "epochs.csv", history)
    rec.figure("finetune", _figure(history))
    exported = None
    if export is not None:
        with rec.timer("export"):
            exported = str(ctrl.export_model(export))
    stats = ctrl.statistics()
    last = history[-1] if history else {}
    result = Result(
        algorithm="finetune",
        task=t.name,
        hardware=rec.hardware,
        budget={"kind": "size_ratio", "target": None, "achieved": stats.totals["size_ratio"]},
        metrics={
            **{k: v for k, v in last.items() if k != "epoch"},
            "fp32_accuracy": float(fp32.get("accuracy", float("nan"))),
        },
        assignment=ctrl.qmodel.assignment if ctrl.qmodel is not None else Assignment({}, {}),
        seed=seed,
        layers=stats.layers,
        extra={
            "epochs": history,
            "precision_init": ctrl.init_results,
            **({"onnx": exported} if exported else {}),
        },
    )
    return rec.finish(result)


def _train_epoch(
    model: nn.Module,
    ctrl: CompressionController,
    loader: Any,
    criterion: Any,
    optimizer: torch.optim.Optimizer,
) -> float:
    model.train()
    total, count, k = 0.0, 0, ctrl.batch_multiplier
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader):
        x, y = _split(batch)
        ctrl.scheduler.step()
        loss = criterion(model(x), y) + ctrl.loss()
        (loss / k).backward()
        if (i + 1) % k == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        total += float(loss.detach()) * int(x.shape[0])
        count += int(x.shape[0])
    if count and (i + 1) % k:  # a last, partial accumulation
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return total / max(count, 1)


@torch.no_grad()
def _val_loss(model: nn.Module, loader: Any, criterion: Any) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        x, y = _split(batch)
        total += float(criterion(model(x), y)) * int(x.shape[0])
        count += int(x.shape[0])
    return total / max(count, 1)


def _optimizer(
    ctrl: CompressionController, config: Mapping[str, Any], lr: float | None, epochs: int
) -> tuple[torch.optim.Optimizer, Any]:
    section = config.get("optimizer") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"got {section!r}; expected an object", key="optimizer")
    params = [p for p in ctrl.model.parameters() if p.requires_grad]
    if ctrl.staged.drives_optimizer and "type" not in section:
        opt: torch.optim.Optimizer = ctrl.make_optimizer(params)
        if lr is not None:
            for g in opt.param_groups:
                g["lr"] = lr
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    kind = str(section.get("type", "sgd")).lower()
    if kind not in OPTIMIZERS:
        raise ConfigError(f"type {kind!r} is not one of {list(OPTIMIZERS)}", key="optimizer.type")
    base_lr = lr if lr is not None else float(section.get("base_lr", 0.01))
    wd = float(section.get("weight_decay", 0.0))
    if kind == "sgd":
        momentum = float(section.get("momentum", 0.9))
        opt = torch.optim.SGD(params, lr=base_lr, momentum=momentum, weight_decay=wd)
    elif kind == "adam":
        opt = torch.optim.Adam(params, lr=base_lr, weight_decay=wd)
    else:
        opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=wd)
    ctrl.register_optimizer(opt)
    schedule = str(section.get("schedule_type", "cosine")).lower()
    if schedule not in LR_SCHEDULES:
        warnings.warn(
            f"optimizer.schedule_type {schedule!r} is not one of {list(LR_SCHEDULES)}; using "
            "cosine decay",
            SearchqWarning,
            stacklevel=3,
        )
        schedule = "cosine"
    if schedule == "multistep":
        steps = [int(s) for s in section.get("steps", [])]
        gamma = float(section.get("gamma", 0.1))
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=gamma)
    if schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


# -- checkpoints ----------------------------------------------------------------------------------
def _resume_dir(resume: str | Path | None) -> Path | None:
    if resume is None:
        return None
    p = Path(resume)
    return p if p.is_dir() else p.parent.parent if p.parent.name == "checkpoints" else p.parent


def _load_checkpoint(resume: str | Path) -> dict[str, Any]:
    p = Path(resume)
    if p.is_dir():
        p = p / "checkpoints" / CHECKPOINT
    if not p.exists():
        raise CheckpointError(f"{p}: no checkpoint here; pass a finetune run directory or its .pth")
    fix = "start again without --resume"
    state = load_checkpoint_file(p, version=CHECKPOINT_VERSION, fix=fix)
    needed = ("epoch", "model", "optimizer", "compression_state", "history")
    if any(k not in state for k in needed):
        raise CheckpointError(f"{p}: not a searchq finetune checkpoint (keys {needed}); {fix}")
    return state


# -- logging --------------------------------------------------------------------------------------
def _numeric(totals: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v) for k, v in totals.items() if k != "epoch" and isinstance(v, (int, float, bool))
    }


def _log_epoch(rec: Run, row: Mapping[str, Any]) -> None:
    e = int(row["epoch"])
    rec.scalar("train/loss", row["train_loss"], e)
    rec.scalar("train/lr", row["lr"], e)
    for key, value in row.items():
        if key in ("epoch", "train_loss", "lr") or not isinstance(value, (int, float)):
            continue
        if math.isnan(float(value)):
            continue
        group = "val" if key in ("accuracy", "val_loss") else "compression"
        rec.scalar(f"{group}/{key.removeprefix('val_')}", value, e)
    if rec.show_progress:
        shown = ", ".join(
            f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "lr"
        )
        print(f"epoch {e}: {shown}", flush=True)


def _write_csv(path: Path, history: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def _figure(history: list[dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r.get("accuracy", float("nan")) for r in history], "o-", label="val accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy %")
    if any("sparsity_level" in r for r in history):
        ax2 = ax.twinx()
        ax2.step(epochs, [r.get("sparsity_level", 0.0) for r in history], "r-", where="post")
        ax2.set_ylabel("sparsity", color="r")
    ax.set_title("searchq finetune")
    return fig
