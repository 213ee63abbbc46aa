"""How often the width stage should train the maximal subnet: accuracy and cost over many seeds.

``max_subnet_every`` 0 (searchq's default: min + random per step, the original net teaches,
as in Once-for-All), 1 (BigNAS: max + min + random per step, in-place distillation) and 2 (the
maximal subnet every other step), on the schedule of experiments/elastic.py (digits ResNet-20,
3 stages / 7 epochs, widths 1 / .75 / .5 + depth). Per seed: the minimal / middle / maximal
subnets after BN recalibration vs the same architectures trained alone for 7 epochs (the
functions of experiments/elastic.py), and the training cost as mean epoch seconds over the mean
epoch of plain SGD on the full net, timed in the same process. 3-seed benchmarks are too noisy
to choose a default (per-seed std ~0.8 point), hence 16 seeds and paired differences.

Run:  .venv/bin/python experiments/elastic_sweep.py [--seeds 0-15] [--jobs 2]
Writes experiments/results/elastic_sweep.md and the raw rows as elastic_sweep.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import statistics as st
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"0 (default)": 0, "1 (BigNAS)": 1, "2": 2}
SUBNETS = ("min", "middle", "max")


def _bench():  # noqa: ANN202
    path = REPO / "experiments" / "elastic.py"
    spec = importlib.util.spec_from_file_location("elastic_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_seed(seed: int) -> dict:
    torch.set_num_threads(1)
    eb = _bench()
    eb.VARIANTS.update({name: {"max_subnet_every": n} for name, n in VARIANTS.items()})
    eb.plain_steps(seed, epochs=1)  # warm-up: a process's first epoch is slower
    plain = eb.plain_steps(seed)
    plain_epoch = st.mean(s for s, _ in plain["epochs"])
    row: dict = {"seed": seed, "plain_epoch_s": plain_epoch, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="elastic_sweep_") as tmp:
        for name in VARIANTS:
            r = eb.run_searchq(seed, name, eb.STAGES, Path(tmp))
            epochs = [s for s, _ in r["epochs"]]
            row["runs"][name] = {
                "acc": {k: r["subnets"][k]["accuracy"] for k in SUBNETS},
                "loss": {k: r["subnets"][k]["loss"] for k in SUBNETS},
                "epoch_s": epochs,
                "cost": st.mean(epochs) / plain_epoch,
            }
            if name == "0 (default)":
                supernet, configs = r["supernet"], r["configs"]
        alone = {k: eb.run_standalone(seed, supernet, configs[k], 7) for k in SUBNETS}
        row["standalone"] = {k: alone[k]["accuracy"] for k in SUBNETS}
        row["standalone_loss"] = {k: alone[k]["loss"] for k in SUBNETS}
    print(f"seed {seed} done", flush=True)
    return row


def ms(xs, fmt: str) -> str:
    xs = list(xs)
    return f"{st.mean(xs):{fmt}} ± {st.stdev(xs):.2f}" if len(xs) > 1 else format(xs[0], fmt)


def se(xs, fmt: str) -> str:
    """mean ± standard error, both in ``fmt`` (the error without a sign)."""
    xs = list(xs)
    return f"{st.mean(xs):{fmt}} ± {st.stdev(xs) / math.sqrt(len(xs)):{fmt.lstrip('+')}}"


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows] + [""]


def report(rows: list[dict], cmd: str, minutes: float, jobs: int) -> list[str]:
    seeds = [r["seed"] for r in rows]
    gap = {
        (v, k): [r["runs"][v]["acc"][k] - r["standalone"][k] for r in rows]
        for v in VARIANTS
        for k in SUBNETS
    }
    lines = [
        "# Width stage: how often to train the maximal subnet (digits ResNet-20)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')}, {minutes:.1f} min, {jobs} worker process(es) "
        "with 1 torch thread each on 2 cores; seeds "
        f"{seeds[0]}–{seeds[-1]}. Schedule and subnets as experiments/elastic.py (depth d=1 2 "
        "ep, depth d=2 2 ep, depth + width 3 ep; lr 0.15). Gap = supernet subnet (BN "
        "recalibrated) − the same architecture trained alone for 7 epochs, accuracy points on "
        "360 images (1 image = 0.28). Cost = mean supernet epoch / mean plain SGD epoch of the "
        "full net in the same process (the other worker shares the machine).",
        "",
        "## Mean over seeds",
        "",
        "Gaps: mean ± standard error; cost: mean ± std; worst 3-seed group: the lowest mean middle "
        "gap among the disjoint groups of 3 consecutive seeds (a 3-seed benchmark's view).",
        "",
    ]
    body = []
    for v in VARIANTS:
        groups = [st.mean(gap[v, "middle"][i : i + 3]) for i in range(0, len(rows) - 2, 3)]
        body.append(
            [
                f"`max_subnet_every` {v}",
                *(se(gap[v, k], "+.2f") for k in SUBNETS),
                f"{ms((r['runs'][v]['cost'] for r in rows), '.2f')}×",
                f"{min(groups):+.2f}" if groups else "–",
            ]
        )
    lines += table(["width stage", *(f"{k} gap" for k in SUBNETS), "cost", "worst group"], body)
    loss = {
        (v, k): [r["runs"][v]["loss"][k] - r["standalone_loss"][k] for r in rows]
        for v in VARIANTS
        for k in SUBNETS
    }
    lines += [
        "Validation cross-entropy, supernet subnet − standalone (lower is better; a finer "
        "measure than accuracy on 360 images), mean ± standard error:",
        "",
    ]
    lines += table(
        ["width stage", *(f"{k} Δloss" for k in SUBNETS)],
        [[f"`max_subnet_every` {v}", *(se(loss[v, k], "+.4f") for k in SUBNETS)] for v in VARIANTS],
    )
    lines += ["## Paired differences vs the default (same seeds)", ""]
    body = []
    base = "0 (default)"
    for v in VARIANTS:
        if v == base:
            continue
        diffs = [
            se([a - b for a, b in zip(gap[v, k], gap[base, k], strict=True)], "+.2f")
            for k in SUBNETS
        ]
        ldiffs = [
            se([a - b for a, b in zip(loss[v, k], loss[base, k], strict=True)], "+.4f")
            for k in SUBNETS
        ]
        cost = [r["runs"][v]["cost"] / r["runs"][base]["cost"] for r in rows]
        body.append([f"{v} − default", *diffs, *ldiffs, f"{st.mean(cost):.2f}×"])
    lines += table(
        ["", *(f"{k} acc" for k in SUBNETS), *(f"{k} loss" for k in SUBNETS), "cost / default's"],
        body,
    )
    lines += ["## Per seed", ""]
    body = [
        [r["seed"], v, *(f"{r['runs'][v]['acc'][k] - r['standalone'][k]:+.2f}" for k in SUBNETS),
         f"{r['runs'][v]['cost']:.2f}"]
        for r in rows for v in VARIANTS
    ]  # fmt: skip
    lines += table(["seed", "width stage", *(f"{k} gap" for k in SUBNETS), "cost"], body)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-15", help="a range a-b or a comma-separated list")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "elastic_sweep.md"))
    args = ap.parse_args()
    if "-" in args.seeds:
        lo, hi = (int(x) for x in args.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        rows = sorted(pool.map(run_seed, seeds, chunksize=1), key=lambda r: r["seed"])
    cmd = " ".join([".venv/bin/python", "experiments/elastic_sweep.py", *sys.argv[1:]])
    lines = report(rows, cmd, (time.perf_counter() - start) / 60, args.jobs)
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
