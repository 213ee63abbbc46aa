"""Progressive shrinking (Once-for-All, Cai et al. 2020; NNCF BootstrapNAS) of a trained model.

Stage by stage, every optimizer step trains one or more subnets of the dimensions the stage trains
(within its depth / width indicators) and accumulates their gradients. By default the subnets
follow the sandwich rule of BigNAS (Yu et al. 2020): maximal → stage's smallest → random, spread
one per step over consecutive steps in stages whose subnets are large (depth, kernel); in stages
whose smallest subnet is small (width) every step trains the smallest and a random subnet, and the
maximal one every ``max_subnet_every``-th step (default never, as in Once-for-All); see
:mod:`searchq.elastic.spec` for the knobs and the measurements. Every subnet but the maximal one
learns from the labels and by knowledge distillation (softened softmax KL × T², or MSE on logits)
from the maximal subnet's own output when the step trains it (in-place distillation), else from
the original (frozen) network, run once per step without autograd. Which subnets a step trains is
a pure function of (seed, step), so every rank of a ``torchrun`` launch trains the same ones and a
resumed run repeats them; gradients are averaged over ranks (gloo on CPU). After every epoch the
maximal and minimal subnets are validated after a full BatchNorm recalibration, and a checkpoint
is written; ``resume`` continues at the next epoch exactly (weights, optimizer, scheduler, loader
order).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from searchq.core.bn import adapt_batchnorm
from searchq.core.evaluate import _split
from searchq.core.pipeline import take_samples
from searchq.elastic import plots
from searchq.elastic.checkpoint import TrainState, load_checkpoint, save_checkpoint
from searchq.elastic.reorder import load_external_importance
from searchq.elastic.spec import AUTO, SANDWICH_BELOW, ElasticSpec, StageSpec, stage_dims
from searchq.elastic.supernet import Supernet
from searchq.errors import ConfigError
from searchq.runner import Result, Run, default_run_dir
from searchq.tasks.base import Task

__all__ = ["step_roles", "step_subnets", "train_supernet"]

LAST, BEST = "supernet_last.pt", "supernet_best.pt"


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _kd_loss(student: Tensor, teacher: Tensor, kind: str, temperature: float) -> Tensor:
    if kind == "mse":
        return F.mse_loss(student, teacher)
    t = temperature
    return (
        F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
        * t
        * t
    )


def _evaluate(supernet: Supernet, cfg: Any, task: Task, bn: list[Tensor]) -> float:
    supernet.activate(cfg)
    adapt_batchnorm(supernet.model, bn, sum(int(x.shape[0]) for x in bn))
    assert task.evaluator is not None
    return float(task.evaluator(supernet.model)["accuracy"])


def _all_reduce_grads(model: nn.Module, world: int) -> None:
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)
        p.grad.div_(world)


def _optimizer(model: nn.Module, stage: StageSpec, steps_per_epoch: int):  # noqa: ANN202
    opt = torch.optim.SGD(
        model.parameters(), lr=stage.lr, momentum=0.9, nesterov=True, weight_decay=5e-5
    )
    horizon = max(1, (stage.epochs_lr or stage.epochs) * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, horizon) / horizon))
    )
    return opt, sched


def train_supernet(
    task: Task,
    spec: ElasticSpec | None = None,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    resume: str | Path | None = None,
    stop_after_epochs: int | None = None,
    resolved_config: Mapping[str, Any] | None = None,
) -> Result:
    """Train ``task.model`` into a supernet and write the run directory (see module doc)."""
    spec = spec or ElasticSpec()
    rank, world = _distributed()
    run_dir = Path(resume or out or default_run_dir("elastic", task.name))
    rec = Run(
        run_dir,
        algorithm="elastic",
        task=task.name,
        hardware="-",
        seed=seed,
        config={**(resolved_config or {}), "elastic": spec.to_dict()},
        progress=progress and rank == 0,
        writer=rank == 0,
    )
    model = task.model
    teacher = copy.deepcopy(model).eval() if spec.distillation != "none" else None
    if teacher is not None:
        teacher.requires_grad_(False)
    assert task.example_input is not None
    supernet = Supernet(
        model, task.example_input, dims=spec.available_dims, space_options=spec.space_options()
    )
    available = _available_dims(supernet)
    external = None
    if spec.filter_importance == "external":
        if spec.external_importance_path is None:
            raise ConfigError(
                "filter_importance 'external' needs external_importance_path",
                key="width.external_importance_path",
            )
        external = load_external_importance(spec.external_importance_path)
    bn = take_samples(task.train_loader, spec.bn_adaptation_samples)
    state = TrainState()
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(run_dir / "checkpoints" / LAST)
        model.load_state_dict(ckpt["model"])
        state = ckpt["state"]
        gen = getattr(task.train_loader, "generator", None)
        if isinstance(gen, torch.Generator) and ckpt["loader_rng"] is not None:
            gen.set_state(ckpt["loader_rng"])
    criterion = task.criterion
    assert criterion is not None
    steps_per_epoch = max(1, len(task.train_loader) // world)  # type: ignore[arg-type]
    epochs_done = 0
    for si in range(state.stage, len(spec.stages)):
        stage = spec.stages[si]
        dims = stage_dims(stage, available)
        fresh_stage = state.epoch_in_stage == 0 and (ckpt is None or ckpt["state"].stage != si)
        if fresh_stage:
            if stage.reorg_weights and "width" in dims:
                supernet.reorganize(spec.filter_importance, external)
            if stage.bn_adapt:
                supernet.activate(supernet.maximal())
                adapt_batchnorm(model, bn, sum(int(x.shape[0]) for x in bn))
        opt, sched = _optimizer(model, stage, steps_per_epoch)
        if ckpt is not None and ckpt["state"].stage == si and ckpt["optimizer"] is not None:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        for epoch in range(state.epoch_in_stage, stage.epochs):
            loss = _train_epoch(
                supernet,
                teacher,
                task,
                criterion,
                spec,
                stage,
                dims,
                opt,
                sched,
                state,
                seed,
                rank,
                world,
            )
            row = _validate(supernet, task, bn, spec, stage, si, epoch, loss, sched, dims)
            state.history.append(row)
            state.epoch_in_stage = epoch + 1
            state.epoch += 1
            _log_epoch(rec, row, state.epoch)
            if rank == 0:
                _checkpoint(rec, model, opt, sched, task, state, row, spec, supernet, seed)
            epochs_done += 1
            if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
                rec.close()
                return _partial(rec, task, seed)
        state.stage = si + 1
        state.epoch_in_stage = 0
        ckpt = None
    return _finish(rec, supernet, task, bn, spec, state, seed)


def _available_dims(supernet: Supernet) -> tuple[str, ...]:
    have = []
    if supernet.space.widths:
        have.append("width")
    if supernet.space.kernels:
        have.append("kernel")
    if supernet.space.blocks:
        have.append("depth")
    return tuple(have)


def _train_epoch(
    supernet: Supernet,
    teacher: nn.Module | None,
    task: Task,
    criterion: Any,
    spec: ElasticSpec,
    stage: StageSpec,
    dims: tuple[str, ...],
    opt: Any,
    sched: Any,
    state: TrainState,
    seed: int,
    rank: int,
    world: int,
) -> float:
    model = supernet.model
    members = stage_members(supernet, spec, stage)
    inplace_ok = spec.inplace_distillation and spec.distillation != "none"
    model.train()
    total, count = 0.0, 0
    steps = len(task.train_loader) // world  # every rank takes the same number of steps
    done = 0
    for i, batch in enumerate(task.train_loader):
        if i % world != rank:
            continue
        if done == steps:
            break
        done += 1
        x, y = _split(batch)
        configs = step_subnets(supernet, spec, stage, dims, seed, state.global_step, members)
        opt.zero_grad(set_to_none=True)
        original: Tensor | None = None  # the frozen original net's output, once per step
        inplace: Tensor | None = None  # the maximal subnet's output this step (BigNAS)
        with torch.random.fork_rng():
            torch.manual_seed(seed * 1_000_003 + state.global_step)
            for role, cfg in configs:
                supernet.activate(cfg)
                out = model(x)
                loss = criterion(out, y)
                target: Tensor | None = None
                if role == "max":
                    if inplace_ok and len(configs) > 1:
                        inplace = out.detach()
                    if spec.distill_max and teacher is not None:
                        original = original if original is not None else _teach(teacher, x)
                        target = original
                elif inplace is not None:
                    target = inplace
                elif teacher is not None:
                    original = original if original is not None else _teach(teacher, x)
                    target = original
                if target is not None:
                    loss = loss + _kd_loss(out, target, spec.distillation, spec.temperature)
                (loss / len(configs)).backward()
                total += float(loss.item()) * int(x.shape[0]) / len(configs)
        if world > 1:
            _all_reduce_grads(model, world)
        opt.step()
        sched.step()
        count += int(x.shape[0])
        state.global_step += 1
    supernet.activate(supernet.maximal())
    model.eval()
    return total / max(count, 1)


@torch.no_grad()
def _teach(teacher: nn.Module, x: Tensor) -> Tensor:
    return teacher(x)


CYCLE = ("max", "min", "random")


def stage_members(supernet: Supernet, spec: ElasticSpec, stage: StageSpec) -> int:
    """Subnets per step in ``stage``: ``spec.subnets_per_step``, or for ``"auto"`` 1 when the
    stage's smallest subnet keeps more than ``SANDWICH_BELOW`` of the maximal MACs (every
    subnet costs most of a full step), else the whole sandwich (max, min, random: 3)."""
    if spec.subnets_per_step != AUTO:
        return int(spec.subnets_per_step)
    dims = stage_dims(stage, _available_dims(supernet))
    if not dims:
        return 1
    share = supernet.macs(_stage_minimal(supernet, stage, dims)) / supernet.macs(supernet.maximal())
    return len(CYCLE) if share <= SANDWICH_BELOW else 1


def step_roles(spec: ElasticSpec, event: int, members: int) -> list[str]:
    """The sandwich members ("max" / "min" / "random") trained at sampling event ``event``:
    the next ``members`` of the cycle max → min → random (3: BigNAS's sandwich in every step).
    Without ``sandwich`` every member is random (NNCF). The maximal subnet comes first, so it
    can teach the others in place; in a step of several members it is left out unless ``event``
    is a multiple of ``spec.max_subnet_every`` (0: always left out)."""
    k = max(1, int(members))
    if not spec.sandwich:
        return ["random"] * k
    roles = [CYCLE[(event * k + j) % len(CYCLE)] for j in range(k)]
    every = spec.max_subnet_every
    if len(roles) > 1 and "max" in roles and (every == 0 or event % every):
        roles = [r for r in roles if r != "max"]  # the original net teaches this step
    return sorted(roles, key=lambda r: r != "max")  # stable


def step_subnets(
    supernet: Supernet,
    spec: ElasticSpec,
    stage: StageSpec,
    dims: tuple[str, ...],
    seed: int,
    global_step: int,
    members: int = 1,
) -> list[tuple[str, Any]]:
    """(role, subnet config) of every subnet the step ``global_step`` trains: a pure function of
    (seed, step), so ranks agree and a resumed run repeats it. Subnets are resampled every
    ``stage.sample_rate`` steps (NNCF)."""
    if not dims:
        return [("max", supernet.maximal())]
    first = global_step - global_step % stage.sample_rate
    rng = np.random.default_rng([seed, first])  # same subnets on every rank
    out: list[tuple[str, Any]] = []
    for role in step_roles(spec, first // stage.sample_rate, members):
        if role == "max":
            cfg = supernet.maximal()
        elif role == "min":
            cfg = _stage_minimal(supernet, stage, dims)
        else:
            cfg = supernet.sample(
                rng,
                dims=dims,
                width_indicator=stage.width_indicator,
                depth_indicator=stage.depth_indicator,
            )
        out.append((role, cfg))
    return out


def _stage_minimal(supernet: Supernet, stage: StageSpec, dims: tuple[str, ...]) -> Any:
    """The smallest subnet the stage trains (dimensions it does not train stay maximal)."""
    cfg = supernet.minimal(
        width_indicator=stage.width_indicator, depth_indicator=stage.depth_indicator
    )
    full = supernet.maximal()
    if "width" not in dims:
        cfg.width = full.width
    if "kernel" not in dims:
        cfg.kernel = full.kernel
    if "depth" not in dims:
        cfg.depth = []
    return cfg


def _validate(
    supernet: Supernet,
    task: Task,
    bn: list[Tensor],
    spec: ElasticSpec,
    stage: StageSpec,
    si: int,
    epoch: int,
    loss: float,
    sched: Any,
    dims: tuple[str, ...],
) -> dict[str, Any]:
    smallest = _stage_minimal(supernet, stage, dims)
    row = {
        "stage": si,
        "epoch_in_stage": epoch,
        "train_dims": list(stage.train_dims),
        "loss": loss,
        "lr": float(sched.get_last_lr()[0]),
        "max_accuracy": _evaluate(supernet, supernet.maximal(), task, bn),
        "min_accuracy": _evaluate(supernet, smallest, task, bn),
        "max_macs": supernet.macs(supernet.maximal()),
        "min_macs": supernet.macs(smallest),
        "min_subnet": smallest.to_dict(),
    }
    supernet.activate(supernet.maximal())
    return row


def _log_epoch(rec: Run, row: Mapping[str, Any], epoch: int) -> None:
    for key in ("loss", "lr", "max_accuracy", "min_accuracy"):
        rec.scalar(f"train/{key}", row[key], epoch)
    rec.scalar("train/stage", row["stage"], epoch)


def _checkpoint(
    rec: Run,
    model: nn.Module,
    opt: Any,
    sched: Any,
    task: Task,
    state: TrainState,
    row: Mapping[str, Any],
    spec: ElasticSpec,
    supernet: Supernet,
    seed: int,
) -> None:
    gen = getattr(task.train_loader, "generator", None)
    meta = {
        "task": task.name,
        "seed": seed,
        "spec": spec.to_dict(),
        "search_space": supernet.search_space(),
    }
    kwargs = dict(
        model_state=model.state_dict(),
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        loader_rng=gen.get_state() if isinstance(gen, torch.Generator) else None,
        state=state,
        meta=meta,
    )
    save_checkpoint(rec.dir / "checkpoints" / LAST, **kwargs)  # type: ignore[arg-type]
    score = (row["max_accuracy"] + row["min_accuracy"]) / 2
    if score > state.best_score:
        state.best_score = score
        save_checkpoint(rec.dir / "checkpoints" / BEST, **kwargs)  # type: ignore[arg-type]


def _partial(rec: Run, task: Task, seed: int) -> Result:
    from searchq.core.assignment import Assignment

    return Result(
        "elastic",
        task.name,
        "-",
        {"kind": "macs", "target": None, "achieved": None},
        {},
        Assignment(),
        seed=seed,
        run_dir=rec.dir,
    )


def _finish(
    rec: Run,
    supernet: Supernet,
    task: Task,
    bn: list[Tensor],
    spec: ElasticSpec,
    state: TrainState,
    seed: int,
) -> Result:
    from searchq.core.assignment import Assignment

    last = spec.stages[-1]
    smallest = _stage_minimal(supernet, last, stage_dims(last, _available_dims(supernet)))
    with rec.timer("final_evaluate"):
        max_acc = _evaluate(supernet, supernet.maximal(), task, bn)
        min_acc = _evaluate(supernet, smallest, task, bn)
    supernet.activate(supernet.maximal())
    if state.history:
        rec.figure("stages", plots.stages_figure(state.history))
    metrics = {
        "accuracy": max_acc,
        "max_subnet_accuracy": max_acc,
        "min_subnet_accuracy": min_acc,
        "max_macs": float(supernet.macs(supernet.maximal())),
        "min_macs": float(supernet.macs(smallest)),
        "epochs": float(state.epoch),
    }
    return rec.finish(
        Result(
            algorithm="elastic",
            task=task.name,
            hardware="-",
            budget={"kind": "macs", "target": None, "achieved": metrics["max_macs"]},
            metrics=metrics,
            assignment=Assignment(subnet=supernet.maximal().to_dict()),
            seed=seed,
            extra={
                "search_space": supernet.search_space(),
                "trained_indicators": {
                    "width": last.width_indicator,
                    "depth": last.depth_indicator,
                    "dims": list(stage_dims(last, _available_dims(supernet))),
                },
                "min_subnet": smallest.to_dict(),
                "history": state.history,
                "checkpoint": str(rec.dir / "checkpoints" / LAST),
            },
        )
    )
