"""searchq AutoQ vs random search, HAWQ and NNCF 2.19.0 AutoQ on digits ResNet-20 (trial, 2/4/8).

Per task seed and budget (model-size ratio 0.15, bit-ops ratio 1.5): searchq's ``autoq.search``
(DDPG, HAQ's 1 update per step; by default the updates overlap the evaluation in a child
process, and once more with ``overlap_updates=False``, HAQ's order), random search with the same
episodes (``warmup=episodes``: same projection, evaluation and RNG stream, only the agent
differs), searchq's ``hawq.search`` at the same budget, and NNCF's AutoQ
(``experiments/nncf/run_nncf_autoq.py`` in the NNCF venv; model-size ratio only). 1 torch thread
everywhere; runs of one seed and budget in rotating order, 1-minute load average at each start.
The agent's overhead is measured as the user sees it: episode wall time of AutoQ minus that of
random search (whose agent is a uniform draw) in the same cell, over AutoQ's episode wall time.

Run:  .venv/bin/python experiments/autoq.py [--seeds 0,1,2] [--episodes 100] [--quick]
          [--pairs N [--grid-from | --pairs-from experiments/results/autoq.json]]
Writes experiments/results/autoq.md and the raw numbers next to it as autoq.json (NNCF's JSON
reports and logs: experiments/nncf/out/bench/). On a shared machine the wall-time comparison
needs idle time: ``--pairs N`` adds N AutoQ/random pairs, each run only when both cores are idle.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import statistics as st
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hawq import NNCF_DIR, NNCF_PY, REPO, fresh_task, load1, met, ms, table  # experiments/hawq.py

from searchq import autoq, hawq
from searchq.autoq.ddpg import DDPG
from searchq.config.specs import AutoqSpec

BITS = (2, 4, 8)
BUDGETS = {"size 0.15": {"ratio": 0.15}, "bops 1.5": {"bops_ratio": 1.5}}
HAWQ_BUDGET = {"size 0.15": {"size_ratio": 0.15}, "bops 1.5": {"ratio": 1.5}}
CHECKPOINTS = (10, 20, 30, 50, 100)
CLEAN_CORES = 0.25  # other sessions' CPU use (cores) up to which a run counts as unshared
SEARCHERS = {  # AutoQ and random next to each other: their wall times are compared
    "autoq": "AutoQ (updates overlapped)",
    "random": "random",
    "autoq_haq": "AutoQ, HAQ order (no overlap)",
}
LABELS = {**SEARCHERS, "hawq": "HAWQ", "nncf": "NNCF 2.19 AutoQ"}

# Wrapped at run time (searchq's files are untouched): DDPG.update, to time the updates made in
# this process (HAQ order; overlapped updates run in the child and report
# timings['agent_worker_s']), and the per-episode log call, to stamp the end of every episode.
UPDATES = {"s": 0.0, "n": 0}
STAMPS: list[float] = []
_update = DDPG.update
_search_module = importlib.import_module("searchq.autoq.search")
_log = _search_module._log


def _timed_update(self: DDPG, batch=None) -> dict[str, float]:
    t = time.perf_counter()
    try:
        return _update(self, batch)
    finally:
        UPDATES["s"] += time.perf_counter() - t
        UPDATES["n"] += 1


def _stamped_log(*args, **kwargs) -> None:
    _log(*args, **kwargs)
    STAMPS.append(time.perf_counter())


DDPG.update = _timed_update  # type: ignore[method-assign]
_search_module._log = _stamped_log


def best_so_far(accuracies: list[float]) -> list[float]:
    out, best = [], -float("inf")
    for a in accuracies:
        best = max(best, a)
        out.append(best)
    return out


def busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_s() -> float:
    """CPU seconds of this process and its ended children (the update process is joined at the
    end of each search)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_for_idle(deadline: float, window_s: float = 15.0) -> bool:
    """Block until both cores were >= 95 % idle over ``window_s`` (False at ``deadline``)."""
    while time.time() < deadline:
        b0, t0 = busy_s(), time.perf_counter()
        time.sleep(window_s)
        if (busy_s() - b0) / (time.perf_counter() - t0) <= 0.1:  # ≤ 0.1 busy core of 2
            return True
    return False


def clean_pairs(n, seeds, episodes, warmup, work: Path, wait_s: float) -> list[dict]:
    """Up to ``n`` (AutoQ, random) pairs run back to back, each started on an idle machine and
    kept only if no other session used more than 0.1 core during either run; the pair's order
    alternates. Budgets and seeds cycle."""
    kept: list[dict] = []
    deadline, k = time.time() + wait_s, 0
    while len(kept) < n and wait_for_idle(deadline):
        b, s = list(BUDGETS)[k % len(BUDGETS)], seeds[(k // len(BUDGETS)) % len(seeds)]
        order = ("autoq", "random") if k % 2 == 0 else ("random", "autoq")
        cell = {m: run_searchq(m, s, b, episodes, warmup, work) for m in order}
        k += 1
        others = max(cell[m]["foreign"] for m in order)
        print(f"pair {k} ({b}, seed {s}): AutoQ {1e3 * ep_wall(cell['autoq'], True):.1f} ms, "
              f"random {1e3 * ep_wall(cell['random'], True):.1f} ms per agent episode, "
              f"others {others:.2f} cores", flush=True)  # fmt: skip
        if others <= 0.1:
            kept.append({"budget": b, "seed": s, "first": order[0], "others": others, **cell})
    return kept


def run_searchq(method: str, seed: int, budget: str, episodes: int, warmup: int, work: Path):
    task, load = fresh_task(seed), load1()
    busy0, own0 = busy_s(), own_s()
    spec = AutoqSpec(overlap_updates=method != "autoq_haq")
    UPDATES.update(s=0.0, n=0)
    STAMPS.clear()
    out = work / f"{method}_s{seed}_{budget.replace(' ', '')}"
    t = time.perf_counter()
    warm = episodes if method == "random" else warmup
    res = autoq.search(
        task, **BUDGETS[budget], episodes=episodes, warmup=warm, hw="trial", bits=BITS,
        spec=spec, out=out, progress=False, seed=seed,
    )  # fmt: skip
    wall = time.perf_counter() - t
    # other sessions' CPU use during the run, in cores: the overlap needs a free second core
    foreign = max(0.0, (busy_s() - busy0) - (own_s() - own0)) / wall
    with open(out / "policies.csv") as f:
        rows = list(csv.DictReader(f))
    accs = [float(r["accuracy"]) for r in rows]
    m, tm = res.metrics, res.timings
    # episode e's wall time: from the end of episode e-1 to the end of e (its acting,
    # projection, evaluation, updates, log, and the previous episode's checkpoint if any)
    ep = [b - a for a, b in zip(STAMPS, STAMPS[1:], strict=False)]  # episodes 1 .. N-1
    post = ep[warmup - 1 :] if warmup >= 1 else ep  # episodes >= warmup (AutoQ's agent ones)
    return {
        "load": load, "wall": wall, "curve": best_so_far(accs), "acc": m["accuracy"],
        "loss": m["loss"], "search_acc": m["search_accuracy"], "size": m["size_ratio"],
        "bops": m["bit_complexity_ratio"], "agent_s": tm["agent_s"], "eval_s": tm["evaluate_s"],
        "worker_s": tm.get("agent_worker_s", 0.0) + UPDATES["s"], "updates": UPDATES["n"],
        "best_ep": res.extra["best_episode"], "episodes_s": tm["episodes_s"],
        "post_ep_s": st.mean(post), "evals": len({r["policy"] for r in rows}),
        "episodes": episodes, "warmup": warm, "agent_warmup": warmup, "foreign": foreign,
    }  # fmt: skip


def run_hawq(seed: int, budget: str, work: Path) -> dict:
    task, load = fresh_task(seed), load1()
    t = time.perf_counter()
    out = work / f"hawq_s{seed}_{budget.replace(' ', '')}"
    res = hawq.search(task, **HAWQ_BUDGET[budget], hw="trial", bits=BITS, seed=seed, out=out,
                      progress=False)  # fmt: skip
    m = res.metrics
    return {"load": load, "wall": time.perf_counter() - t, "acc": m["accuracy"], "loss": m["loss"],
            "size": m["size_ratio"], "bops": m["bit_complexity_ratio"], "evals": 1}  # fmt: skip


def run_nncf(seed: int, episodes: int, warmup: int) -> dict:
    out = NNCF_DIR / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    task_file = NNCF_DIR / "out" / f"digits_task_s{seed}.pt"
    if not task_file.exists():
        export = [sys.executable, str(NNCF_DIR / "export_task.py"), "--seed", str(seed)]
        subprocess.run([*export, "--out", str(task_file)], check=True, cwd=REPO)
    tag = f"autoq_r0.15_s{seed}_e{episodes}_w{warmup}"
    cmd = [
        str(NNCF_PY), str(NNCF_DIR / "run_nncf_autoq.py"), "--task-file", str(task_file),
        "--ratio", "0.15", "--bits", ",".join(map(str, BITS)), "--iter-number", str(episodes),
        "--warmup-iter-number", str(warmup), "--eval-subset-ratio", "1.0", "--seed", str(seed),
        "--qat-epochs", "0", "--threads", "1", "--out", str(out / f"{tag}.json"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "NNCF_TORCH_LEGACY_TRACING": "1"}
    with open(out / f"{tag}.log", "w") as log:
        subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    j = json.loads((out / f"{tag}.json").read_text())
    eval_s = sum(e["seconds"] for e in j["episodes"])
    return {
        "load": j["machine_before"]["loadavg"][0], "probe_ms": j["machine_before"]["conv_probe_ms"],
        "wall": j["precision_init_seconds"], "ccm_s": j["create_compressed_model_seconds"],
        "curve": best_so_far([e["accuracy"] for e in j["episodes"]]), "acc": j["top1_before_qat"],
        "loss": j["val_loss_before_qat"], "size": j["weight_size_ratio_vs_fp32"],
        "bops": j["final_bit_complexity_ratio"], "agent_s": j["precision_init_seconds"] - eval_s,
        "eval_s": eval_s, "evals": len({tuple(e["bits"]) for e in j["episodes"]}),
        "best_ep": j["best_episode"], "episodes": j["episodes_run"], "warmup": warmup,
        "extension": j["extension"].split()[0],
    }  # fmt: skip


def ep_wall(r: dict, post: bool) -> float:
    """Seconds per episode of the episode loop (whole run), or per episode from the agent's
    first one on (``post``: episodes >= warm-up, the same indices for random search)."""
    return r["post_ep_s"] if post else r["episodes_s"] / r["episodes"]


def overhead(cell: dict, method: str, post: bool) -> float:
    """User-visible agent overhead: (method − random) / method episode wall time, same cell."""
    a, r = ep_wall(cell[method], post), ep_wall(cell["random"], post)
    return (a - r) / a


def main_share(r: dict) -> float:
    """Main-thread agent time (acting, projection, replay, waiting for / running updates) over
    agent + evaluation time."""
    return r["agent_s"] / (r["agent_s"] + r["eval_s"])


def methods_for(budget: str, res: dict | None = None, seed: int = 0) -> list[str]:
    """The methods of a budget (NNCF: model-size only); with ``res``, those that ran."""
    ms_ = [*SEARCHERS, "hawq", *(["nncf"] if budget.startswith("size") else [])]
    return ms_ if res is None else [m for m in ms_ if m in res[budget, seed]]


def verdicts(seeds, episodes, res, pairs=()) -> list[str]:
    lines = ["## (d) Targets (from the issue)", ""]

    def mean(b, m, k):
        return st.mean(res[b, s][m][k] for s in seeds)

    for b in BUDGETS:
        aq, rnd, hq = (mean(b, m, "acc") for m in ("autoq", "random", "hawq"))
        la, lr = mean(b, "autoq", "loss"), mean(b, "random", "loss")
        wins = sum(res[b, s]["autoq"]["acc"] > res[b, s]["random"]["acc"] for s in seeds)
        ties = sum(res[b, s]["autoq"]["acc"] == res[b, s]["random"]["acc"] for s in seeds)
        lines.append(
            f"- {b}: beats random search at {episodes} evaluations: **{met(aq > rnd)}** (best "
            f"accuracy {aq:.2f} vs {rnd:.2f} %, val loss of the picks {la:.4f} vs {lr:.4f}; "
            f"AutoQ higher in {wins}/{len(seeds)} seeds, tied in {ties})."
        )
        lines.append(f"- {b}: within 0.5 points of HAWQ or better: **{met(aq >= hq - 0.5)}** "
                     f"({aq:.2f} vs {hq:.2f} %, Δ {aq - hq:+.2f}).")  # fmt: skip
        if "nncf" in res[b, seeds[0]]:
            nc = mean(b, "nncf", "acc")
            w = [res[b, s]["autoq"]["wall"] / res[b, s]["nncf"]["wall"] for s in seeds]
            ok = aq >= nc and max(w) < 1
            lines.append(
                f"- {b}: at least NNCF's accuracy at {episodes} episodes in less wall time: "
                f"**{met(ok)}** ({aq:.2f} vs {nc:.2f} %; searchq's whole search() takes "
                f"{ms(w, '.2f')}× NNCF's precision init alone)."
            )
        whole = [overhead(res[b, s], "autoq", False) for s in seeds]
        post = [overhead(res[b, s], "autoq", True) for s in seeds]
        haq = [overhead(res[b, s], "autoq_haq", True) for s in seeds]
        share = [main_share(res[b, s]["autoq"]) for s in seeds]
        others = [max(res[b, s][m]["foreign"] for m in ("autoq", "random")) for s in seeds]
        per_seed = ", ".join(f"{100 * x:+.1f} [{o:.2f}]" for x, o in zip(post, others, strict=True))
        clean = [x for x, o in zip(post, others, strict=True) if o <= CLEAN_CORES]
        idle = [overhead(p, "autoq", True) for p in pairs if p["budget"] == b]
        idle_norm = [norm_overhead(p) for p in pairs if p["budget"] == b]
        if idle:
            verdict = (
                f"**{met(st.mean(idle) < 0.05)}** on an unshared machine "
                f"({100 * st.mean(idle):+.1f} %, per pair "
                f"{', '.join(f'{100 * x:+.1f}' for x in idle)}; warm-up-normalised "
                f"{100 * st.mean(idle_norm):+.1f} %; {len(idle)} clean pair(s) in (e))"
            )
        elif clean:
            verdict = (
                f"**{met(st.mean(clean) < 0.05)}** on the {len(clean)} seed(s) below where no "
                f"other session used more than {CLEAN_CORES} of a core during either run "
                f"({100 * st.mean(clean):+.1f} %)"
            )
        else:
            verdict = "**not measured**: every seed's AutoQ or random run shared the machine"
        lines.append(
            f"- {b}: agent overhead < 5 % of episode time, as (AutoQ − random) / AutoQ episode "
            f"wall time over the episodes from the agent's first on: {verdict}. Grid runs "
            f"{100 * st.mean(post):+.1f} %: {per_seed} [other sessions' CPU use in cores, the "
            f"larger of the two runs; the overlap needs the second core]; whole episode loop "
            f"incl. warm-up {100 * st.mean(whole):+.1f} %. Main-thread agent time "
            f"{100 * st.mean(share):.1f} % of agent + evaluation. HAQ order (no overlap): "
            f"{100 * st.mean(haq):+.1f} %."
        )
    if pairs:
        raw = [100 * overhead(p, "autoq", True) for p in pairs]
        norm = [100 * norm_overhead(p) for p in pairs]
        lines.append(
            f"- Both budgets, all {len(pairs)} clean pairs of (e): overhead {ms(raw, '+.1f')} %, "
            f"warm-up-normalised {ms(norm, '+.1f')} % (the mechanism does not depend on the "
            "budget: the same 42 updates per episode run in the child)."
        )
    return [*lines, ""]


def tables(seeds, episodes, res) -> list[str]:
    cps = [c for c in CHECKPOINTS if c <= episodes]
    out = []
    for b in BUDGETS:
        rows = []
        for m in [x for x in methods_for(b, res, seeds[0]) if x != "hawq"]:
            rows.append([LABELS[m], *(ms((res[b, s][m]["curve"][c - 1] for s in seeds), ".2f")
                                      for c in cps)])  # fmt: skip
        hq = ms((res[b, s]["hawq"]["acc"] for s in seeds), ".2f")
        rows.append([LABELS["hawq"] + " (1 evaluation)", *[hq] * len(cps)])
        out += table(f"(a) {b}: best accuracy found vs episodes, mean ± std over seeds {seeds}",
                     "Best-so-far search-time accuracy (%, full validation set) after N episodes "
                     "(policies.csv; NNCF: its per-episode log). NNCF scores episodes without BN "
                     "adaptation (experiments/nncf/README.md quirk 9) and with more activation "
                     "quantizers, so its curve is lower by construction; compare its final "
                     "accuracy in (b).", ["method", *(f"{c} ep." for c in cps)], rows)  # fmt: skip
    rows = []
    for b in BUDGETS:
        for m in methods_for(b, res, seeds[0]):
            rs = [res[b, s][m] for s in seeds]
            cols = (("acc", ".2f"), ("loss", ".4f"), ("size", ".4f"), ("bops", ".3f"),
                    ("wall", ".1f"), ("load", ".2f"), ("evals", ".0f"))  # fmt: skip
            rows.append([b, LABELS[m], *(ms((r[k] for r in rs), f) for k, f in cols)])
    out += table("(b) final picks, mean ± std over seeds",
                 "Accuracy % and val cross-entropy of the kept assignment on the full validation "
                 "set (range init + BN adaptation; no QAT). Wall: searchq = the whole search() "
                 "call (prepare, all episodes, final evaluation); NNCF = its precision init "
                 "(apply_init) only, without its range init / BN adaptation (whole "
                 "create_compressed_model in (b')). Evaluations: distinct assignments among the "
                 "episodes (searchq caches repeats; NNCF re-evaluates them).", ["budget", "method",
                 "accuracy %", "val loss", "size ratio", "bit-ops ratio", "wall s", "load",
                 "evaluations"], rows)  # fmt: skip
    rows = []
    for b in BUDGETS:
        for s in seeds:
            for m in methods_for(b, res, seeds[0]):
                r = res[b, s][m]
                nncf = ""
                if m == "nncf":
                    nncf = f"ccm {r['ccm_s']:.1f} s, probe {r['probe_ms']:.2f} ms"
                other = f"{r['foreign']:.2f}" if "foreign" in r else ""
                rows.append([b, s, LABELS[m], f"{r['acc']:.2f}", f"{r['loss']:.4f}",
                             f"{r['size']:.4f} / {r['bops']:.3f}", r.get("best_ep", ""),
                             f"{r['wall']:.1f} [{r['load']:.2f}]", other, nncf])  # fmt: skip
    out += table("(b') per run", "Achieved size / bit-ops ratio; wall s [1-min load average at "
                 "start]; other sessions' CPU use during the run in cores (/proc/stat busy time "
                 "minus this process and its update child, over the wall time; 2 cores in all); "
                 "for NNCF the whole create_compressed_model and its conv probe (> ~1 ms = "
                 "contaminated).", ["budget", "seed", "method", "acc %", "loss", "size / bops",
                 "best episode", "wall s [load]", "others' cores", "NNCF"], rows)  # fmt: skip
    rows = []
    for b in BUDGETS:
        for m in [x for x in methods_for(b, res, seeds[0]) if x != "hawq"]:
            rs = [res[b, s][m] for s in seeds]
            e = rs[0]["episodes"]
            if m == "nncf":
                rows.append([b, LABELS[m], ms((1e3 * r["agent_s"] / e for r in rs), ".1f"), "—",
                             ms((1e3 * r["eval_s"] / e for r in rs), ".1f"),
                             ms((100 * main_share(r) for r in rs), ".1f"), "—", "—", "—",
                             "—"])  # fmt: skip
                continue
            post_eps = e - rs[0]["agent_warmup"]
            upd = ("—" if m == "random" else
                   ms((1e3 * r["worker_s"] / post_eps for r in rs), ".1f"))  # fmt: skip
            cells = [res[b, s] for s in seeds]
            vs = ["—", "—"] if m == "random" else [
                ms((100 * overhead(c, m, post) for c in cells), "+.1f") for post in (False, True)
            ]  # fmt: skip
            rows.append([b, LABELS[m], ms((1e3 * r["agent_s"] / e for r in rs), ".1f"), upd,
                         ms((1e3 * r["eval_s"] / e for r in rs), ".1f"),
                         ms((100 * main_share(r) for r in rs), ".1f"),
                         ms((1e3 * ep_wall(r, False) for r in rs), ".1f"),
                         ms((1e3 * ep_wall(r, True) for r in rs), ".1f"), *vs])  # fmt: skip
    out += table("(c) agent overhead per episode, mean ± std over seeds",
                 "Main thread: `timings['agent_s']` (acting, budget projection, replay sampling "
                 "and storing, waiting for overlapped updates or running HAQ-order ones) and "
                 "`evaluate_s` per episode. Updates: their own time per agent episode "
                 "(overlapped: `timings['agent_worker_s']`, measured in the child while the "
                 "parent evaluates; HAQ order: the wrapped DDPG.update, in the parent). Episode "
                 "wall: the whole episode loop (`timings['episodes_s']`) per episode, and per "
                 "episode from the agent's first one on (episodes >= warm-up, from per-episode "
                 "time stamps; random: the same episode indices). vs random: (method − random) "
                 "/ method episode wall time in the same seed and budget, the user-visible "
                 "agent overhead. NNCF: precision-init time minus its per-episode "
                 "evaluate_strategy time (DDPG, pandas bookkeeping, env setup), and that "
                 "evaluate_strategy time (which includes NNCF's own size constraint and "
                 "quantizer reconfiguration).", ["budget", "method", "main-thread agent ms / "
                 "ep.", "updates ms / agent ep.", "evaluate ms / ep.", "main-thread agent share "
                 "%", "episode wall ms", "agent-episode wall ms", "vs random, whole loop %",
                 "vs random, agent episodes %"], rows)  # fmt: skip
    return out


def warm_ep(r: dict) -> float:
    """Seconds per warm-up episode (random actions, no updates: the same work for AutoQ and
    random search), from the loop total minus the agent episodes."""
    n_agent = r["episodes"] - r["agent_warmup"]
    return (r["episodes_s"] - r["post_ep_s"] * n_agent) / r["agent_warmup"]


def norm_overhead(cell: dict) -> float:
    """``overhead`` with each run's agent episodes measured in units of its own warm-up
    episodes, which cancels a machine that is faster or slower as a whole during one run."""
    a = ep_wall(cell["autoq"], True) / warm_ep(cell["autoq"])
    r = ep_wall(cell["random"], True) / warm_ep(cell["random"])
    return 1 - r / a


def pairs_table(pairs) -> list[str]:
    rows = [
        [p["budget"], p["seed"], LABELS[p["first"]], f"{1e3 * ep_wall(p['autoq'], True):.1f}",
         f"{1e3 * ep_wall(p['random'], True):.1f}", f"{100 * overhead(p, 'autoq', True):+.1f}",
         f"{ep_wall(p['autoq'], True) / warm_ep(p['autoq']):.3f}",
         f"{ep_wall(p['random'], True) / warm_ep(p['random']):.3f}",
         f"{100 * norm_overhead(p):+.1f}",
         f"{1e3 * p['autoq']['worker_s'] / (p['autoq']['episodes'] - p['autoq']['warmup']):.1f}",
         f"{1e3 * p['autoq']['agent_s'] / p['autoq']['episodes']:.1f}", f"{p['others']:.2f}"]
        for p in pairs
    ]  # fmt: skip
    for b in [*BUDGETS, "all"]:
        ps = [p for p in pairs if b in (p["budget"], "all")]
        if ps:
            rows.append([b, "mean", "", "", "", ms((100 * overhead(p, "autoq", True) for p in ps),
                         "+.1f"), "", "", ms((100 * norm_overhead(p) for p in ps), "+.1f"), "",
                         "", ""])  # fmt: skip
    return table("(e) wall-time overhead on an unshared machine: AutoQ vs random, run back to "
                 "back", "Each pair started after 15 s with both cores >= 95 % idle and kept only "
                 "if other sessions used <= 0.1 core during both runs (/proc/stat). Same "
                 "configuration as above (episodes, warm-up, budget, seed); agent-episode wall = "
                 "per episode from the agent's first on; overhead = (AutoQ − random) / AutoQ. "
                 "Even idle, this VM's speed drifts by several % between runs (random's own "
                 "agent-episode wall differs by more between pairs than the overhead measured), "
                 "so each run's agent episodes are also given in units of its own warm-up "
                 "episodes (identical work in both runs) and the overhead recomputed from those "
                 "ratios (warm-up-normalised).",
                 ["budget", "seed", "first run", "AutoQ agent-episode wall ms", "random ms",
                  "overhead %", "AutoQ agent / warm-up ep.", "random agent / warm-up ep.",
                  "overhead, warm-up-normalised %", "updates ms / agent ep. (child)",
                  "main-thread agent ms / ep.", "others' cores"], rows)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="task seeds, comma-separated")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20, help="random episodes (NNCF's default 20)")
    ap.add_argument("--quick", action="store_true", help="first seed, 30 episodes, warm-up 10")
    ap.add_argument("--no-nncf", action="store_true", help="skip the NNCF runs")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "autoq.md"))
    ap.add_argument(
        "--pairs",
        type=int,
        default=0,
        metavar="N",
        help="after the grid, N AutoQ/random pairs on an idle machine (section e)",
    )
    ap.add_argument(
        "--pair-wait",
        type=float,
        default=3600,
        metavar="S",
        help="give up waiting for idle machine time after S seconds",
    )
    ap.add_argument(
        "--pairs-from",
        metavar="JSON",
        help="start section (e) with the idle pairs of an earlier run's raw JSON",
    )
    ap.add_argument(
        "--grid-from",
        metavar="JSON",
        help="skip the grid: take it from an earlier run's raw JSON (<out>.json)",
    )
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.episodes, args.warmup = seeds[:1], 30, 10
    torch.set_num_threads(1)
    DDPG(4)  # one-off imports (Adam pulls in torch._dynamo, ~2 s) before any run is timed
    import matplotlib.pyplot  # noqa: F401  (the same for the plots every run ends with)

    res: dict = {}
    if args.grid_from:  # the grid of an earlier run (its raw JSON); only the pairs run now
        saved = json.loads(Path(args.grid_from).read_text())
        res = {(c["budget"], c["seed"]): c["runs"] for c in saved["grid"]}
        seeds, args.episodes, args.warmup = saved["seeds"], saved["episodes"], saved["warmup"]
        saved_pairs = saved["pairs"]
    start = time.perf_counter()
    pairs: list[dict] = saved_pairs if args.grid_from else []
    kept = 0
    if args.pairs_from:  # idle pairs measured earlier (same AutoQ code), kept with a new grid
        pairs = json.loads(Path(args.pairs_from).read_text())["pairs"] + pairs
        kept = len(pairs)
    with tempfile.TemporaryDirectory(prefix="autoq_bench_") as tmp:
        for k, (b, s) in enumerate((b, s) for b in BUDGETS for s in seeds):
            if args.grid_from:
                break
            todo = [m for m in methods_for(b) if not (args.no_nncf and m == "nncf")]
            todo = todo[k % len(todo) :] + todo[: k % len(todo)]  # rotate: interleave the runs
            cell = res[b, s] = {}
            for m in todo:
                if m == "nncf":
                    cell[m] = run_nncf(s, args.episodes, args.warmup)
                elif m == "hawq":
                    cell[m] = run_hawq(s, b, Path(tmp))
                else:
                    cell[m] = run_searchq(m, s, b, args.episodes, args.warmup, Path(tmp))
                r = cell[m]
                print(f"{b} seed {s} {m}: acc {r['acc']:.2f} loss {r['loss']:.4f} "
                      f"wall {r['wall']:.1f} s load {r['load']:.2f}", flush=True)  # fmt: skip
                if m in SEARCHERS and cell[m]["acc"] != cell[m]["search_acc"]:
                    print(f"WARNING {m}: final accuracy differs from the search-time one")
        if args.pairs:
            pairs += clean_pairs(args.pairs, seeds, args.episodes, args.warmup, Path(tmp),
                                 args.pair_wait)  # fmt: skip
    total = time.perf_counter() - start
    cmd = " ".join([".venv/bin/python", "experiments/autoq.py", *sys.argv[1:]])
    grid_run = {"command": cmd, "date": time.strftime("%Y-%m-%d %H:%M"), "minutes": total / 60}
    if args.grid_from:  # the header describes the run that made the grid
        grid_run = saved["grid_run"]
    raw = {
        "grid_run": grid_run,
        "seeds": seeds,
        "episodes": args.episodes,
        "warmup": args.warmup,
        "pairs": pairs,
        "grid": [{"budget": b, "seed": s, "runs": runs} for (b, s), runs in res.items()],
    }
    Path(args.out).with_suffix(".json").write_text(json.dumps(raw))
    ext = sorted({res[k]["nncf"]["extension"] for k in res if "nncf" in res[k]})
    lines = [
        "# searchq AutoQ vs random search, HAWQ and NNCF 2.19.0 AutoQ: digits ResNet-20, "
        "target trial, bits 2/4/8", "", f"Command: `{grid_run['command']}`", "",
        f"Run {grid_run['date']} on {os.cpu_count()} shared cores, 1 torch thread everywhere, "
        f"{grid_run['minutes']:.1f} min in all; the runs of one seed and budget in rotating "
        f"order. {args.episodes} episodes, {args.warmup} random warm-up episodes, seeds {seeds} "
        "(task seed = search seed). searchq: `autoq.search(get_task('digits', seed=S), "
        "ratio=0.15 | bops_ratio=1.5, hw='trial', bits=(2, 4, 8))`, evaluator = top-1 then "
        "mean cross-entropy on the 360 validation images (1 image = 0.28 points), so rewards "
        "stay accuracy-based; AutoQ's default overlaps each episode's updates with its "
        "evaluation (child process); the HAQ-order run passes "
        "`spec=AutoqSpec(overlap_updates=False)`. Random = the same call with "
        "`warmup=episodes`; with the same seed its first warm-up episodes are exactly AutoQ's. "
        "HAWQ: `hawq.search(..., size_ratio=0.15 | ratio=1.5)` defaults. NNCF: "
        f"`run_nncf_autoq.py --ratio 0.15 --iter-number {args.episodes} --warmup-iter-number "
        f"{args.warmup} --eval-subset-ratio 1.0 --qat-epochs 0 --threads 1 --seed S` (numpy, "
        f"random and torch seeded before the search; CPU extension {', '.join(ext) or 'n/a'}). "
        "NNCF's AutoQ only supports the model-size ratio, so it has no bit-ops row.", "",
    ]  # fmt: skip
    if args.pairs_from:
        lines += [
            f"Section (e) starts with the {kept} idle pair(s) of `{args.pairs_from}` as it "
            "was before this run (`--pairs-from`; measured on the same AutoQ code).",
            "",
        ]
    if args.grid_from:
        now = time.strftime("%Y-%m-%d %H:%M")
        lines += [f"Regenerated from `{args.grid_from}` by `{cmd}` ({now}, {total / 60:.1f} min: "
                  f"{args.pairs} more pair(s) asked for in (e)).", ""]  # fmt: skip
    lines += verdicts(seeds, args.episodes, res, pairs)
    lines += tables(seeds, args.episodes, res)
    if args.pairs or pairs:
        lines += (
            pairs_table(pairs)
            if pairs
            else [
                "## (e) wall-time overhead on an unshared machine",
                "",
                f"No idle machine time within {args.pair_wait:.0f} s: no clean pair was run.",
                "",
            ]
        )
    print("\n".join(lines))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
