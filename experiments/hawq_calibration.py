"""How few Hessian-vector products keep HAWQ's pick? (digits ResNet-20, target trial, bits 2,4,8)

For each estimator setting (Hutch++ deflation rank, stop rule) and probe seed, estimate the
traces, make the exact allocation at ratios 1.5 and 2.5, and score the pick against a reference
pick made from long-run traces: the relative Σ Ω regret under the reference traces (0 = the
same quality of pick) and whether the bits are identical. Σ Ω is searchq's default objective:
weights plus the activations' terms (computed once, exactly — they need no probes). Times are
single-thread.

Run:  .venv/bin/python experiments/hawq_calibration.py [--seeds 5] [--reference-hvps 800]
Writes experiments/results/hawq_calibration.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from searchq.config.specs import QuantizationSpec
from searchq.core._param import original_weight
from searchq.core.allocate import Budget
from searchq.hawq.activations import activation_sensitivity
from searchq.hawq.allocate import allocate, objective
from searchq.hawq.hutchinson import estimate_traces
from searchq.hawq.search import hessian_batches
from searchq.hawq.sensitivity import quantization_noise, sensitivities
from searchq.hawq.stability import PickStability
from searchq.prepare import prepare_quantization
from searchq.tasks import get_task

RATIOS = (1.5, 2.5)
_EVERY4 = {"probes_per_graph": 4, "min_iterations": 4}
SETTINGS = [
    # (label, deflation rank, stop, pick tolerance, extra kwargs)
    ("plain, NNCF-like 200 probes", 0, "iter", 0.0, {"max_iterations": 200}),
    ("plain, pick rule 1 %", 0, "pick", 0.01, {}),
    ("rank 8, pick rule 1 %", 8, "pick", 0.01, {}),
    ("rank 16, pick rule 1 %", 16, "pick", 0.01, {}),
    ("rank 16, pick rule 2 % (default)", 16, "pick", 0.02, {}),
    ("rank 16, pick rule 2 %, checked every 4 probes", 16, "pick", 0.02, _EVERY4),
    ("rank 8, pick rule 2 %", 8, "pick", 0.02, {}),
    ("rank 8, pick rule 2 %, checked every 4 probes", 8, "pick", 0.02, _EVERY4),
    ("rank 16, pick rule 5 %", 16, "pick", 0.05, {}),
    ("rank 16, stderr 5 %", 16, "stderr", 0.0, {}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--reference-hvps", type=int, default=800)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("digits")
    setup = prepare_quantization(task, QuantizationSpec(), "trial", bits=(2, 4, 8))
    space = setup.space
    modules = dict(setup.model.named_modules())
    weights = {p.qname: original_weight(modules[p.ops[0]]) for p in space.weight_points}
    names = list(weights)
    noise = quantization_noise(space, weights)
    batches = hessian_batches(task.train_loader, 100, None)
    points = space.activation_points
    with setup.qmodel.disabled():
        acts = activation_sensitivity(
            setup.model, {p.qname: [modules[o] for o in p.ops] for p in points},
            setup.qmodel.activation_quantizers, {p.qname: p.bits for p in points}, batches,
            task.criterion,
        ).omega()  # fmt: skip

    def run(rank: int, stop: str, seed: int, ratio: float = 1.5, tol: float = 0.01, **kw: object):
        budget = Budget("bit_complexity_ratio", ratio)
        stability = PickStability(space, names, noise, budget, tolerance=tol, seed=seed, fixed=acts)
        kw = {"min_iterations": 8, **kw}
        with setup.qmodel.disabled():
            return estimate_traces(
                setup.model, list(weights.items()), batches, task.criterion,
                deflation_rank=rank, seed=seed,
                stop="stderr" if stop in ("pick", "iter") else stop,
                stderr_fraction=1e-9 if stop in ("pick", "iter") else 0.05,
                should_stop=stability if stop == "pick" else None,
                **kw,  # type: ignore[arg-type]
            )  # fmt: skip

    t0 = time.perf_counter()
    ref = run(16, "iter", 12345, max_iterations=args.reference_hvps)
    ref_s = time.perf_counter() - t0
    ref_traces = ref.as_dict()
    ref_omega = {**sensitivities(ref_traces, noise), **acts}
    ref_picks = {r: allocate(space, ref_omega, Budget("bit_complexity_ratio", r)) for r in RATIOS}

    rows = []
    for label, rank, stop, tol, kw in SETTINGS:
        stats: dict[str, list[float]] = {"hvps": [], "seconds": [], "same": []}
        for r in RATIOS:
            stats[f"regret{r}"] = []
        for seed in range(args.seeds):
            for r in RATIOS:  # the pick rule watches the budget it is run for
                t = time.perf_counter()
                est = run(rank, stop, seed, ratio=r, tol=tol, **kw)
                stats["seconds"].append(time.perf_counter() - t)
                stats["hvps"].append(est.hvps)
                omega = {**sensitivities(est.as_dict(), noise), **acts}
                pick = allocate(space, omega, Budget("bit_complexity_ratio", r)).assignment
                mine = objective(pick, ref_omega)
                best = ref_picks[r].objective
                stats[f"regret{r}"].append((mine - best) / best)
                same = dict(pick.weights) == dict(ref_picks[r].assignment.weights)
                stats["same"].append(float(same))
        rows.append((label, stats))
        print(label, {k: round(statistics.mean(v), 4) for k, v in stats.items()}, flush=True)

    lines = [
        "# HAWQ trace calibration: how few probes keep the pick",
        "",
        "Command: `.venv/bin/python experiments/hawq_calibration.py "
        f"--seeds {args.seeds} --reference-hvps {args.reference_hvps} --threads {args.threads}`",
        "",
        "digits ResNet-20 (22 quantized layers), target `trial`, bits 2/4/8, 100 data points "
        f"in one batch, {args.threads} torch thread(s). Reference: rank-16 deflation + "
        f"{ref.iterations} probes ({ref.hvps} HVPs, {ref_s:.1f} s). Regret = relative Σ Ω of the "
        "pick under the reference traces minus the reference optimum (0 = as good). Means over "
        f"{args.seeds} probe seeds; 'same pick' over both ratios.",
        "",
        "HVPs and seconds are per run (one run per seed and ratio; the pick rule watches that "
        "ratio's budget).",
        "",
        "| estimator | HVPs | traces s | regret @1.5 | regret @2.5 | max regret | same pick |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, s in rows:
        worst = max(max(s["regret1.5"]), max(s["regret2.5"]))
        lines.append(
            f"| {label} | {statistics.mean(s['hvps']):.0f} | {statistics.mean(s['seconds']):.2f} | "
            f"{statistics.mean(s['regret1.5']):.2%} | {statistics.mean(s['regret2.5']):.2%} | "
            f"{worst:.2%} | {statistics.mean(s['same']):.0%} |"
        )
    text = "\n".join(lines) + "\n"
    out = Path(__file__).with_name("results") / "hawq_calibration.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
