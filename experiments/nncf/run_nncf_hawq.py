"""NNCF 2.19.0 HAWQ precision init (+ optional QAT) on an exported searchq task.

Runs IN the NNCF venv:

    NNCF_TORCH_LEGACY_TRACING=1 PYTHONPATH=$PWD /work/nncf-venv/bin/python \
        experiments/nncf/run_nncf_hawq.py \
        --task-file experiments/nncf/out/digits_task.pt --ratio 1.5 --bits 2,4,8 \
        --num-data-points 100 --iter-number 200 --tolerance 1e-4 --seed 0 --qat-epochs 0 \
        --out experiments/nncf/results/hawq_r1.5_s0.json

Timing: ``HAWQPrecisionInitializer.apply_init`` (Hessian traces + noise + choice) is wrapped with a
timer; ``HessianTraceEstimator._calc_avg_traces_per_param`` (one Hutchinson iteration) is wrapped to
count iterations; ``HAWQPrecisionInitializer.choose_qconfig_sequence`` is wrapped to read the
bit-complexity ratio NNCF reports for the chosen sequence. See README.md for every JSON field.
"""

from __future__ import annotations

import os

os.environ.setdefault("NNCF_TORCH_LEGACY_TRACING", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _nncf_common as C  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    C.common_args(parser)
    parser.add_argument(
        "--ratio",
        type=float,
        default=1.5,
        help="precision.compression_ratio (bit-complexity vs INT8)",
    )
    parser.add_argument("--num-data-points", type=int, default=100)
    parser.add_argument("--iter-number", type=int, default=200, help="max Hutchinson iterations")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument(
        "--bitwidth-assignment-mode",
        default=None,
        choices=["liberal", "strict"],
        help="NNCF default: liberal",
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    C.seed_everything(args.seed)

    import nncf  # noqa: F401
    from nncf import NNCFConfig
    from nncf.torch import create_compressed_model
    from nncf.torch.initialization import register_default_init_args
    from nncf.torch.quantization.algo import DefaultQuantizerSetupDisambiguator
    from nncf.torch.quantization.hessian_trace import HessianTraceEstimator
    from nncf.torch.quantization.precision_init.hawq_init import HAWQPrecisionInitializer

    log_dir = Path(args.log_dir or C.HERE / "out" / "nncf_log")
    run_log_dir = log_dir / f"hawq_r{args.ratio}_s{args.seed}"

    task = C.load_task(args.task_file, seed=args.seed)
    criterion = nn.CrossEntropyLoss()
    fp32_top1 = C.top1(task.model, task.val_loader)
    print(f"[hawq] FP32 val top-1 {fp32_top1:.2f}%", flush=True)

    # ---- instrumentation (wrappers only; NNCF itself is unchanged) -------------------------------
    stats: dict = {
        "apply_init_seconds": [],
        "hutchinson_iterations": 0,
        "trace_seconds": [],
        "select_setup_seconds": [],
    }
    chosen: dict = {}

    orig_apply = HAWQPrecisionInitializer.apply_init

    def timed_apply(self):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return orig_apply(self)
        finally:
            stats["apply_init_seconds"].append(time.perf_counter() - t0)
            stats.setdefault("apply_init_cpu_seconds", []).append(time.process_time() - c0)

    orig_calc = HessianTraceEstimator._calc_avg_traces_per_param

    def counted_calc(self):
        stats["hutchinson_iterations"] += 1
        return orig_calc(self)

    orig_traces = HessianTraceEstimator.get_average_traces

    def timed_traces(self, *a, **k):
        t0 = time.perf_counter()
        try:
            out = orig_traces(self, *a, **k)
            stats["avg_traces"] = [float(v) for v in out]
            return out
        finally:
            stats["trace_seconds"].append(time.perf_counter() - t0)

    orig_choose = HAWQPrecisionInitializer.choose_qconfig_sequence  # staticmethod -> plain function

    def spy_choose(metric_per_qconfig_sequences, compression_ratio_per_qconfig, compression_ratio):
        idx = orig_choose(
            metric_per_qconfig_sequences, compression_ratio_per_qconfig, compression_ratio
        )
        chosen["index"] = int(idx)
        chosen["num_candidate_sequences"] = len(compression_ratio_per_qconfig)
        chosen["ratio"] = float(compression_ratio_per_qconfig[idx])
        chosen["ratio_range"] = [
            float(min(compression_ratio_per_qconfig)),
            float(max(compression_ratio_per_qconfig)),
        ]
        chosen["hawq_metric"] = float(metric_per_qconfig_sequences[idx])
        return idx

    orig_select = DefaultQuantizerSetupDisambiguator.select_final_quantizer_setup

    def timed_select(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return orig_select(self, *a, **k)
        finally:
            stats["select_setup_seconds"].append(time.perf_counter() - t0)

    HAWQPrecisionInitializer.apply_init = timed_apply
    HessianTraceEstimator._calc_avg_traces_per_param = counted_calc
    HessianTraceEstimator.get_average_traces = timed_traces
    HAWQPrecisionInitializer.choose_qconfig_sequence = staticmethod(spy_choose)
    DefaultQuantizerSetupDisambiguator.select_final_quantizer_setup = timed_select

    # ---- config + compression --------------------------------------------------------------------
    precision = {
        "type": "hawq",
        "bits": C.parse_bits(args.bits),
        "compression_ratio": args.ratio,
        "num_data_points": args.num_data_points,
        "iter_number": args.iter_number,
        "tolerance": args.tolerance,
    }
    if args.bitwidth_assignment_mode:
        precision["bitwidth_assignment_mode"] = args.bitwidth_assignment_mode
    run_log_dir.mkdir(parents=True, exist_ok=True)
    cfg_dict = C.nncf_config_dict(
        task.input_shape,
        precision,
        args.num_init_samples,
        args.bn_adapt_samples,
        str(run_log_dir),
    )
    config = NNCFConfig.from_dict(cfg_dict)
    config = register_default_init_args(config, task.train_loader, criterion=criterion)

    machine_before = C.machine_state()
    C.seed_everything(args.seed)
    t0 = time.perf_counter()
    c0 = time.process_time()
    ctrl, qmodel = create_compressed_model(task.model, config)
    create_seconds = time.perf_counter() - t0
    create_cpu_seconds = time.process_time() - c0
    machine_after = C.machine_state()
    print(
        f"[hawq] create_compressed_model {create_seconds:.1f} s, precision init "
        f"{sum(stats['apply_init_seconds']):.1f} s, "
        f"{stats['hutchinson_iterations']} Hutchinson iterations",
        flush=True,
    )

    bits = C.collect_bits(ctrl, qmodel)
    top1_before = C.top1(qmodel, task.val_loader)
    print(f"[hawq] quantized val top-1 before QAT {top1_before:.2f}%", flush=True)
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
        "algorithm": "nncf_hawq",
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
        "hessian_trace_seconds": sum(stats["trace_seconds"]),
        "hutchinson_iterations": stats["hutchinson_iterations"],
        "seconds_per_hutchinson_iteration": (
            sum(stats["trace_seconds"]) / stats["hutchinson_iterations"]
            if stats["hutchinson_iterations"]
            else None
        ),
        "select_final_setup_seconds": sum(stats["select_setup_seconds"]),
        "create_compressed_model_seconds": create_seconds,
        "create_compressed_model_cpu_seconds": create_cpu_seconds,
        "machine_before": machine_before,
        "machine_after": machine_after,
        "avg_hessian_traces": stats.get("avg_traces"),
        "hawq_chosen_ratio": chosen.get("ratio"),
        "hawq_ratio_range": chosen.get("ratio_range"),
        "hawq_num_candidate_sequences": chosen.get("num_candidate_sequences"),
        "hawq_chosen_metric": chosen.get("hawq_metric"),
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
