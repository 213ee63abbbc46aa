"""NNCF 2.19.0 BootstrapNAS subnet search (NSGA-II) on a run_nncf_bootstrapnas.py supernet.

Runs IN the NNCF venv:

    NNCF_TORCH_LEGACY_TRACING=1 PYTHONPATH=$PWD /work/nncf-venv/bin/python \
        experiments/nncf/run_nncf_search.py --task-file experiments/nncf/out/digits_task_s0.pt \
        --bnas-report experiments/nncf/out/nsga/bootstrapnas_s0.json --seed 0 --evals 200 \
        --threads 1 --out experiments/nncf/out/nsga/search_s0.json

The supernet is rebuilt by NNCF's ``TrainedSuperNet.from_checkpoint`` (``create_nncf_network`` with
the training config recorded in the report, ``last_elasticity.pth`` and ``last_model_weights.pth``
of its ``log_dir``; it needs ``config.device``). The search is NNCF's own:
``BaseSearchAlgorithm.from_config`` with ``bootstrapNAS.search = {algorithm NSGA2, num_evals,
population, seed, acc_delta, batchnorm_adaptation.num_bn_adaptation_samples}`` (SBX 0.9/10,
PM 0.02/3), default MACs evaluator, ``validate_fn`` = top-1 on the full val loader, ``ref_acc`` =
the maximal subnet's accuracy after a full recalibration (from the report). NNCF's own
``ref_acc = -1`` path (read from search.py / evaluator_handler.py) stores the *negated* accuracy
as the reference, so every subnet would pass the tolerance and the cheapest one be chosen.
Timed: ``search.run`` (wall and CPU). Afterwards every distinct configuration it evaluated is
re-measured after a full BatchNorm recalibration (reset, cumulative average over
``--recal-samples`` train samples of a fresh seeded loader = searchq's ``adapt_batchnorm``; the
first ``--recal-max`` of them if set, plus the chosen one).
"""

from __future__ import annotations

import os

os.environ.setdefault("NNCF_TORCH_LEGACY_TRACING", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _nncf_common as C  # noqa: E402
import torch  # noqa: E402
from run_nncf_bootstrapnas import NullWriter, recalibrate  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bnas-report", required=True, help="JSON of run_nncf_bootstrapnas.py")
    ap.add_argument("--task-file", default=str(C.DEFAULT_TASK_FILE))
    ap.add_argument("--seed", type=int, default=0, help="search seed (NNCF's search.seed)")
    ap.add_argument("--evals", type=int, default=200, help="num_evals")
    ap.add_argument("--population", type=int, default=40)
    ap.add_argument("--acc-delta", type=float, default=1.0)
    ap.add_argument(
        "--bn-adapt-samples",
        type=int,
        default=2000,
        help="search.batchnorm_adaptation.num_bn_adaptation_samples (NNCF default)",
    )
    ap.add_argument("--recal-samples", type=int, default=2000)
    ap.add_argument(
        "--recal-max",
        type=int,
        default=0,
        help="re-measure only the first N distinct configs (+ the best); 0 = all",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    report = json.loads(Path(args.bnas_report).read_text())
    task_seed = report["args"]["seed"]
    C.seed_everything(args.seed)

    from nncf import NNCFConfig
    from nncf.config.structures import BNAdaptationInitArgs
    from nncf.experimental.torch.nas.bootstrapNAS import BaseSearchAlgorithm
    from nncf.experimental.torch.nas.bootstrapNAS.search.supernet import TrainedSuperNet
    from nncf.torch.initialization import wrap_dataloader_for_init

    task = C.load_task(args.task_file, seed=task_seed)
    ckpt = Path(report["nncf_config"]["log_dir"])
    log_dir = Path(args.out).with_suffix("")
    log_dir.mkdir(parents=True, exist_ok=True)
    search_cfg = {
        "algorithm": "NSGA2", "num_evals": args.evals, "population": args.population,
        "seed": args.seed, "acc_delta": args.acc_delta,
        "batchnorm_adaptation": {"num_bn_adaptation_samples": args.bn_adapt_samples},
    }  # fmt: skip
    cfg_dict = json.loads(json.dumps(report["nncf_config"]))
    cfg_dict["log_dir"] = str(log_dir)
    cfg_dict["bootstrapNAS"]["search"] = search_cfg
    config = NNCFConfig.from_dict(cfg_dict)
    config.register_extra_structs(
        [BNAdaptationInitArgs(data_loader=wrap_dataloader_for_init(task.train_loader))]
    )
    config.device = "cpu"  # from_checkpoint reads nncf_config.device (NNCF's sample sets it)
    t0 = time.perf_counter()
    supernet = TrainedSuperNet.from_checkpoint(
        task.model, config, str(ckpt / "last_elasticity.pth"), str(ckpt / "last_model_weights.pth")
    )
    load_seconds = time.perf_counter() - t0
    model, ctrl = supernet._model, supernet._elasticity_ctrl
    meh = ctrl.multi_elasticity_handler
    algo = BaseSearchAlgorithm.from_config(model, ctrl, config)
    counts = {"validate": 0, "bn_adapt": 0}

    def validate_fn(m, loader) -> float:
        counts["validate"] += 1
        return C.top1(m, loader)

    bn_run = algo.bn_adaptation.run

    def counted_bn(m):
        counts["bn_adapt"] += 1
        return bn_run(m)

    algo.bn_adaptation.run = counted_bn
    ref_acc = report["recalibrated"]["max"]["accuracy"]
    machine_before = C.machine_state()
    t0, c0 = time.perf_counter(), time.process_time()
    _, best_config, best_vals = algo.run(
        validate_fn, task.val_loader, str(log_dir), ref_acc=ref_acc, tensorboard_writer=NullWriter()
    )
    search_seconds, search_cpu = time.perf_counter() - t0, time.process_time() - c0
    machine_after = C.machine_state()

    def fresh_loader() -> DataLoader:
        g = torch.Generator().manual_seed(task_seed)
        return DataLoader(task.train_loader.dataset, batch_size=64, shuffle=True, generator=g)

    records, distinct = [], {}
    for rec in algo.search_records:  # [config, "MACs", macs, "top1_acc", -acc]
        key = str(rec[0])
        records.append({"config": key, "macs_m": float(rec[2]), "reported": -float(rec[4])})
        distinct.setdefault(key, rec[0])
    recal, t1 = {}, time.perf_counter()
    for key, sub in list(distinct.items())[: args.recal_max or None]:
        meh.activate_subnet_for_config(sub)
        recalibrate(model, fresh_loader(), args.recal_samples)
        recal[key] = C.top1(model, task.val_loader)
    recal_seconds = time.perf_counter() - t1
    best_key = str(best_config)
    if best_key not in recal:
        meh.activate_subnet_for_config(best_config)
        recalibrate(model, fresh_loader(), args.recal_samples)
        recal[best_key] = C.top1(model, task.val_loader)
    C.write_json(args.out, {
        "command": " ".join([sys.executable, *sys.argv]), "args": vars(args),
        "search_config": search_cfg, "versions": C.versions(), "load_seconds": load_seconds,
        "machine_before": machine_before, "machine_after": machine_after,
        "ref_acc": ref_acc, "search_seconds": search_seconds, "search_cpu_seconds": search_cpu,
        "evaluations": len(records), "distinct": len(distinct), "counts": counts,
        "bad_requests": len(algo.bad_requests), "records": records, "recalibrated": recal,
        "recal_seconds_per_subnet": recal_seconds / max(1, len(distinct)),
        "best": {"config": best_key, "reported": [abs(v) for v in best_vals],
                 "recalibrated": recal[best_key]},
        "design_vars": meh.get_design_vars_info(),
    })  # fmt: skip
    print(f"[nncf-search] {len(records)} evaluations ({len(distinct)} distinct) in "
          f"{search_seconds:.1f} s; best {best_vals} -> recalibrated "
          f"{recal[best_key]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
