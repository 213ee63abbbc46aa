"""searchq elastic supernet (progressive shrinking) vs standalone training vs NNCF BootstrapNAS.

digits ResNet-20, widths (1, .75, .5) + automatic depth blocks, 3 stages / 7 epochs. Per seed:
``elastic.train_supernet`` (defaults, plus BigNAS width stage, 1 subnet/step and no-KD
variants), its minimal / middle / maximal subnets after a full BN recalibration, the same
architectures trained from scratch for 7 epochs (built-in recipe), NNCF 2.19.0 BootstrapNAS
(experiments/nncf/run_nncf_bootstrapnas.py, NNCF venv). Step time = wall time between
consecutive optimizer steps vs plain SGD steps of the full net timed just before. 1 torch
thread; runs interleaved, 1-min load average at each start.

Run:  .venv/bin/python experiments/elastic.py [--seeds 0,1,2] [--quick] [--no-nncf]
Writes experiments/results/elastic.md (NNCF's JSON reports and logs: experiments/nncf/out/bench/).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import statistics as st
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from searchq import elastic
from searchq.core.bn import adapt_batchnorm
from searchq.core.pipeline import take_samples
from searchq.elastic.export import load_supernet
from searchq.elastic.space import SubnetConfig
from searchq.elastic.spec import DEFAULT_LR
from searchq.tasks import get_task
from searchq.tasks.digits import digits_loaders
from searchq.tasks.models import init_weights
from searchq.tasks.train import TrainRecipe, fit

REPO = Path(__file__).resolve().parents[1]
NNCF_DIR = REPO / "experiments" / "nncf"
NNCF_PY = Path(os.environ.get("NNCF_VENV", "/work/nncf-venv")) / "bin" / "python"
TRAIN_MOD = importlib.import_module("searchq.elastic.train")
STAGES = (
    elastic.StageSpec(("depth",), 2, depth_indicator=1),
    elastic.StageSpec(("depth",), 2, depth_indicator=2),
    elastic.StageSpec(("depth", "width"), 3, depth_indicator=2, width_indicator=3,
                      reorg_weights=True, bn_adapt=True),
)  # fmt: skip
VARIANTS = {"default": {}, "BigNAS width stage": {"max_subnet_every": 1},
            "1 subnet/step": {"subnets_per_step": 1},
            "no KD": {"distillation": "none"}}  # fmt: skip
NO_NNCF = False
TIMED, SUBNETS, MET = (*VARIANTS, "NNCF"), ("min", "middle", "max"), ("NOT met", "met")


class AccuracyAndLoss:
    """Top-1 % (first, as searchq expects) and mean cross-entropy on the validation loader."""

    def __init__(self, loader) -> None:
        self.loader = loader

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        out, y = (torch.cat(t) for t in zip(*((model(x), y) for x, y in self.loader), strict=True))
        model.train(was_training)
        acc = 100.0 * int((out.argmax(1) == y).sum()) / len(y)
        return {"accuracy": acc, "loss": float(nn.functional.cross_entropy(out, y))}


class StepClock:
    """Seconds between consecutive optimizer steps, and (seconds, steps) of every epoch."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.epochs: list[tuple[float, int]] = []
        self.last = time.perf_counter()

    def __call__(self, *_: object) -> None:
        now = time.perf_counter()
        self.steps.append(now - self.last)
        self.last = now

    @contextmanager
    def epoch(self):
        n0, t0 = len(self.steps), time.perf_counter()
        self.last = t0
        yield
        self.epochs.append((time.perf_counter() - t0, len(self.steps) - n0))


@contextmanager
def clocked(clock: StepClock):
    """Time every optimizer step, and every ``_train_epoch`` call of ``train_supernet``."""
    orig = TRAIN_MOD._train_epoch

    def timed(*args, **kwargs):
        with clock.epoch():
            return orig(*args, **kwargs)

    TRAIN_MOD._train_epoch, handle = timed, register_optimizer_step_post_hook(clock)
    try:
        yield clock
    finally:
        TRAIN_MOD._train_epoch = orig
        handle.remove()


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def plain_steps(seed: int, epochs: int = 2) -> dict:
    """Plain SGD (searchq's elastic optimizer settings) on the full trained net, same loader."""
    task, load = get_task("digits", seed=seed), load1()
    model = copy.deepcopy(task.model).train()
    opt = torch.optim.SGD(model.parameters(), lr=DEFAULT_LR, momentum=0.9, nesterov=True,
                          weight_decay=5e-5)  # fmt: skip
    with clocked(StepClock()) as clock:
        for _ in range(epochs):
            with clock.epoch():
                for x, y in task.train_loader:
                    opt.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
    return {"load": load, "steps": clock.steps, "epochs": clock.epochs}


def middle_config(space) -> SubnetConfig:
    """Width 0.75 in every group (int(w·0.75) down to a multiple of 8, >= the group's minimum:
    16 → 8, 32 → 24, 64 → 48) and the last block of each stage skipped."""
    cfg = space.maximal()
    for key, g in space.widths.items():
        w = int(g.max * 0.75)
        cfg.width[key] = max(w - w % 8, g.choices[-1])
        assert cfg.width[key] in g.choices, (key, cfg.width[key], g.choices)
    cfg.depth = [b.name for b in space.blocks.values() if b.position == 0]
    return cfg


def run_searchq(seed: int, variant: str, stages, work: Path) -> dict:
    options = dict(VARIANTS[variant])
    if "init_lr" in options:  # a stage setting: every stage
        lr = options.pop("init_lr")
        stages = tuple(replace(s, init_lr=lr) for s in stages)
    spec = elastic.ElasticSpec(stages=stages, width_multipliers=(1.0, 0.75, 0.5),
                               **options)  # fmt: skip
    task, load = get_task("digits", seed=seed), load1()
    with clocked(StepClock()) as clock:
        res = elastic.train_supernet(task, spec, out=work / f"s{seed}_{variant}", progress=False,
                                     seed=seed)  # fmt: skip
    supernet, _, _ = load_supernet(res.run_dir)
    fresh = get_task("digits", seed=seed)  # untouched loader: the samples train() adapted on
    bn = take_samples(fresh.train_loader, 2000)
    evaluator = AccuracyAndLoss(fresh.val_loader)
    configs = {"min": SubnetConfig.from_dict(res.extra["min_subnet"]),
               "middle": middle_config(supernet.space), "max": supernet.maximal()}  # fmt: skip
    subnets = {}
    for name, cfg in configs.items():
        supernet.activate(cfg)
        adapt_batchnorm(supernet.model, bn, sum(int(x.shape[0]) for x in bn))
        subnets[name] = {**evaluator(supernet.model), "macs": supernet.macs(cfg)}
    for name in ("min", "max"):  # the run's own final evaluation must agree
        if subnets[name]["accuracy"] != res.metrics[f"{name}_subnet_accuracy"]:
            print(f"WARNING seed {seed} {variant}: {name} subnet re-evaluates differently")
    return {"load": load, "steps": clock.steps, "epochs": clock.epochs, "subnets": subnets,
            "supernet": supernet, "configs": configs}  # fmt: skip


def run_standalone(seed: int, supernet, cfg: SubnetConfig, epochs: int) -> dict:
    """The subnet's architecture, re-initialised and trained like the built-in tasks."""
    init_seed, shuffle_seed = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    gen = torch.Generator().manual_seed(int(init_seed))
    model = init_weights(supernet.extract(cfg), generator=gen)
    train_loader, val_loader = digits_loaders(seed=int(shuffle_seed), train_batch_size=64)
    fit(model, train_loader, TrainRecipe(epochs=epochs), progress=False)
    return AccuracyAndLoss(val_loader)(model)


def run_nncf(seed: int, stage_epochs: str) -> dict:
    out = NNCF_DIR / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    task_file = NNCF_DIR / "out" / f"digits_task_s{seed}.pt"
    if not task_file.exists():
        export = [sys.executable, str(NNCF_DIR / "export_task.py"), "--seed", str(seed)]
        subprocess.run([*export, "--out", str(task_file)], check=True, cwd=REPO)
    report = out / f"bootstrapnas_s{seed}.json"
    cmd = [str(NNCF_PY), str(NNCF_DIR / "run_nncf_bootstrapnas.py"), "--task-file", str(task_file),
           "--seed", str(seed), "--stage-epochs", stage_epochs, "--lr", str(DEFAULT_LR),
           "--min-width", "8", "--threads", "1", "--out", str(report)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "NNCF_TORCH_LEGACY_TRACING": "1"}
    with open(out / f"bootstrapnas_s{seed}.log", "w") as log:
        subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    j = json.loads(report.read_text())
    return {"load": j["machine_before"]["loadavg"][0], "steps": j["step_seconds"],
            "epochs": [(e["seconds"], e["steps"]) for e in j["epochs"]],
            "plain": {"steps": j["plain"]["step_seconds"], "epochs": j["plain"]["epochs"],
                      "load": j["machine_before"]["loadavg"][0]},
            "subnets": j["recalibrated"], "reported": j["nncf_reported"]}  # fmt: skip


def no_nncf(stage_epochs) -> dict:
    """Placeholder for ``--no-nncf``: every NNCF number is nan."""
    nan, n = float("nan"), sum(stage_epochs)
    sub = {"accuracy": nan, "loss": nan, "macs": nan}
    return {"load": nan, "steps": [nan] * n, "epochs": [(nan, 1)] * n,
            "plain": {"steps": [1.0], "epochs": [(1.0, 1)], "load": nan},
            "subnets": {k: dict(sub) for k in SUBNETS}, "reported": {}}  # fmt: skip


def ms(xs, fmt: str) -> str:
    """mean ± sample std (the value alone for one seed)."""
    xs = list(xs)
    return format(xs[0], fmt) if len(xs) < 2 else f"{st.mean(xs):{fmt}} ± {st.stdev(xs):.2g}"


def table(title: str, note: str, header: list[str], rows: list[list]) -> list[str]:
    lines = [f"## {title}", "", *([note, ""] if note else [])]
    lines += ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows] + [""]


def timing(run: dict, plain: dict, stage_epochs) -> dict:
    """Median step ratio (overall and per stage) and mean-epoch ratio vs the plain reference."""
    p = st.median(plain["steps"])
    bounds = np.cumsum(stage_epochs)
    stage = [int(np.searchsorted(bounds, e, side="right"))
             for e, (_, n) in enumerate(run["epochs"]) for _ in range(n)]  # fmt: skip
    per_stage = [st.median(t for t, s in zip(run["steps"], stage, strict=True) if s == i) / p
                 for i in range(len(stage_epochs))]  # fmt: skip
    epoch = st.mean(s for s, _ in run["epochs"]) / st.mean(s for s, _ in plain["epochs"])
    return {"plain_ms": 1e3 * p, "step_ms": 1e3 * st.median(run["steps"]),
            "ratio": st.median(run["steps"]) / p, "stages": per_stage, "epoch": epoch,
            "load": run["load"], "plain_load": plain["load"]}  # fmt: skip


def report(seeds, res, stage_epochs, epochs) -> list[str]:
    runs, sq, sa, nc = [*VARIANTS, "standalone", "NNCF"], "default", "standalone", "NNCF"
    acc = {(s, r, n): res[s][r]["subnets"][n] for s in seeds for r in runs for n in SUBNETS}
    rows = []
    for n in SUBNETS:
        cells = [n, f"{res[seeds[0]][sq]['subnets'][n]['macs'] / 1e6:.3f}"]
        for r in (sq, sa, nc):
            xs = [acc[s, r, n] for s in seeds]
            cells += [ms((x["accuracy"] for x in xs), ".2f"), ms((x["loss"] for x in xs), ".3f")]
        gap = [acc[s, sq, n]["accuracy"] - acc[s, sa, n]["accuracy"] for s in seeds]
        rep = [res[s][nc]["reported"].get(n) for s in seeds]
        reported = "–" if rep[0] is None else ms((r["accuracy"] for r in rep), ".2f")
        rows.append([*cells, ms(gap, "+.2f"), reported])
    fp = [res[s]["fp32"] for s in seeds]
    out = table(f"(a) subnet accuracy after {epochs} epochs, mean ± std over seeds {seeds}",
        "Accuracy % / val loss on 360 images (1 image = 0.28 points). Supernets (searchq, NNCF): "
        "BN fully recalibrated (reset, cumulative average over 2,000 requested = all 1,437 train "
        f"images); standalone: trained from scratch with `TrainRecipe(epochs={epochs})` (BN as "
        "trained). The supernets start from the trained task model (10 epochs: "
        f"{ms((x['accuracy'] for x in fp), '.2f')} % / {ms((x['loss'] for x in fp), '.3f')}), "
        "the standalone nets from random weights. Last column: what NNCF's training loop "
        "reports in its last epoch, after its own BN adaptation (23 batches at momentum 0.1 on "
        "top of the old statistics).",
        ["subnet", "M MACs", "searchq acc", "loss", "standalone acc", "loss", "NNCF acc", "loss",
         "searchq − standalone", "NNCF as reported"], rows)  # fmt: skip
    rows = [[r, *(f"{ms((acc[s, r, n]['accuracy'] for s in seeds), '.2f')} / "
                  f"{ms((acc[s, r, n]['loss'] for s in seeds), '.3f')}" for n in SUBNETS)]
            for r in runs]  # fmt: skip
    out += table("(a') every run, mean over seeds: accuracy % / val loss",
                 "BigNAS width stage (`max_subnet_every` 1: max + min + random in every "
                 "width-stage step, the maximal subnet teaching in place), 1 subnet/step (cycle "
                 "max → min → random in every stage), no KD: searchq defaults with that one "
                 "setting changed (BN recalibrated).",
                 ["run", *SUBNETS], rows)  # fmt: skip
    rows = [[s, r, *(f"{acc[s, r, n]['accuracy']:.2f} / {acc[s, r, n]['loss']:.3f}"
                     for n in SUBNETS)] for s in seeds for r in runs]  # fmt: skip
    out += table("(a'') per seed", "", ["seed", "run", *SUBNETS], rows)
    tim, rows = {(s, w): res[s]["timing"][w] for s in seeds for w in TIMED}, []
    for w in TIMED:
        xs = [tim[s, w] for s in seeds]
        rows.append([w, *(ms((x[k] for x in xs), ".1f") for k in ("plain_ms", "step_ms")),
                     f"**{ms((x['ratio'] for x in xs), '.2f')}×**",
                     *(ms((x["stages"][i] for x in xs), ".2f") for i in range(len(stage_epochs))),
                     ms((x["epoch"] for x in xs), ".2f")])  # fmt: skip
    out += table("(b) cost of progressive shrinking vs plain training of the full net",
        "Median wall ms per optimizer step (step to step: data, teacher forward, every subnet's "
        "forward + backward, update) over all steps of the schedule, and of plain SGD steps of "
        "the full network on the same batches (batch 64, 1 thread). Step ratio = median / "
        "median, also per stage; epoch ratio = mean training-loop seconds per epoch (validation "
        "excluded) / mean plain epoch. NNCF: one random subnet per step, no KD; its plain steps "
        "are timed in the NNCF process (2 epochs before and 2 after training).",
        ["run", "plain ms", "step ms", "step ratio",
         *(f"stage {i + 1}" for i in range(len(stage_epochs))), "epoch ratio"], rows)  # fmt: skip
    rows = [[s, w, f"{tim[s, w]['ratio']:.2f}", f"{tim[s, w]['epoch']:.2f}",
             f"{tim[s, w]['plain_load']:.2f}", f"{tim[s, w]['load']:.2f}"]
            for s in seeds for w in TIMED]  # fmt: skip
    out += table("(b') per run", "Runs of a seed in this order, reversed on odd seeds; 1-min load "
                 "average at the start of the plain and of the elastic run.", ["seed", "run",
                 "step ratio", "epoch ratio", "load (plain)", "load (run)"], rows)  # fmt: skip
    r = {w: st.mean(tim[s, w]["ratio"] for s in seeds) for w in TIMED}
    e = {w: st.mean(tim[s, w]["epoch"] for s in seeds) for w in TIMED}
    lines = [
        "## (c) targets (from the issue)",
        "",
        f"- progressive-shrinking step ≤ 1.3× a plain step, read both as the median step "
        f"and as the mean (whole schedule / plain training time), searchq defaults: "
        f"**{MET[max(r[sq], e[sq]) <= 1.3]}** (median {r[sq]:.2f}×, whole schedule "
        f"{e[sq]:.2f}×; median / whole: "
        + ", ".join(f"{w} {r[w]:.2f}× / {e[w]:.2f}×" for w in TIMED if w != sq)
        + ").",
    ]
    for n in SUBNETS:
        a = {k: st.mean(acc[s, k, n]["accuracy"] for s in seeds) for k in (sq, sa, nc)}
        lines.append(
            f"- {n} subnet within 1 point of standalone: **{MET[a[sq] >= a[sa] - 1]}** (searchq "
            f"{a[sq]:.2f} %, standalone {a[sa]:.2f} %, NNCF {a[nc]:.2f} %)."
        )
    return out + [*lines, ""]


def run_seed(s: int, k: int, stages, stage_epochs, epochs: int, work: Path) -> dict:
    """Every run of one seed, interleaved (order reversed on odd k), then the standalone nets."""
    cell: dict = {"timing": {}}
    for w in TIMED if k % 2 == 0 else reversed(TIMED):
        if w == "NNCF" and NO_NNCF:
            cell[w] = no_nncf(stage_epochs)
            plain = cell[w]["plain"]
        elif w == "NNCF":
            cell[w] = run_nncf(s, ",".join(map(str, stage_epochs)))
            plain = cell[w]["plain"]
        else:
            plain = plain_steps(s)
            cell[w] = run_searchq(s, w, stages, work)
        cell["timing"][w] = t = timing(cell[w], plain, stage_epochs)
        accs = ", ".join(f"{n} {v['accuracy']:.2f}" for n, v in cell[w]["subnets"].items())
        print(
            f"seed {s} {w}: step ratio {t['ratio']:.2f} (load {t['load']:.2f}); {accs}", flush=True
        )
    d = cell["default"]
    cell["standalone"] = {"subnets": {n: run_standalone(s, d["supernet"], d["configs"][n], epochs)
                                      for n in SUBNETS}}  # fmt: skip
    print(f"seed {s} standalone: {cell['standalone']['subnets']}", flush=True)
    for n in SUBNETS:  # both frameworks must have trained the same architectures
        if not NO_NNCF and cell["NNCF"]["subnets"][n]["macs"] != d["subnets"][n]["macs"]:
            print(f"WARNING seed {s}: {n} subnet MACs differ between searchq and NNCF")
    ref = get_task("digits", seed=s)
    cell["fp32"] = AccuracyAndLoss(ref.val_loader)(ref.model)
    for v in VARIANTS:
        del cell[v]["supernet"]
    return cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="task seeds, comma-separated")
    ap.add_argument("--quick", action="store_true", help="first seed, 1 epoch per stage")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "elastic.md"))
    ap.add_argument("--no-nncf", action="store_true", help="skip NNCF (its cells read nan)")
    args = ap.parse_args()
    global NO_NNCF
    NO_NNCF = args.no_nncf
    seeds = [int(s) for s in args.seeds.split(",")]
    stages = STAGES
    if args.quick:
        seeds, stages = seeds[:1], tuple(replace(s, epochs=1) for s in STAGES)
    stage_epochs = [s.epochs for s in stages]
    epochs = sum(stage_epochs)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    plain_steps(seeds[0], epochs=1)  # warm-up: the first epoch of a process is ~10 % slower
    with tempfile.TemporaryDirectory(prefix="elastic_bench_") as tmp:
        res = {s: run_seed(s, k, stages, stage_epochs, epochs, Path(tmp))
               for k, s in enumerate(seeds)}  # fmt: skip
    cmd = " ".join([".venv/bin/python", "experiments/elastic.py", *sys.argv[1:]])
    lines = [
        "# searchq elastic supernet vs standalone training vs NNCF 2.19.0 BootstrapNAS: digits "
        "ResNet-20", "", f"Command: `{cmd}`", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} shared cores, 1 torch thread, "
        f"{(time.perf_counter() - t_start) / 60:.1f} min. Both: depth (d=1) {stage_epochs[0]} ep, "
        f"depth (d=2) {stage_epochs[1]} ep, depth + width (d=2, w=3, reorg, BN adapt) "
        f"{stage_epochs[2]} ep; widths (1, .75, .5), min width 8; lr {DEFAULT_LR} cosine per "
        "stage, SGD Nesterov (momentum 0.9, wd 5e-5), batch 64. searchq: "
        "`elastic.train_supernet` defaults (sandwich max → min → random; `subnets_per_step` "
        "auto: 1 per step in the depth stages (the cycle spread over steps); in the width stage "
        "min + random in every step (`max_subnet_every` 0, as Once-for-All); KD softmax T=2 from "
        "the maximal subnet in place when the step trains it, else from the original net; the "
        "maximal subnet on labels only). NNCF: "
        "`experiments/nncf/run_nncf_bootstrapnas.py`, its defaults otherwise (1 random subnet per "
        f"step, no KD), but `init_lr` {DEFAULT_LR} on every stage as searchq (its fallback 3.5e-6 "
        "does not move the weights) and `min_width` 8 (its default 32 "
        "leaves the 16- and 32-channel layers rigid: another space). Minimal subnet = "
        "`result.extra['min_subnet']` (all groups at their smallest width, the last 2 blocks of "
        "each stage skipped); middle = width 0.75 everywhere (16 → 8, 32 → 24, 64 → 48), last "
        "block of each stage skipped; maximal = the full net.", "",
    ]  # fmt: skip
    lines += report(seeds, res, stage_epochs, epochs)
    print("\n".join(lines))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
