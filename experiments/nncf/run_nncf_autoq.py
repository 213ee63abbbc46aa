"""NNCF 2.19.0 AutoQ (DDPG) precision init (+ optional QAT) on an exported searchq task.

Runs IN the NNCF venv:

    NNCF_TORCH_LEGACY_TRACING=1 PYTHONPATH=$PWD /work/nncf-venv/bin/python \
        experiments/nncf/run_nncf_autoq.py \
        --task-file experiments/nncf/out/digits_task.pt --ratio 0.15 --bits 2,4,8 \
        --iter-number 30 --warmup-iter-number 10 --eval-subset-ratio 1.0 --seed 0 --qat-epochs 0 \
        --out experiments/nncf/results/autoq_r0.15_s0.json

Seeding: NNCF's AutoQ draws its warm-up (random) actions from numpy's global RNG, the DDPG
exploration noise from scipy.stats.truncnorm (numpy's global RNG), and replay-buffer batches from
python ``random``; none of them is seeded by NNCF. Only torch is: ``DDPG.__init__`` calls
``torch.manual_seed(528)`` (hparam ``seed``, not settable from the NNCF config: the precision
schema has additionalProperties=false). This script wraps
``AutoQPrecisionInitializer.apply_init`` so that torch / numpy / random are seeded with
``--seed`` right before the search starts, and ``--ddpg-seed`` (default: NNCF's 528) is
injected into DDPG's own hparam override.

Timing: ``AutoQPrecisionInitializer.apply_init`` (environment build + all episodes) is timed;
``QuantizationEnv.evaluate_strategy`` (once per episode) is wrapped to log every episode.
"""

from __future__ import annotations

import os

os.environ.setdefault("NNCF_TORCH_LEGACY_TRACING", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _nncf_common as C  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

NNCF_DDPG_SEED = 528


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    C.common_args(parser)
    parser.add_argument(
        "--ratio", type=float, default=0.15, help="precision.compression_ratio (model size vs FP32)"
    )
    parser.add_argument("--iter-number", type=int, default=30, help="AutoQ episodes")
    parser.add_argument("--warmup-iter-number", type=int, default=10, help="random-policy episodes")
    parser.add_argument(
        "--eval-subset-ratio", type=float, default=1.0, help="fraction of val BATCHES per episode"
    )
    parser.add_argument(
        "--ddpg-seed", type=int, default=NNCF_DDPG_SEED, help="DDPG hparam 'seed' (NNCF: 528)"
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    C.seed_everything(args.seed)

    import nncf  # noqa: F401
    from nncf import NNCFConfig
    from nncf.torch import create_compressed_model
    from nncf.torch.automl.agent.ddpg.ddpg import DDPG
    from nncf.torch.automl.environment.quantization_env import QuantizationEnv
    from nncf.torch.initialization import register_default_init_args
    from nncf.torch.quantization.precision_init.autoq_init import AutoQPrecisionInitializer

    log_dir = Path(args.log_dir or C.HERE / "out" / "nncf_log")
    run_log_dir = log_dir / f"autoq_r{args.ratio}_s{args.seed}"

    task = C.load_task(args.task_file, seed=args.seed)
    criterion = nn.CrossEntropyLoss()
    fp32_top1 = C.top1(task.model, task.val_loader)
    print(f"[autoq] FP32 val top-1 {fp32_top1:.2f}%", flush=True)

    # ---- instrumentation ------------------------------------------------------------------------
    stats: dict = {"apply_init_seconds": [], "episodes": [], "eval_fn_calls": 0, "search": {}}

    orig_apply = AutoQPrecisionInitializer.apply_init

    def seeded_timed_apply(self):
        C.seed_everything(args.seed)  # NNCF leaves numpy / random unseeded for the warm-up + DDPG
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return orig_apply(self)
        finally:
            stats["apply_init_seconds"].append(time.perf_counter() - t0)
            stats.setdefault("apply_init_cpu_seconds", []).append(time.process_time() - c0)

    orig_ddpg_init = DDPG.__init__

    def ddpg_init(self, nb_states, nb_actions, iter_number=None, hparam_override=None):
        hparam_override = dict(hparam_override or {})
        hparam_override["seed"] = args.ddpg_seed
        stats["ddpg_hparam_override"] = {k: v for k, v in hparam_override.items()}
        orig_ddpg_init(self, nb_states, nb_actions, iter_number, hparam_override)
        stats["ddpg_warmup_iter_number"] = int(self.warmup_iter_number)
        stats["ddpg_replay_buffer_limit"] = int(self.memory.limit)

    orig_eval = QuantizationEnv.evaluate_strategy

    def logged_eval(self, collected_strategy, skip_constraint=True):
        t0 = time.perf_counter()
        obs, reward, done, info = orig_eval(
            self, collected_strategy, skip_constraint=skip_constraint
        )
        stats["episodes"].append(
            {
                "episode": len(stats["episodes"]),
                "accuracy": float(info["accuracy"]),
                "model_size_ratio": float(info["model_ratio"]),
                "bop_ratio": float(info["bop_ratio"]),
                "reward": float(reward),
                "bits": [int(b) for b in self.master_df["action"].tolist()],
                "seconds": time.perf_counter() - t0,
            }
        )
        stats["pretrained_score"] = float(self.pretrained_score)
        stats["num_quantizers_in_env"] = int(len(self.master_df))
        stats["min_max_model_size_ratio"] = [
            float(self.min_model_size / self.orig_model_size),
            float(self.max_model_size / self.orig_model_size),
        ]
        return obs, reward, done, info

    orig_search = AutoQPrecisionInitializer._search

    def spy_search(self, agent, env):
        best_policy, best_reward = orig_search(self, agent, env)
        stats["search"] = {
            "best_reward": float(best_reward),
            "best_policy": {str(k): int(v) for k, v in best_policy.items()},
        }
        return best_policy, best_reward

    AutoQPrecisionInitializer.apply_init = seeded_timed_apply
    AutoQPrecisionInitializer._search = spy_search
    DDPG.__init__ = ddpg_init
    QuantizationEnv.evaluate_strategy = logged_eval

    def autoq_eval_fn(model: nn.Module, loader) -> float:
        stats["eval_fn_calls"] += 1
        return C.top1(model, loader)

    # ---- config + compression --------------------------------------------------------------------
    precision = {
        "type": "autoq",
        "bits": C.parse_bits(args.bits),
        "iter_number": args.iter_number,
        "compression_ratio": args.ratio,
        "eval_subset_ratio": args.eval_subset_ratio,
        "warmup_iter_number": args.warmup_iter_number,
    }
    run_log_dir.mkdir(parents=True, exist_ok=True)
    cfg_dict = C.nncf_config_dict(
        task.input_shape,
        precision,
        args.num_init_samples,
        args.bn_adapt_samples,
        str(run_log_dir),
    )
    config = NNCFConfig.from_dict(cfg_dict)
    config = register_default_init_args(
        config,
        task.train_loader,
        criterion=criterion,
        autoq_eval_fn=autoq_eval_fn,
        val_loader=task.val_loader,
    )

    machine_before = C.machine_state()
    C.seed_everything(args.seed)
    t0 = time.perf_counter()
    c0 = time.process_time()
    ctrl, qmodel = create_compressed_model(task.model, config)
    create_seconds = time.perf_counter() - t0
    create_cpu_seconds = time.process_time() - c0
    machine_after = C.machine_state()
    episodes = stats["episodes"]
    best = None
    if episodes:
        # NNCF keeps the first episode with the strictly highest reward (monotone in accuracy).
        best_reward = -math.inf
        for ep in episodes:
            if ep["reward"] > best_reward:
                best_reward, best = ep["reward"], ep
    print(
        f"[autoq] create_compressed_model {create_seconds:.1f} s, precision init "
        f"{sum(stats['apply_init_seconds']):.1f} s, {len(episodes)} episodes, best acc "
        f"{best['accuracy'] if best else float('nan'):.2f}% "
        f"at episode {best['episode'] if best else None}",
        flush=True,
    )

    bits = C.collect_bits(ctrl, qmodel)
    top1_before = C.top1(qmodel, task.val_loader)
    print(f"[autoq] quantized val top-1 before QAT {top1_before:.2f}%", flush=True)
    loss_before = C.val_loss(qmodel, task.val_loader)
    size = C.weight_size_ratio(qmodel, bits["weight_bits"])
    bc_ratio = C.bit_complexity_ratio(ctrl, qmodel)

    C.seed_everything(args.seed)
    t1 = time.perf_counter()
    history = C.qat(
        qmodel,
        ctrl,
        task.train_loader,
        task.val_loader,
        args.qat_epochs,
        args.qat_lr,
        args.qat_momentum,
        criterion,
    )
    qat_seconds = time.perf_counter() - t1
    loss_after = C.val_loss(qmodel, task.val_loader)

    payload = {
        "algorithm": "nncf_autoq",
        "command": " ".join([sys.executable, *sys.argv]),
        "args": vars(args),
        "nncf_config": cfg_dict,
        "versions": C.versions(),
        "extension": C.extension_status(),
        "task_meta": task.meta,
        "fp32_top1": fp32_top1,
        "precision_init_seconds": sum(stats["apply_init_seconds"]),
        "precision_init_cpu_seconds": sum(stats.get("apply_init_cpu_seconds", [])),
        "precision_init_calls": len(stats["apply_init_seconds"]),
        "create_compressed_model_seconds": create_seconds,
        "create_compressed_model_cpu_seconds": create_cpu_seconds,
        "machine_before": machine_before,
        "machine_after": machine_after,
        "episodes_run": len(episodes),
        "eval_fn_calls": stats["eval_fn_calls"],
        "seconds_per_episode_eval": (sum(e["seconds"] for e in episodes) / len(episodes))
        if episodes
        else None,
        "autoq_pretrained_score": stats.get("pretrained_score"),
        "autoq_num_quantizers": stats.get("num_quantizers_in_env"),
        "autoq_min_max_model_size_ratio": stats.get("min_max_model_size_ratio"),
        "ddpg_seed": args.ddpg_seed,
        "ddpg_warmup_iter_number": stats.get("ddpg_warmup_iter_number"),
        "ddpg_replay_buffer_limit": stats.get("ddpg_replay_buffer_limit"),
        "best_episode": best["episode"] if best else None,
        "best_accuracy_found": best["accuracy"] if best else None,
        "best_episode_model_size_ratio": best["model_size_ratio"] if best else None,
        "best_episode_bop_ratio": best["bop_ratio"] if best else None,
        "best_reward": stats["search"].get("best_reward"),
        "best_policy": stats["search"].get("best_policy"),
        "episodes": episodes,
        "final_bit_complexity_ratio": bc_ratio,
        **size,
        **bits,
        "top1_before_qat": top1_before,
        "qat_epochs": args.qat_epochs,
        "top1_after_qat": history[-1]["val_top1"] if history else None,
        "qat_history": history,
        "qat_seconds": qat_seconds,
        "val_loss_before_qat": loss_before,
        "val_loss_after_qat": loss_after,
    }
    C.write_json(args.out, payload)


if __name__ == "__main__":
    main()
