"""searchq NSGA subnet search: exhaustive front, NNCF 2.19.0 BootstrapNAS search, workers, bits.

digits ResNet-20 supernet from ``searchq run elastic`` (the schedule of experiments/elastic.py).
Parts (each writes OUT/<part>.json; the report merges every part file present): exhaustive (a
432-subnet slice enumerated; NSGA-II vs random search, HV ratio), nncf (``search`` vs NNCF's
NSGA2 search via experiments/nncf/run_nncf_search.py: speed, reported vs re-measured accuracy),
workers (optuna-nsga2 with 1 vs 2 workers; waits for load < 0.5), bits (``bits=[8]`` vs
``bits=[4, 8]``). Notes on each are in the report.

Run:  .venv/bin/python experiments/nsga.py [--parts exhaustive,nncf,workers,bits] [--quick]
Writes experiments/results/nsga.md; raw data in experiments/nncf/out/nsga/ (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import itertools
import json
import os
import shutil
import statistics as st
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from searchq.elastic.export import load_supernet
from searchq.elastic.space import SubnetConfig
from searchq.nsga import hypervolume, non_dominated, search
from searchq.nsga.indicators import REFERENCE, ProgressTracker
from searchq.nsga.problem import Encoding, Evaluation
from searchq.nsga.search import _run_pymoo, build_core
from searchq.tasks import get_task

S = importlib.import_module("searchq.nsga.search")  # the package attribute is the function

REPO = Path(__file__).resolve().parents[1]
NNCF_DIR = REPO / "experiments" / "nncf"
OUT = NNCF_DIR / "out" / "nsga"
NNCF_PY = Path(os.environ.get("NNCF_VENV", "/work/nncf-venv")) / "bin" / "python"
NNCF_ENV = {**os.environ, "PYTHONPATH": str(REPO), "NNCF_TORCH_LEGACY_TRACING": "1"}
STAGES = [{"train_dims": ["depth"], "epochs": 2, "depth_indicator": 1, "init_lr": 0.05},
          {"train_dims": ["depth"], "epochs": 2, "depth_indicator": 2, "init_lr": 0.05},
          {"train_dims": ["depth", "width"], "epochs": 3, "depth_indicator": 2, "init_lr": 0.05,
           "width_indicator": 3, "reorg_weights": True, "bn_adapt": True}]  # fmt: skip
ELASTIC = {"bootstrapNAS": {"training": {
    "algorithm": "progressive_shrinking", "progressivity_of_elasticity": ["depth", "width"],
    "batchnorm_adaptation": {"num_bn_adaptation_samples": 2000},
    "schedule": {"list_stage_descriptions": STAGES},
    "elasticity": {"available_elasticity_dims": ["depth", "width"],
                   "width": {"width_multipliers": [1, 0.75, 0.5], "min_width": 8}}}}}  # fmt: skip
# the slice: the stage widths (stem / downsample groups) and layer3.0's inner width
SMALL_WIDTHS = ("conv1", "layer2.0.downsample.0", "layer3.0.downsample.0", "layer3.0.conv1")
MET = ("NOT met", "met")


class NoRec:  # ProgressTracker only logs scalars to its Run
    def scalar(self, *_: object) -> None:
        pass


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def ms(xs, fmt: str = ".3f") -> str:
    xs = list(xs)
    return format(xs[0], fmt) if len(xs) < 2 else f"{st.mean(xs):{fmt}} ± {st.stdev(xs):{fmt}}"


def table(title: str, note: str, header: list[str], rows: list[list]) -> list[str]:
    lines = [f"## {title}", "", note, ""]
    lines += ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows] + [""]


def hv(points) -> float:
    """HV of (accuracy %, cost / maximal cost) points in searchq's indicator space."""
    p = np.asarray([[-a / 100.0, c] for a, c in points], dtype=float).reshape(-1, 2)
    return hypervolume(p[non_dominated(p)], REFERENCE) if len(p) else 0.0


def front_of(pts: dict, xs) -> set:
    xs = list(dict.fromkeys(xs))
    keep = non_dominated(np.asarray([[-pts[x][0], pts[x][1]] for x in xs]))
    return {x for x, k in zip(xs, keep, strict=True) if k}


def evaluations(run_dir: Path) -> list[dict]:
    with open(run_dir / "evaluations.csv", newline="") as f:
        return list(csv.DictReader(f))


def supernet(quick: bool) -> Path:
    run = OUT / "supernet_s0"
    if not (run / "result.json").exists():
        (OUT / "elastic.json").write_text(json.dumps(ELASTIC, indent=1))
        cmd = [str(Path(sys.executable).parent / "searchq"), "run", "elastic", "--seed", "0",
               "--config", str(OUT / "elastic.json"), "--out", str(run),
               "--no-progress"]  # fmt: skip
        subprocess.run(cmd + ["--epochs", "1"] * quick, check=True, cwd=REPO)
    return run


def part_exhaustive(run: Path, a) -> dict:
    core, _ = build_core(run)
    full, last = core.encoding, {b.name for b in core.supernet.space.skippable(1)}
    widths = SMALL_WIDTHS[: 3 if a.quick else 4]
    core.encoding = Encoding(tuple(w for w in full.widths if w[0] in widths), (),
                             tuple(b for b in full.blocks if b in last))  # fmt: skip
    xs = list(itertools.product(*(range(u + 1) for u in core.encoding.upper)))
    saved = OUT / "enumeration.json"
    if saved.exists():  # an earlier enumeration of this slice (seed 0 below re-measures)
        old = json.loads(saved.read_text())
        for x, (acc, macs) in zip(xs, old["values"], strict=True):
            ev = Evaluation(acc, macs / 1e6, macs, None, {"accuracy": acc})
            core.cache[core.key(*core.encoding.decode(x))] = ev
    t0, load = time.perf_counter(), load1()
    table_ = {x: core.evaluate(x) for x in xs}
    if not saved.exists():
        values = [[table_[x].accuracy, table_[x].macs] for x in xs]
        old = {"seconds": time.perf_counter() - t0, "load": load, "values": values}
        saved.write_text(json.dumps(old))
    pts = {x: (e.accuracy, e.macs / core.max_macs) for x, e in table_.items()}
    true_hv, true_front = hv(pts.values()), {pts[x] for x in front_of(pts, xs)}
    cache, runs = dict(core.cache), []
    for seed in range(a.seeds):
        core.history.clear()
        core.cache = {} if seed == 0 else dict(cache)  # seed 0 measures for real
        t0 = time.perf_counter()
        _run_pymoo(core, ProgressTracker(NoRec(), core), evals=a.evals, population=a.pop,
                   algorithm="nsga2", seed=seed, max_cost=None, ref_points=None, weights=None,
                   epsilon=1e-3, extreme=False, crossover=(0.9, 10.0),
                   mutation=(0.02, 3.0))  # fmt: skip
        seconds = time.perf_counter() - t0
        # pymoo stops after the generation that crosses ``evals`` (later when duplicates were
        # eliminated): compare the first ``evals`` evaluations
        hist = [tuple(map(int, x)) for x, _ in core.history][: a.evals]
        diff = sum(e.accuracy != table_[tuple(map(int, x))].accuracy for x, e in core.history)
        rnd = np.random.default_rng(seed).choice(len(xs), size=len(hist), replace=False)
        row = {"seed": seed, "evaluations": len(hist), "distinct": len(set(hist)), "mismatch": diff,
               "pymoo_evaluations": len(core.history), "seconds": seconds}  # fmt: skip
        for name, h in (("nsga", hist), ("random", [xs[i] for i in rnd])):
            trace = [hv(pts[x] for x in h[:k]) / true_hv for k in range(a.pop, len(h) + 1, a.pop)]
            found = len(true_front & {pts[x] for x in front_of(pts, h)})
            row[name] = {
                "hv": hv(pts[x] for x in h) / true_hv,
                "trace": trace,
                "front_found": found,
            }
        runs.append(row)
        print(f"seed {seed}: HV ratio NSGA {row['nsga']['hv']:.4f}, random "
              f"{row['random']['hv']:.4f}; {diff} differ from the table", flush=True)  # fmt: skip
    accs = [p[0] for p in pts.values()]
    return {"size": len(xs), "enum_seconds": old["seconds"], "load": old["load"],
            "space": {"widths": dict(core.encoding.widths), "blocks": core.encoding.blocks},
            "true_hv": true_hv, "true_front": sorted(true_front, key=lambda p: p[1]), "runs": runs,
            "acc_range": [min(accs), max(accs)]}  # fmt: skip


@torch.no_grad()
def remeasure(run: Path, configs: list[dict]) -> list[float]:
    """Independent of searchq's evaluation code: own BN reset + cumulative average over the first
    epoch of a fresh task's train loader (all 1,437 images), own top-1 loop over the val loader."""
    sn, _, _ = load_supernet(run)
    task, out = get_task("digits", seed=0), []
    train = [x for x, _ in task.train_loader]  # one fixed order for every subnet
    bns = [m for m in sn.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for cfg in configs:
        sn.activate(SubnetConfig.from_dict(cfg))
        sn.model.eval()
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for x in train:
            sn.model(x)
        sn.model.eval()
        hits = sum(int((sn.model(x).argmax(1) == y).sum()) for x, y in task.val_loader)
        out.append(100.0 * hits / len(task.val_loader.dataset))
    return out


def cpu_timed(run: Path, **kw):
    """search(...) and the process CPU seconds of its search stage (``_run_pymoo``)."""
    box, orig = {}, S._run_pymoo

    def timed(*args, **kwargs):
        c0 = time.process_time()
        try:
            return orig(*args, **kwargs)
        finally:
            box["cpu"] = time.process_time() - c0

    S._run_pymoo = timed
    try:
        return search(run, progress=False, **kw), box["cpu"]
    finally:
        S._run_pymoo = orig


def part_nncf(run: Path, a) -> dict:
    bnas, task_file = OUT / "bootstrapnas_s0.json", NNCF_DIR / "out" / "digits_task_s0.pt"
    if not task_file.exists():
        cmd = [sys.executable, str(NNCF_DIR / "export_task.py"), "--out", str(task_file)]
        subprocess.run(cmd, check=True, cwd=REPO)
    if not bnas.exists():  # NNCF's supernet, same schedule (run_nncf_bootstrapnas.py)
        cmd = [str(NNCF_PY), str(NNCF_DIR / "run_nncf_bootstrapnas.py"), "--task-file",
               str(task_file), "--stage-epochs", "1,1,1" if a.quick else "2,2,3",
               "--log-dir", str(OUT), "--out", str(bnas)]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=REPO, env=NNCF_ENV)
    out: dict = {"searchq": [], "nncf": []}
    for seed in range(a.nncf_seeds):
        load, d = load1(), OUT / f"sq_search_s{seed}"
        shutil.rmtree(d, ignore_errors=True)
        res, cpu = cpu_timed(run, evals=a.evals, population=a.pop, seed=seed, out=d)
        rows = [json.loads(r["config"]) | {"acc": float(r["accuracy"])} for r in evaluations(d)]
        check = list({json.dumps(r["subnet"], sort_keys=True): r for r in rows}.values())
        check = check[: a.recal_max] + [{"subnet": res.assignment.subnet,
                                         "acc": res.metrics["accuracy"]}]  # fmt: skip
        again = remeasure(run, [r["subnet"] for r in check])
        chosen = {"macs": res.metrics["macs"], "reported": res.metrics["accuracy"],
                  "remeasured": again[-1], "ref": res.metrics["reference_accuracy"]}  # fmt: skip
        out["searchq"].append({"seed": seed, "load": load, "search_s": res.timings["search_s"],
                               "cpu_s": cpu,
                               "evaluations": res.extra["evaluations"], "remeasured": again,
                               "distinct": res.extra["distinct"], "chosen": chosen,
                               "reported": [r["acc"] for r in check]})  # fmt: skip
        for bn in a.nncf_bn:
            rep = OUT / f"nncf_search_s{seed}_bn{bn}.json"
            cmd = [str(NNCF_PY), str(NNCF_DIR / "run_nncf_search.py"), "--bnas-report", str(bnas),
                   "--task-file", str(task_file), "--seed", str(seed), "--evals", str(a.evals),
                   "--population", str(a.pop), "--bn-adapt-samples", str(bn), "--threads", "1",
                   "--recal-max", str(a.recal_max), "--out", str(rep)]  # fmt: skip
            if not (a.reuse_nncf and rep.exists()):
                with open(rep.with_suffix(".log"), "w") as log:
                    subprocess.run(cmd, check=True, cwd=REPO, env=NNCF_ENV, stdout=log, stderr=log)
            j = json.loads(rep.read_text())
            reported = {r["config"]: r["reported"] for r in j["records"]}
            keys = [k for k in dict.fromkeys(reported) if k in j["recalibrated"]]
            best = j["best"]
            chosen = {"macs": best["reported"][0] * 1e6, "reported": best["reported"][1],
                      "remeasured": best["recalibrated"], "ref": j["ref_acc"]}  # fmt: skip
            out["nncf"].append({"seed": seed, "bn": bn, "load": j["machine_before"]["loadavg"][0],
                                "search_s": j["search_seconds"], "evaluations": j["evaluations"],
                                "cpu_s": j["search_cpu_seconds"],
                                "distinct": j["distinct"], "chosen": chosen,
                                "reported": [reported[k] for k in keys],
                                "remeasured": [j["recalibrated"][k] for k in keys]})  # fmt: skip
        print(f"nncf part seed {seed} done", flush=True)
    return out


def part_workers(run: Path, a) -> dict:
    import optuna

    from searchq.nsga.distributed import open_storage

    t_wait = time.perf_counter()
    while load1() > 0.5 and time.perf_counter() - t_wait < a.max_wait:
        time.sleep(30)
    out = {"waited_s": time.perf_counter() - t_wait, "runs": []}
    for workers, threads in ((1, 1), (2, 1), (1, 2)):
        if threads > 1 and load1() > 1:  # 2 threads + any other load: OpenMP stalls (~15x)
            continue
        torch.set_num_threads(threads)
        d = OUT / f"sq_workers{workers}_t{threads}"
        shutil.rmtree(d, ignore_errors=True)
        load, start = load1(), datetime.now()
        res = search(run, evals=a.worker_evals, population=a.pop, algorithm="optuna-nsga2",
                     workers=workers, seed=0, out=d, progress=False)  # fmt: skip
        storage = open_storage(str(d / "study.journal"))
        trials = optuna.load_study(study_name="searchq-nsga", storage=storage).get_trials()
        trials = [t for t in trials if t.state.name == "COMPLETE"]
        pid = {t.number: t.user_attrs["searchq:worker"]["pid"] for t in trials}
        first: dict = {}
        for t in trials:
            first[pid[t.number]] = min(first.get(pid[t.number], t.datetime_start), t.datetime_start)
        all_up, end = max(first.values()), max(t.datetime_complete for t in trials)
        steady = sum(t.datetime_start >= all_up for t in trials) / (end - all_up).total_seconds()
        srt = sorted(trials, key=lambda t: (pid[t.number], t.number))
        gaps = [(b.datetime_start - x.datetime_complete).total_seconds()
                for x, b in itertools.pairwise(srt) if pid[x.number] == pid[b.number]]  # fmt: skip
        took = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
        out["runs"].append({
            "workers": workers, "threads": threads, "load_before": load, "load_after": load1(),
            "search_s": res.timings["search_s"], "trials": len(trials), "steady": steady,
            "per_worker": [sum(pid[t.number] == p for t in trials) for p in sorted(first)],
            "startup_s": [(first[p] - start).total_seconds() for p in sorted(first)],
            "overall": len(trials) / res.timings["search_s"], "trial_s": st.median(took),
            "gap_s": st.median(gaps) if gaps else 0.0})  # fmt: skip
        print(out["runs"][-1], flush=True)
    torch.set_num_threads(1)
    return out


def part_bits(run: Path, a) -> dict:
    out = {}
    for bits in ([8], [4, 8]):
        d, load = OUT / f"sq_bits{'_'.join(map(str, bits))}", load1()
        shutil.rmtree(d, ignore_errors=True)
        res = search(run, evals=a.bits_evals, population=a.pop, bits=bits, out=d, progress=False)
        pts = [(float(r["accuracy"]), float(r["cost"])) for r in evaluations(d)]
        out["+".join(map(str, bits))] = {"load": load, "search_s": res.timings["search_s"],
                                          "evaluations": len(pts), "points": pts,
                                          "hv": hv(pts)}  # fmt: skip
    return out


def report(parts: dict, a) -> list[str]:
    lines = []
    if "exhaustive" in parts:
        e, (r0, *_) = parts["exhaustive"], parts["exhaustive"]["runs"]
        n = len(r0["nsga"]["trace"])
        col = {m: [[r[m]["hv"], r[m]["front_found"], *r[m]["trace"]] for r in e["runs"]]
               for m in ("nsga", "random")}  # fmt: skip
        lines += table(f"1. exhaustive front ({e['size']} subnets) vs NSGA-II vs random search",
            f"Slice: widths {e['space']['widths']} (every other group at its maximum), skippable "
            f"blocks {e['space']['blocks']} (the others kept): searchq's `Encoding` with only "
            "these variables, on `build_core`'s `SubnetProblemCore`, searched by searchq's pymoo "
            f"path (`_run_pymoo`: NSGA-II, SBX 0.9/10, PM 0.02/3, population {a.pop}). "
            f"Enumeration {e['enum_seconds']:.0f} s (load {e['load']:.1f}); accuracies "
            f"{e['acc_range'][0]:.2f}-{e['acc_range'][1]:.2f} %. HV of (−acc/100, MACs / maximal "
            f"MACs) with searchq's fixed reference point {REFERENCE}; true HV {e['true_hv']:.5f}, "
            f"true front {len(e['true_front'])} points. Random: uniform without replacement, as "
            "many subnets as NSGA-II's evaluations (all distinct, NSGA-II repeats some: favours "
            "random). Seeds > 0 read the enumeration's values; seed 0 measured every subnet "
            f"again ({r0['mismatch']} of {r0['pymoo_evaluations']} differ, {r0['seconds']:.0f} s).",
            ["method", "evaluations (distinct)", "HV / true HV", "true-front points found",
             *(f"HV ratio @{(k + 1) * a.pop}" for k in range(n))],
            [[m, f"{r0['evaluations']} ({ms((r['distinct'] for r in e['runs']), '.0f')})"
              if m == "nsga" else f"{r0['evaluations']} ({r0['evaluations']})",
              f"**{ms(c[0] for c in col[m])}**", ms((c[1] for c in col[m]), ".1f"),
              *(ms(c[2 + i] for c in col[m]) for i in range(n))] for m in col])  # fmt: skip
        lines.append("True front (accuracy %, MACs / max): " + ", ".join(
            f"({p[0]:.2f}, {p[1]:.3f})" for p in e["true_front"]) + "\n")  # fmt: skip
    if "nncf" in parts:
        rows, sq = [], json.loads((OUT / "supernet_s0" / "result.json").read_text())["metrics"]
        nn = json.loads((OUT / "bootstrapnas_s0.json").read_text())["recalibrated"]
        sup = (f"searchq {sq['min_subnet_accuracy']:.2f} / {sq['max_subnet_accuracy']:.2f} %, "
               f"NNCF {nn['min']['accuracy']:.2f} / {nn['max']['accuracy']:.2f} %")  # fmt: skip
        for name, g in [("searchq", parts["nncf"]["searchq"])] + [
            (f"NNCF, BN adapt {bn} samples", [r for r in parts["nncf"]["nncf"] if r["bn"] == bn])
            for bn in sorted({r["bn"] for r in parts["nncf"]["nncf"]}, reverse=True)]:  # fmt: skip
            pairs = [(x, y) for r in g for x, y in zip(r["reported"], r["remeasured"], strict=True)]
            d = [abs(x - y) for x, y in pairs]
            chosen = "; ".join(f"{c['reported']:.2f} → {c['remeasured']:.2f} "
                               f"({c['macs'] / 1e6:.3f})"
                               for c in (r["chosen"] for r in g))  # fmt: skip
            rows.append([name, ms((r["load"] for r in g), ".1f"),
                         ms((r["evaluations"] for r in g), ".0f"),
                         ms((r["distinct"] for r in g), ".0f"),
                         f"{ms((r['search_s'] for r in g), '.1f')} "
                         f"({ms((r['cpu_s'] for r in g), '.1f')})",
                         f"**{ms((r['distinct'] / r['search_s'] for r in g), '.2f')}** "
                         f"({ms((r['distinct'] / r['cpu_s'] for r in g), '.2f')})",
                         f"{sum(x != y for x, y in pairs)}/{len(d)}",
                         f"{max(d):.2f} / {st.mean(d):.2f}",
                         ms((kendalltau(r["reported"], r["remeasured"])[0] for r in g), ".3f"),
                         chosen])  # fmt: skip
        lines += table("2. searchq vs NNCF 2.19.0 BootstrapNAS search: speed and reported accuracy",
            "Same model, data, schedule and width choices, each framework's own supernet "
            "(searchq: `searchq run elastic`; NNCF: `run_nncf_bootstrapnas.py`; 3 stages / 7 "
            "epochs both). Spaces: searchq 12 width groups + 6 block bits (2^4·3^8·64), NNCF the "
            "same 12 groups + 1 categorical depth variable (27: per stage none / last / last two "
            f"blocks skipped). {a.evals} evaluations, population {a.pop}, {a.nncf_seeds} seeds, "
            "1 torch thread, load = 1-min load average at each start. Speed = distinct "
            "subnets / search seconds (wall; CPU: process time of the search alone, steadier on "
            "this shared machine). searchq: full BN recalibration (reset, cumulative average, all "
            "1,437 train images) + full val. NNCF: its `BatchnormAdaptationAlgorithm` (momentum "
            "0.1 on top of the previous subnet's statistics; 2000 samples, its default (32 steps "
            "of 64 over a 23-batch loader), or 256 = 4 batches) + full val. Re-measured: the "
            f"first {a.recal_max} distinct subnets and the chosen one, independent full "
            "recalibration (searchq: this script's own loop on a freshly loaded supernet; NNCF: "
            "`recalibrate` of run_nncf_bootstrapnas.py). Kendall τ between reported and "
            "re-measured accuracies. Chosen = cheapest with accuracy ≥ maximal subnet's − 1 "
            "(both; MACs in M; 2.533 = the maximal subnet, NNCF's fallback when none passes). "
            f"The supernets differ: minimal / maximal subnet fully recalibrated {sup}.",
            ["search", "load", "evaluations", "distinct", "search s (CPU s)", "subnets / s (/ CPU "
             "s)", "reported ≠ re-measured", "max / mean abs diff", "Kendall τ",
             "chosen: reported → re-measured"], rows)  # fmt: skip
    if "workers" in parts:
        w = parts["workers"]
        lines += table("3. optuna-nsga2: 1 vs 2 worker processes",
            f"`search(algorithm='optuna-nsga2', workers=N)`, journal file, {a.worker_evals} trials,"
            f" waited {w['waited_s']:.0f} s for load < 0.5 first. Start-up: from the call to each "
            "worker's first trial (worker 0 = this process after `build_core`; the other also "
            "pays process start and imports). Steady: trials started once every worker runs / "
            "seconds from then to the last completion; overall: trials / `search_s` timer. "
            "Trial s: median start-to-complete of a trial (evaluation); gap: median idle time "
            "between a worker's trials (sampler + journal). 1 × 2 "
            "(1 worker, 2 torch threads) only runs at load ≤ 1: beside other jobs 2 threads "
            "stall at OpenMP barriers (a --quick run at load 8: 0.18 vs 2.7 trials/s).",
            ["workers × threads", "load before → after", "trials (per worker)", "start-up s",
             "search s", "median trial s / gap ms", "overall trials/s", "steady trials/s"],
            [[f"{r['workers']} × {r['threads']}", f"{r['load_before']:.2f} → {r['load_after']:.2f}",
              f"{r['trials']} ({'/'.join(map(str, r['per_worker']))})",
              "/".join(f"{s:.1f}" for s in r["startup_s"]), f"{r['search_s']:.1f}",
              f"{r['trial_s']:.3f} / {1e3 * r['gap_s']:.0f}",
              f"{r['overall']:.2f}", f"**{r['steady']:.2f}**"] for r in w["runs"]])  # fmt: skip
    if "bits" in parts:
        b = {k: v for k, v in parts["bits"].items() if isinstance(v, dict)}
        levels = (0.04, 0.05, 0.06, 0.08, 0.1, 0.2)
        best = {k: [max((p[0] for p in v["points"] if p[1] <= lv), default=None) for lv in levels]
                for k, v in b.items()}  # fmt: skip
        lines += table("4. joint subnet + bits vs subnet only (INT8)",
            f"`search(bits=...)`, {a.bits_evals} evaluations, seed 0, 1 thread; cost = bit-ops "
            "Σ MACs·max(w, a) / (maximal subnet's MACs · 8). `8`: every quantizer at 8 bits, only "
            "the subnet searched; `4+8`: subnet and per-quantizer bits. HV with the reference "
            f"point {REFERENCE}. acc @c: best accuracy with cost ≤ c (–: none; the minimal "
            "subnet at INT8 costs 0.076).",
            ["bits", "load", "evaluations", "search s", "HV", *(f"acc @{lv}" for lv in levels)],
            [[k, f"{v['load']:.1f}", v["evaluations"], f"{v['search_s']:.0f}",
              f"**{v['hv']:.4f}**", *("–" if x is None else f"{x:.2f}" for x in best[k])]
             for k, v in b.items()])  # fmt: skip
        for k, v in b.items():
            front, top = [], -1.0
            for acc, cost in sorted(v["points"], key=lambda p: (p[1], -p[0])):
                if acc > top:
                    front.append(f"({acc:.2f}, {cost:.4f})")
                    top = acc
            lines.append(f"Front `{k}` (accuracy %, bit-ops ratio): {', '.join(front)}\n")
    return lines + targets(parts)


def targets(parts: dict) -> list[str]:
    out = ["## targets (from the issue)", ""]
    if "exhaustive" in parts:
        r = [x["nsga"]["hv"] for x in parts["exhaustive"]["runs"]]
        rnd = [x["random"]["hv"] for x in parts["exhaustive"]["runs"]]
        out.append(f"- NSGA-II HV after {parts['exhaustive']['runs'][0]['evaluations']} "
                   f"evaluations ≥ 95 % of the exhaustive front's: **{MET[st.mean(r) >= 0.95]}** "
                   f"({ms(r)}; worst seed {min(r):.3f}; random {ms(rnd)}).")  # fmt: skip
    if "nncf" in parts:
        sq = parts["nncf"]["searchq"]
        speed = [st.mean(r["distinct"] / r[k] for r in sq) for k in ("search_s", "cpu_s")]
        ok = all(x == y for r in sq for x, y in zip(r["reported"], r["remeasured"], strict=True))
        for bn in sorted({r["bn"] for r in parts["nncf"]["nncf"]}, reverse=True):
            nn = [r for r in parts["nncf"]["nncf"] if r["bn"] == bn]
            x, xc = (v / st.mean(r["distinct"] / r[k] for r in nn)
                     for v, k in zip(speed, ("search_s", "cpu_s"), strict=True))  # fmt: skip
            out.append(f"- searchq ≥ 2× NNCF's (BN adaptation {bn} samples) evaluations/s with "
                       f"correct recalibration: **{MET[x >= 2 and xc >= 2 and ok]}** ({x:.2f}× "
                       f"by wall time, {xc:.2f}× by CPU time; searchq's "
                       f"reported accuracies {'all' if ok else 'NOT all'} equal to the "
                       "independent re-measurement).")  # fmt: skip
    rs = {(r["workers"], r["threads"]): r for r in parts.get("workers", {}).get("runs", [])}
    if (1, 1) in rs and (2, 1) in rs:
        sp, ov = (rs[2, 1][k] / rs[1, 1][k] for k in ("steady", "overall"))
        out.append(f"- 2 workers ≥ 1.6× the evaluations/s of 1: **{MET[sp >= 1.6]}** (steady "
                   f"{sp:.2f}×, overall incl. start-up {ov:.2f}×; load at the starts "
                   f"{rs[1, 1]['load_before']:.2f} / {rs[2, 1]['load_before']:.2f}"
                   + ("; NOT a valid test: the load was > 0.5, no core was free for the second "
                      "worker" if rs[2, 1]["load_before"] > 0.5 else "") + ").")  # fmt: skip
    if "bits" in parts:
        b = parts["bits"]
        out.append(f"- joint subnet + bits vs subnet only at equal bit-ops: HV "
                   f"{b['4+8']['hv']:.4f} vs {b['8']['hv']:.4f} (no numeric target).")  # fmt: skip
    return [*out, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="exhaustive,nncf,workers,bits", help="'' = report only")
    ap.add_argument("--quick", action="store_true", help="1-epoch stages, small budgets")
    ap.add_argument("--max-wait", type=float, default=900, help="workers: seconds to wait for load")
    ap.add_argument("--reuse-nncf", action="store_true", help="nncf: keep NNCF reports found")
    ap.add_argument("--out", help="default experiments/results/nsga.md (--quick: OUT/quick/)")
    a = ap.parse_args()
    global OUT
    OUT = OUT / "quick" if a.quick else OUT  # --quick: own supernets, data and report
    a.out = a.out or (OUT / "nsga.md" if a.quick else REPO / "experiments/results/nsga.md")
    a.evals, a.pop, a.seeds, a.nncf_seeds = (80, 20, 2, 1) if a.quick else (200, 40, 5, 2)
    a.recal_max, a.nncf_bn = (10, [256]) if a.quick else (60, [2000, 256])
    a.worker_evals, a.bits_evals = (40, 40) if a.quick else (400, 600)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    run = supernet(a.quick)
    for part in filter(None, a.parts.split(",")):
        t0 = time.perf_counter()
        data = globals()[f"part_{part}"](run, a)
        data |= {
            "minutes": (time.perf_counter() - t0) / 60,
            "date": time.strftime("%F %H:%M"),
            "command": " ".join([".venv/bin/python", "experiments/nsga.py", *sys.argv[1:]]),
        }
        (OUT / f"{part}.json").write_text(json.dumps(data, indent=1))
    names = [p for p in ("exhaustive", "nncf", "workers", "bits") if (OUT / f"{p}.json").exists()]
    parts = {p: json.loads((OUT / f"{p}.json").read_text()) for p in names}
    done = "; ".join(f"{p}: `{v.get('command', '?')}` (finished {v['date']}, "
                     f"{v['minutes']:.1f} min)" for p, v in parts.items())  # fmt: skip
    head = ["# searchq NSGA search: digits ResNet-20 supernet", "",
            f"Parts run separately, merged by `--parts ''`: {done}. {os.cpu_count()} cores shared "
            "with other sessions' jobs (see the load columns). Supernet: `searchq run elastic "
            f"--config {OUT.relative_to(REPO)}/elastic.json --seed 0` (the schedule of "
            "experiments/elastic.py), made once by the first part.", ""]  # fmt: skip
    lines = head + report(parts, a)
    print("\n".join(lines))
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
