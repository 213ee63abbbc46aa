"""``searchq run autoq``: a DDPG agent picks bits quantizer by quantizer under a budget (HAQ).

Per episode: the agent walks the quantizers in execution order and emits an action in [0, 1]
per step (random during warm-up); actions map to each quantizer's own allowed bits; the proposal
is made feasible by the smallest change (:class:`~searchq.core.allocate.FeasibleProjection`); the
constrained assignment is evaluated (range init once, BN adaptation per assignment, accuracy on
``eval_subset_ratio`` of the validation data, cached); the reward ``0.1 · (acc − acc_fp32)``
minus a moving-average baseline goes to every step of the episode (discount 1). After warm-up
the agent makes ``updates_per_step`` updates per step (HAQ: 1).

Where the updates go (``AutoqSpec.overlap_updates``). HAQ updates after the evaluation, on the
buffer including the episode just scored; on a small model that costs a good part of the
evaluation itself (42 updates ≈ 150 ms vs ≈ 340 ms on the digits ResNet-20). With overlap (the
default) the episode's replay batches are drawn from the buffer as it was *before* the episode
and the updates run in a child process while the episode is evaluated
(:mod:`searchq.autoq._updates`); they are collected before the episode's transitions are
stored, so every episode still ends in one well-defined state. The price is a policy lag of one
episode: the actor of episode t+1 has been trained on episodes ≤ t−1. Same seed → same run
either way, and checkpoints every ``checkpoint_every`` episodes make ``resume`` continue
exactly where a run stopped.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torch.utils.data import DataLoader

from searchq._io import load_checkpoint_file, save_atomic, write_json_atomic, write_text_atomic
from searchq.autoq import plots
from searchq.autoq._updates import Updates, start_updates
from searchq.autoq.ddpg import DDPG, DDPGConfig
from searchq.autoq.env import action_for_bits, bits_from_action, plan_steps
from searchq.config.specs import AutoqSpec, QuantizationSpec
from searchq.core.allocate import Budget, FeasibleProjection
from searchq.core.assignment import Assignment
from searchq.core.cost import LatencyTable, bit_complexity_ratio, size_ratio
from searchq.core.evaluate import AccuracyEvaluator
from searchq.core.hardware import HardwareSpec, load_hardware
from searchq.errors import CheckpointError, ConfigError
from searchq.prepare import prepare_quantization
from searchq.report.plots import bits_figure
from searchq.report.show import layer_rows
from searchq.runner import Result, Run, default_run_dir
from searchq.tasks.base import Task

__all__ = ["search"]

CHECKPOINT_VERSION = 1
_CKPT, _RNG = "autoq.pt", "autoq_rng.json"


@dataclass
class _History:
    rows: list[dict[str, Any]] = field(default_factory=list)
    best_reward: float = -float("inf")
    best: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        return {"rows": self.rows, "best_reward": self.best_reward, "best": self.best}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _History:
        return cls(list(state["rows"]), float(state["best_reward"]), state["best"])


def _budget(
    spec: AutoqSpec,
    ratio: float | None,
    bops_ratio: float | None,
    latency_table: str | Path | LatencyTable | None,
    latency_ms: float | None,
) -> Budget:
    options = (("ratio", ratio), ("bops_ratio", bops_ratio), ("latency_ms", latency_ms))
    given = [n for n, v in options if v is not None]
    if len(given) > 1:
        raise ConfigError(f"give one budget, not {given}: --ratio, --bops-ratio or --latency-ms")
    if latency_ms is not None:
        if latency_table is None:
            raise ConfigError("--latency-ms needs --latency-table FILE")
        table = (
            latency_table
            if isinstance(latency_table, LatencyTable)
            else LatencyTable.load(latency_table)
        )
        return Budget("latency_ms", latency_ms, table)
    if bops_ratio is not None:
        return Budget("bit_complexity_ratio", bops_ratio)
    return Budget("size_ratio", ratio if ratio is not None else spec.compression_ratio)


def search(
    model: nn.Module | Task,
    data: DataLoader | None = None,
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    ratio: float | None = None,
    bops_ratio: float | None = None,
    latency_table: str | Path | LatencyTable | None = None,
    latency_ms: float | None = None,
    episodes: int | None = None,
    warmup: int | None = None,
    bits: Sequence[int] | None = None,
    hw: str | HardwareSpec = "trial",
    spec: AutoqSpec | None = None,
    quantization: QuantizationSpec | None = None,
    agent: DDPGConfig | None = None,
    val_data: DataLoader | None = None,
    evaluator: Callable[[nn.Module], Mapping[str, float]] | None = None,
    weights_only: bool = False,
    checkpoint_every: int = 5,
    resume: str | Path | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    resolved_config: Mapping[str, Any] | None = None,
    name: str | None = None,
    stop_after: int | None = None,
) -> Result:
    """Search bits with the DDPG agent; ``ratio`` is the model-size ratio vs FP32 (NNCF's AutoQ
    ``compression_ratio``, default 0.15), ``bops_ratio`` a bit-complexity ratio, ``latency_ms``
    with ``latency_table`` a latency bound. ``resume`` is a run directory to continue.
    ``stop_after`` ends the run early after that many episodes (for tests of resuming)."""
    spec = spec or AutoqSpec()
    if episodes is not None or warmup is not None:
        spec = replace(
            spec,
            iter_number=episodes if episodes is not None else spec.iter_number,
            warmup_iter_number=warmup if warmup is not None else spec.warmup_iter_number,
        )
    if resume is not None:
        out = resume
        if not (Path(resume) / "checkpoints" / _CKPT).exists():
            raise CheckpointError(
                f"{resume}: no AutoQ checkpoint to resume (checkpoints/{_CKPT} is missing); "
                "start a new run"
            )
    qspec = quantization or QuantizationSpec()
    hardware = load_hardware(hw) if isinstance(hw, str) else hw
    if isinstance(model, Task):
        task = model
    else:
        if data is None:
            raise ConfigError("autoq.search(model, data, ...) needs data (the train DataLoader)")
        task = Task(
            model,
            data,
            val_data if val_data is not None else data,
            criterion,
            evaluator,
            name=name or "custom",
        )
    budget = _budget(spec, ratio, bops_ratio, latency_table, latency_ms)
    search_bits = tuple(sorted(set(bits))) if bits is not None else _default_bits(spec, hardware)
    run_dir = Path(out) if out is not None else default_run_dir("autoq", task.name)
    resolved = {
        **(resolved_config or {}),
        "autoq": {
            **spec.to_dict(),
            "bits": list(search_bits),
            "budget": {"kind": budget.kind, "target": budget.target},
        },
    }
    rec = Run(
        run_dir,
        algorithm="autoq",
        task=task.name,
        hardware=hardware.name,
        seed=seed,
        config=resolved,
        progress=progress,
    )
    with rec.timer("prepare"):
        setup = prepare_quantization(
            task, qspec, hardware, bits=search_bits, weights_only=weights_only
        )
    space, graph = setup.space, setup.graph
    projection = FeasibleProjection(space, budget)
    projection(space.minimal())  # unreachable budget: error up front
    assert task.evaluator is not None
    search_eval = (
        AccuracyEvaluator(task.val_loader, subset_ratio=spec.eval_subset_ratio)
        if spec.eval_subset_ratio < 1.0
        else task.evaluator
    )
    setup.evaluation.evaluator = search_eval
    fp32_subset = setup.evaluation.float_metrics()["accuracy"]
    plan = plan_steps(graph, space)
    steps = len(plan)
    config = agent or DDPGConfig()
    if config.buffer_size is None:  # room for every warm-up transition and more
        config = replace(config, buffer_size=max(64, max(spec.warmup_iter_number, 1) * steps * 4))
    ddpg = DDPG(plan.state_dim, config, seed=seed)
    updates = max(1, math.ceil(config.updates_per_step * steps))
    history = _History()
    start = 0
    if resume is not None:
        start, history = _load_checkpoint(rec.dir, ddpg)
    end = spec.iter_number if stop_after is None else min(spec.iter_number, stop_after)
    episodes_iter = rec.progress(range(start, end), desc="autoq episodes", total=end - start)
    with ExitStack() as stack, rec.timer("episodes"):
        worker: Updates | None = None
        if spec.overlap_updates and start < end:
            worker = start_updates(ddpg)
            stack.callback(worker.close)
        for episode in episodes_iter:
            with rec.timer("agent"):
                warm = episode < spec.warmup_iter_number
                states, actions, prev = [], [], 0.0
                for t in range(steps):
                    state = plan.state(t, prev)
                    action = ddpg.random_action() if warm else ddpg.act(state)
                    states.append(state)
                    actions.append(action)
                    prev = action
                raw_bits = [
                    bits_from_action(a, s.point.bits)
                    for a, s in zip(actions, plan.steps, strict=True)
                ]
                raw = plan.assignment(raw_bits)
                constrained, changed = projection(raw)
                checkpoint = (episode + 1) % checkpoint_every == 0 or episode + 1 == end
                overlapped = None if warm else worker
                if overlapped is not None:  # on the buffer up to the last episode
                    overlapped.submit(ddpg.sample_batches(updates), want_state=checkpoint)
            with rec.timer("evaluate"):
                accuracy = setup.evaluation(constrained)["accuracy"]
            with rec.timer("agent"):
                losses: dict[str, float] = {}
                if overlapped is not None:
                    losses, seconds = overlapped.result()
                    rec.timings["agent_worker_s"] = rec.timings.get("agent_worker_s", 0) + seconds
                reward = 0.1 * (accuracy - fp32_subset)
                advantage = ddpg.shaped(reward)
                done_bits = [constrained.bits[s.point.qname] for s in plan.steps]
                executed = [
                    action_for_bits(b, s.point.bits)
                    for b, s in zip(done_bits, plan.steps, strict=True)
                ]
                for t in range(steps):
                    nxt = states[t + 1] if t + 1 < steps else states[t]
                    ddpg.buffer.add(states[t], executed[t], advantage, nxt, t == steps - 1)
                if worker is None and not warm:  # HAQ's order: on the buffer with this episode
                    losses = ddpg.train(ddpg.sample_batches(updates))
                ddpg.end_episode(warm)
            row = _row(
                episode, warm, reward, accuracy, raw, constrained, changed, graph, ddpg.sigma
            )
            history.rows.append(row)
            if reward > history.best_reward:
                history.best_reward = reward
                history.best = {
                    "episode": episode,
                    "accuracy": accuracy,
                    "assignment": constrained.to_dict(),
                }
            _log(rec, row, losses, history)
            if checkpoint:
                _save_checkpoint(rec.dir, episode + 1, ddpg, history)
    _write_policies(rec.dir / "policies.csv", history.rows)
    search_evaluations = setup.evaluation.evaluations
    if end < spec.iter_number:  # stopped early on purpose (tests of resuming)
        rec.close()
        return Result(
            "autoq",
            task.name,
            hardware.name,
            {"kind": budget.kind, "target": budget.target, "achieved": float("nan")},
            {},
            Assignment(),
            seed=seed,
            run_dir=rec.dir,
        )
    return _finish(rec, setup, task, budget, history, spec, seed, search_evaluations)


def _default_bits(spec: AutoqSpec, hardware: HardwareSpec) -> tuple[int, ...]:
    if "bits" in spec.explicit_keys or hardware.name == "trial":
        return tuple(spec.bits)
    return hardware.all_bits()


def _row(
    episode: int,
    warm: bool,
    reward: float,
    accuracy: float,
    raw: Assignment,
    constrained: Assignment,
    changed: bool,
    graph: Any,
    sigma: float,
) -> dict[str, Any]:
    return {
        "episode": episode,
        "warmup": warm,
        "reward": reward,
        "accuracy": accuracy,
        "size_ratio": size_ratio(graph, constrained),
        "bops_ratio": bit_complexity_ratio(graph, constrained),
        "raw_size_ratio": size_ratio(graph, raw),
        "raw_bops_ratio": bit_complexity_ratio(graph, raw),
        "constrained": changed,
        "sigma": sigma,
        "raw_policy": " ".join(str(raw.bits[q]) for q in raw.bits),
        "policy": " ".join(str(constrained.bits[q]) for q in raw.bits),
    }


def _log(rec: Run, row: Mapping[str, Any], losses: Mapping[str, float], history: _History) -> None:
    e = int(row["episode"])
    rec.scalar("search/reward", row["reward"], e)
    rec.scalar("search/reward_best", history.best_reward, e)
    rec.scalar("search/accuracy", row["accuracy"], e)
    rec.scalar("search/size_ratio", row["size_ratio"], e)
    rec.scalar("search/bops_ratio", row["bops_ratio"], e)
    rec.scalar("agent/sigma", row["sigma"], e)
    for k, v in losses.items():
        rec.scalar(f"agent/{k}", v, e)


def _save_checkpoint(run_dir: Path, next_episode: int, ddpg: DDPG, history: _History) -> None:
    folder = run_dir / "checkpoints"
    state = {
        "schema_version": CHECKPOINT_VERSION,
        "episode": next_episode,
        "agent": ddpg.state_dict(),
        "history": json.dumps(history.to_state()),
    }
    save_atomic(folder / _CKPT, state)
    write_json_atomic(folder / _RNG, ddpg.rng.bit_generator.state)


def _load_checkpoint(run_dir: Path, ddpg: DDPG) -> tuple[int, _History]:
    path = run_dir / "checkpoints" / _CKPT
    if not path.exists():
        raise CheckpointError(
            f"{run_dir}: no AutoQ checkpoint to resume ({path} is missing); start a new run"
        )
    state = load_checkpoint_file(path, version=CHECKPOINT_VERSION, fix="start a new run")
    rng_path = run_dir / "checkpoints" / _RNG
    try:
        rng_state = json.loads(rng_path.read_text())
    except (OSError, ValueError) as exc:  # a corrupt file is one line, not a traceback
        raise CheckpointError(
            f"{rng_path}: cannot read the RNG state ({type(exc).__name__}: {exc}); start a new run"
        ) from None
    ddpg.load_state_dict(state["agent"], rng_state)
    return int(state["episode"]), _History.from_state(json.loads(state["history"]))


def _write_policies(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _finish(
    rec: Run,
    setup: Any,
    task: Task,
    budget: Budget,
    history: _History,
    spec: AutoqSpec,
    seed: int,
    search_evaluations: int,
) -> Result:
    assert history.best is not None and task.evaluator is not None
    best = Assignment.from_dict(history.best["assignment"])
    setup.evaluation.evaluator = task.evaluator
    setup.evaluation.cache.clear()
    with rec.timer("final_evaluate"):
        metrics = setup.evaluation(best)
        uniform8 = (
            setup.evaluation(setup.space.uniform(8)).get("accuracy")
            if all(8 in p.bits for p in setup.space.points)
            else None
        )
    setup.evaluation.activate(best)
    cost = setup.cost.summary(best)
    achieved = {
        "size_ratio": cost["size_ratio"],
        "bit_complexity_ratio": cost["bit_complexity_ratio"],
        "latency_ms": budget.latency.latency(setup.graph, best) if budget.latency else None,
    }[budget.kind]
    result_metrics = {
        "accuracy": metrics["accuracy"],
        "fp32_accuracy": setup.fp32_metrics.get("accuracy", float("nan")),
        **({"uniform8_accuracy": uniform8} if uniform8 is not None else {}),
        "search_accuracy": history.best["accuracy"],
        **cost,
        **{k: v for k, v in metrics.items() if k != "accuracy"},
    }
    rows = layer_rows(setup.graph, best)
    rec.text("search/best_policy", "\n".join(f"{k}: {v}" for k, v in best.bits.items()))
    rec.figure("reward", plots.reward_figure(history.rows))
    rec.figure("bits", bits_figure(rows, title=f"AutoQ bits — {task.name}"))
    episodes = len(history.rows)
    result = Result(
        algorithm="autoq",
        task=task.name,
        hardware=setup.space.hardware.name,
        budget={"kind": budget.kind, "target": budget.target, "achieved": achieved},
        metrics=result_metrics,
        assignment=best,
        seed=seed,
        layers=rows,
        extra={
            "episodes": episodes,
            "warmup": spec.warmup_iter_number,
            "best_episode": history.best["episode"],
            "evaluations": search_evaluations,  # distinct assignments scored while searching
            "constrained_episodes": sum(1 for r in history.rows if r["constrained"]),
            "graph_notes": setup.notes,
        },
    )
    result.handle = setup.qmodel
    return rec.finish(result)
