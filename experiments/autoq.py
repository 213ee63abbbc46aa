"""searchq AutoQ vs random search, HAWQ and NNCF 2.19.0 AutoQ on digits ResNet-20 (trial, 2/4/8).

Per task seed and budget (model-size ratio 0.15, bit-ops ratio 1.5): searchq's ``autoq.search``
(DDPG, HAQ's 1 update per step, and 0.25 updates per step), random search with the same
episodes (``warmup=episodes``: same projection, evaluation and RNG stream, only the agent
differs), searchq's ``hawq.search`` at the same budget, and NNCF's AutoQ
(``experiments/nncf/run_nncf_autoq.py`` in the NNCF venv; model-size ratio only). 1 torch thread
everywhere; runs of one seed and budget in rotating order, 1-minute load average at each start.

Run:  .venv/bin/python experiments/autoq.py [--seeds 0,1,2] [--episodes 100] [--quick]
Writes experiments/results/autoq.md (NNCF's JSON reports and logs: experiments/nncf/out/bench/).
"""

from __future__ import annotations

import argparse
import csv
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
from searchq.autoq.ddpg import DDPG, DDPGConfig
from searchq.autoq.env import plan_steps
from searchq.config.specs import QuantizationSpec
from searchq.prepare import prepare_quantization

BITS = (2, 4, 8)
BUDGETS = {"size 0.15": {"ratio": 0.15}, "bops 1.5": {"bops_ratio": 1.5}}
HAWQ_BUDGET = {"size 0.15": {"size_ratio": 0.15}, "bops 1.5": {"ratio": 1.5}}
CHECKPOINTS = (10, 20, 30, 50, 100)
SEARCHERS = {"autoq": "AutoQ", "autoq_u025": "AutoQ, 0.25 updates/step", "random": "random"}
LABELS = {**SEARCHERS, "hawq": "HAWQ", "nncf": "NNCF 2.19 AutoQ"}

# DDPG.update is wrapped (at run time; searchq's files are untouched) to split the agent's time
# into gradient updates and the rest (acting, projection, bookkeeping).
UPDATES = {"s": 0.0, "n": 0}
_update = DDPG.update


def _timed_update(self: DDPG) -> dict[str, float]:
    t = time.perf_counter()
    try:
        return _update(self)
    finally:
        UPDATES["s"] += time.perf_counter() - t
        UPDATES["n"] += 1


DDPG.update = _timed_update  # type: ignore[method-assign]


def default_buffer(seed: int, warmup: int) -> int:
    """search()'s replay-buffer size when ``agent`` is None; a DDPGConfig passed as ``agent`` is
    used as is (buffer 2000), so the 0.25-updates run states it to differ in one knob only."""
    setup = prepare_quantization(fresh_task(seed), QuantizationSpec(), "trial", bits=BITS)
    return max(64, max(warmup, 1) * len(plan_steps(setup.graph, setup.space)) * 4)


def best_so_far(accuracies: list[float]) -> list[float]:
    out, best = [], -float("inf")
    for a in accuracies:
        best = max(best, a)
        out.append(best)
    return out


def run_searchq(method: str, seed: int, budget: str, episodes: int, warmup: int, work: Path):
    task, load = fresh_task(seed), load1()
    agent = None
    if method == "autoq_u025":
        agent = DDPGConfig(updates_per_step=0.25, buffer_size=default_buffer(seed, warmup))
    UPDATES.update(s=0.0, n=0)
    out = work / f"{method}_s{seed}_{budget.replace(' ', '')}"
    t = time.perf_counter()
    warm = episodes if method == "random" else warmup
    res = autoq.search(
        task, **BUDGETS[budget], episodes=episodes, warmup=warm, hw="trial", bits=BITS,
        agent=agent, out=out, progress=False, seed=seed,
    )  # fmt: skip
    wall = time.perf_counter() - t
    with open(out / "policies.csv") as f:
        rows = list(csv.DictReader(f))
    accs = [float(r["accuracy"]) for r in rows]
    m, tm = res.metrics, res.timings
    return {
        "load": load, "wall": wall, "curve": best_so_far(accs), "acc": m["accuracy"],
        "loss": m["loss"], "search_acc": m["search_accuracy"], "size": m["size_ratio"],
        "bops": m["bit_complexity_ratio"], "agent_s": tm["agent_s"], "eval_s": tm["evaluate_s"],
        "update_s": UPDATES["s"], "updates": UPDATES["n"], "best_ep": res.extra["best_episode"],
        "evals": len({r["policy"] for r in rows}), "episodes": episodes, "warmup": warm,
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


def pw_share(r: dict) -> float:
    """Agent share of a post-warm-up episode: non-update agent time spread over all episodes,
    update time over post-warm-up ones; evaluation time per episode as averaged over the run."""
    if r["episodes"] == r["warmup"]:
        return r["agent_s"] / (r["agent_s"] + r["eval_s"])
    a = (r["agent_s"] - r["update_s"]) / r["episodes"] + r["update_s"] / (
        r["episodes"] - r["warmup"]
    )
    return a / (a + r["eval_s"] / r["episodes"])


def methods_for(budget: str, res: dict | None = None, seed: int = 0) -> list[str]:
    """The methods of a budget (NNCF: model-size only); with ``res``, those that ran."""
    ms_ = [*SEARCHERS, "hawq", *(["nncf"] if budget.startswith("size") else [])]
    return ms_ if res is None else [m for m in ms_ if m in res[budget, seed]]


def verdicts(seeds, episodes, res) -> list[str]:
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
        share = [res[b, s]["autoq"]["agent_s"] / (res[b, s]["autoq"]["agent_s"] +
                 res[b, s]["autoq"]["eval_s"]) for s in seeds]  # fmt: skip
        pw = [pw_share(res[b, s]["autoq"]) for s in seeds]
        lines.append(
            f"- {b}: agent overhead < 5 % of episode time: **{met(max(share) < 0.05)}** over "
            f"the whole run ({100 * st.mean(share):.1f} %, max {100 * max(share):.1f} %); "
            f"**{met(max(pw) < 0.05)}** for a post-warm-up episode ({100 * st.mean(pw):.1f} %)."
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
                rows.append([b, s, LABELS[m], f"{r['acc']:.2f}", f"{r['loss']:.4f}",
                             f"{r['size']:.4f} / {r['bops']:.3f}", r.get("best_ep", ""),
                             f"{r['wall']:.1f} [{r['load']:.2f}]", nncf])  # fmt: skip
    out += table("(b') per run", "Achieved size / bit-ops ratio; wall s [1-min load average at "
                 "start]; for NNCF the whole create_compressed_model and its conv probe (> ~1 ms "
                 "= contaminated).", ["budget", "seed", "method", "acc %", "loss", "size / bops",
                 "best episode", "wall s [load]", "NNCF"], rows)  # fmt: skip
    rows = []
    for b in BUDGETS:
        for m in [x for x in methods_for(b, res, seeds[0]) if x != "hawq"]:
            rs = [res[b, s][m] for s in seeds]
            e = rs[0]["episodes"]
            upd = ("—" if m in ("random", "nncf") else
                   ms((1e3 * r["update_s"] / (e - r["warmup"]) for r in rs), ".1f") +
                   f" ({rs[0]['updates'] // (e - rs[0]['warmup'])}/ep.)")  # fmt: skip
            share = ms((100 * r["agent_s"] / (r["agent_s"] + r["eval_s"]) for r in rs), ".1f")
            pw = "—" if m == "nncf" else ms((100 * pw_share(r) for r in rs), ".1f")
            rows.append([b, LABELS[m], ms((1e3 * r["agent_s"] / e for r in rs), ".1f"), upd,
                         ms((1e3 * r["eval_s"] / e for r in rs), ".1f"), share, pw])  # fmt: skip
    out += table("(c) agent overhead per episode (excluding evaluation), mean ± std over seeds",
                 "searchq: `timings['agent_s']` (acting, budget projection, replay, updates) and "
                 "`evaluate_s` per episode; updates = the wrapped DDPG.update per post-warm-up "
                 "episode. Share = agent / (agent + evaluate) over the run; post-warm-up share "
                 "estimated with the update time spread over post-warm-up episodes only. NNCF: "
                 "precision-init time minus its per-episode evaluate_strategy time (DDPG, "
                 "pandas bookkeeping, env setup), and that evaluate_strategy time (which includes "
                 "NNCF's own size constraint and quantizer reconfiguration).", ["budget",
                 "method", "agent ms / ep.", "of it: updates ms / post-warm-up ep.",
                 "evaluate ms / ep.", "agent share %", "post-warm-up share %"], rows)  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="task seeds, comma-separated")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20, help="random episodes (NNCF's default 20)")
    ap.add_argument("--quick", action="store_true", help="first seed, 30 episodes, warm-up 10")
    ap.add_argument("--no-nncf", action="store_true", help="skip the NNCF runs")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "autoq.md"))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.episodes, args.warmup = seeds[:1], 30, 10
    torch.set_num_threads(1)
    res: dict = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoq_bench_") as tmp:
        for k, (b, s) in enumerate((b, s) for b in BUDGETS for s in seeds):
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
    total = time.perf_counter() - start
    cmd = " ".join([".venv/bin/python", "experiments/autoq.py", *sys.argv[1:]])
    ext = sorted({res[k]["nncf"]["extension"] for k in res if "nncf" in res[k]})
    lines = [
        "# searchq AutoQ vs random search, HAWQ and NNCF 2.19.0 AutoQ: digits ResNet-20, "
        "target trial, bits 2/4/8", "", f"Command: `{cmd}`", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} shared cores, 1 torch thread "
        f"everywhere, {total / 60:.1f} min in all; the runs of one seed and budget in rotating "
        f"order. {args.episodes} episodes, {args.warmup} random warm-up episodes, seeds {seeds} "
        "(task seed = search seed). searchq: `autoq.search(get_task('digits', seed=S), "
        "ratio=0.15 | bops_ratio=1.5, hw='trial', bits=(2, 4, 8))`, evaluator = top-1 then "
        "mean cross-entropy on the 360 validation images (1 image = 0.28 points), so rewards "
        "stay accuracy-based; the 0.25-updates run passes `DDPGConfig(updates_per_step=0.25, "
        "buffer_size=<search()'s default rule>)`. Random = the same call with "
        "`warmup=episodes`; with the same seed its first warm-up episodes are exactly AutoQ's. "
        "HAWQ: `hawq.search(..., size_ratio=0.15 | ratio=1.5)` defaults. NNCF: "
        f"`run_nncf_autoq.py --ratio 0.15 --iter-number {args.episodes} --warmup-iter-number "
        f"{args.warmup} --eval-subset-ratio 1.0 --qat-epochs 0 --threads 1 --seed S` (numpy, "
        f"random and torch seeded before the search; CPU extension {', '.join(ext) or 'n/a'}). "
        "NNCF's AutoQ only supports the model-size ratio, so it has no bit-ops row.", "",
    ]  # fmt: skip
    lines += verdicts(seeds, args.episodes, res)
    lines += tables(seeds, args.episodes, res)
    print("\n".join(lines))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
