"""NNCF 2.19.0 BootstrapNAS supernet training (progressive shrinking) on an exported searchq task.

Runs IN the NNCF venv:

    NNCF_TORCH_LEGACY_TRACING=1 PYTHONPATH=$PWD /work/nncf-venv/bin/python \
        experiments/nncf/run_nncf_bootstrapnas.py \
        --task-file experiments/nncf/out/digits_task_s0.pt --seed 0 --threads 1 \
        --out experiments/nncf/results/bootstrapnas_s0.json

The 3-stage / 7-epoch schedule of experiments/elastic.py: depth (d=1) 2 epochs, depth (d=2)
2 epochs, depth + width (d=2, w=3, reorg_weights, bn_adapt) 3 epochs; width multipliers
(1, 0.75, 0.5), every stage ``init_lr`` = ``--lr`` (NNCF's fallback 3.5e-6 does not move the
weights). NNCF's own loop (``EpochBasedTrainingAlgorithm.run``) drives the schedule; the epoch
function is NNCF's classification sample's (``compression_scheduler.step()`` = one random subnet
per step, CE + ``ctrl.loss()``, which is zero: no KD configured), SGD momentum 0.9 Nesterov,
weight decay 5e-5 (searchq's optimizer). Timed: every epoch function call and every optimizer step
(step to step, via a global optimizer post-hook), plus plain epochs of the full model (a copy, a
separately seeded loader) before and after. After training, the minimal / middle / maximal
subnets are evaluated after a full BatchNorm recalibration (reset, cumulative average over
``--bn-adapt-samples`` train samples of a fresh loader seeded like the task's = searchq's
``adapt_batchnorm`` on ``take_samples``). See README.md for the JSON fields.
"""

from __future__ import annotations

import os

os.environ.setdefault("NNCF_TORCH_LEGACY_TRACING", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _nncf_common as C  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

STAGES = [
    {"train_dims": ["depth"], "epochs": 2, "depth_indicator": 1},
    {"train_dims": ["depth"], "epochs": 2, "depth_indicator": 2},
    {
        "train_dims": ["depth", "width"],
        "epochs": 3,
        "depth_indicator": 2,
        "width_indicator": 3,
        "reorg_weights": True,
        "bn_adapt": True,
    },
]


class StepClock:
    """Seconds between consecutive optimizer steps (data + forward + backward + update)."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def __call__(self, *_: object) -> None:
        now = time.perf_counter()
        self.steps.append(now - self.last)
        self.last = now


class NullWriter:
    """``run()`` without tensorboard installed warns, then calls ``add_scalar`` on ``None``
    (``AttributeError: 'NoneType' object has no attribute 'add_scalar'``): pass this instead."""

    def add_scalar(self, *_: object, **__: object) -> None:
        pass


def sgd(model: nn.Module, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5
    )


def plain_epochs(model: nn.Module, loader: DataLoader, epochs: int, lr: float) -> dict:
    """Plain SGD epochs of the full (non-elastic) network: the cost reference."""
    model = copy.deepcopy(model).train()
    opt, clock, seconds = sgd(model, lr), StepClock(), []
    handle = register_optimizer_step_post_hook(clock)
    try:
        for _ in range(epochs):
            t0 = time.perf_counter()
            clock.start()
            for x, y in loader:
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            seconds.append(time.perf_counter() - t0)
    finally:
        handle.remove()
    return {"epochs": [[t, len(loader)] for t in seconds], "step_seconds": clock.steps}


@torch.no_grad()
def recalibrate(model: nn.Module, loader: DataLoader, num_samples: int) -> int:
    """searchq's adapt_batchnorm: reset running stats, cumulative average, model in eval."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    for x, _ in loader:
        if seen >= num_samples:
            break
        take = min(num_samples - seen, int(x.shape[0]))
        model(x[:take])
        seen += take
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
    model.eval()
    return seen


def middle_config(meh, dims) -> dict:
    """Width 0.75 in every group (NNCF's multiplier rule: int(w·0.75) down to a multiple of 8,
    at least min_width) and the last block of each stage skipped; NNCF's blocks are keyed by the
    residual stage (``Sequential[layerN]``) of their end node."""
    width = {}
    for gid, choices in meh.width_search_space.items():
        w = int(max(choices) * 0.75)
        w = max(w - w % 8, min(choices))
        assert w in choices, (gid, w, choices)
        width[gid] = w
    last: dict[str, int] = {}
    for i, block in enumerate(meh.depth_handler._skipped_blocks):
        stage = re.search(r"Sequential\[(\w+)\]", block.end_node_name)
        last[stage.group(1) if stage else "?"] = i
    return {dims.WIDTH: width, dims.DEPTH: sorted(last.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task-file", default=str(C.DEFAULT_TASK_FILE))
    ap.add_argument("--seed", type=int, default=0, help="seeds torch/numpy/random and the loaders")
    ap.add_argument("--stage-epochs", default="2,2,3", help="epochs of the three stages")
    ap.add_argument("--lr", type=float, default=0.05, help="init_lr of every stage")
    ap.add_argument("--min-width", type=int, default=8, help="width.min_width (NNCF default 32)")
    ap.add_argument("--bn-adapt-samples", type=int, default=2000)
    ap.add_argument("--plain-epochs", type=int, default=2, help="plain epochs before and after")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0 = default)")
    ap.add_argument("--log-dir", default=None, help="default: experiments/nncf/out/nncf_log")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    C.seed_everything(args.seed)

    from nncf import NNCFConfig
    from nncf.config.structures import BNAdaptationInitArgs
    from nncf.experimental.torch.nas.bootstrapNAS import EpochBasedTrainingAlgorithm
    from nncf.experimental.torch.nas.bootstrapNAS.elasticity.elasticity_dim import ElasticityDim
    from nncf.torch.initialization import wrap_dataloader_for_init
    from nncf.torch.model_creation import create_nncf_network

    task = C.load_task(args.task_file, seed=args.seed)
    run_dir = Path(args.log_dir or C.HERE / "out" / "nncf_log") / f"bootstrapnas_s{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)

    def fresh_loader() -> DataLoader:  # the task's train order, untouched by training
        g = torch.Generator().manual_seed(args.seed)
        return DataLoader(task.train_loader.dataset, batch_size=64, shuffle=True, generator=g)

    fp32 = {
        "accuracy": C.top1(task.model, task.val_loader),
        "loss": C.val_loss(task.model, task.val_loader),
    }
    machine_before = C.machine_state()
    # create_nncf_network turns task.model itself into the NNCFNetwork: keep a plain copy
    plain_model = copy.deepcopy(task.model)
    plain = [plain_epochs(plain_model, fresh_loader(), args.plain_epochs, args.lr)]

    epochs_per_stage = [int(e) for e in args.stage_epochs.split(",")]
    stages = [
        {**s, "epochs": e, "init_lr": args.lr}
        for s, e in zip(STAGES, epochs_per_stage, strict=True)
    ]
    training = {
        "algorithm": "progressive_shrinking",
        "progressivity_of_elasticity": ["depth", "width"],
        "batchnorm_adaptation": {"num_bn_adaptation_samples": args.bn_adapt_samples},
        "schedule": {"list_stage_descriptions": stages},
        "elasticity": {
            "available_elasticity_dims": ["depth", "width"],
            "width": {"width_multipliers": [1.0, 0.75, 0.5], "min_width": args.min_width},
        },
    }
    cfg_dict = {
        "log_dir": str(run_dir),
        "input_info": {"sample_size": task.input_shape},
        "bootstrapNAS": {"training": training},
    }
    config = NNCFConfig.from_dict(cfg_dict)
    bn_args = BNAdaptationInitArgs(data_loader=wrap_dataloader_for_init(task.train_loader))
    config.register_extra_structs([bn_args])
    C.seed_everything(args.seed)
    nncf_net = create_nncf_network(task.model, config)
    algo = EpochBasedTrainingAlgorithm.from_config(nncf_net, config)
    ctrl = algo._training_ctrl
    meh = ctrl.multi_elasticity_handler
    criterion = nn.CrossEntropyLoss()
    clock, epochs, validations = StepClock(), [], []

    def train_epoch_fn(loader, model, compression_ctrl, epoch, optimizer) -> None:
        # NNCF's classification sample (examples/torch/classification/main.py: train_epoch)
        t0, n0, total, n = time.perf_counter(), len(clock.steps), 0.0, 0
        model.train()
        clock.start()
        for x, y in loader:
            compression_ctrl.scheduler.step()
            loss = criterion(model(x), y) + compression_ctrl.loss()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, n = total + float(loss.detach()) * int(y.numel()), n + int(y.numel())
        epochs.append({
            "epoch": epoch, "stage": compression_ctrl.scheduler.current_stage_idx,
            "seconds": time.perf_counter() - t0, "steps": len(clock.steps) - n0,
            "train_loss": total / n, "lr_end": optimizer.param_groups[0]["lr"],
        })  # fmt: skip

    def val_fn(model, loader):  # called by NNCF right after its own BN adaptation
        acc, loss = C.top1(model, loader), C.val_loss(model, loader)
        flops, _ = meh.count_flops_and_weights_for_active_subnet()
        validations.append({"accuracy": acc, "loss": loss, "macs": flops // 2,
                            "config": str(meh.get_active_config())})  # fmt: skip
        return acc, acc, loss

    handle = register_optimizer_step_post_hook(clock)
    t0 = time.perf_counter()
    try:
        algo.run(train_epoch_fn, task.train_loader, val_fn, task.val_loader,
                 sgd(nncf_net, args.lr), str(run_dir), NullWriter())  # fmt: skip
    finally:
        handle.remove()
    run_seconds = time.perf_counter() - t0
    plain.append(plain_epochs(plain_model, fresh_loader(), args.plain_epochs, args.lr))
    machine_after = C.machine_state()

    subnets = {}
    dims = ElasticityDim
    for name in ("min", "middle", "max"):
        if name == "min":
            meh.activate_minimum_subnet()
        elif name == "max":
            meh.activate_supernet()
        else:
            meh.activate_subnet_for_config(middle_config(meh, dims))
        n = recalibrate(nncf_net, fresh_loader(), args.bn_adapt_samples)
        flops, params = meh.count_flops_and_weights_for_active_subnet()
        subnets[name] = {
            "accuracy": C.top1(nncf_net, task.val_loader),
            "loss": C.val_loss(nncf_net, task.val_loader),
            "macs": flops // 2, "params": params, "bn_samples": n,
            "config": str(meh.get_active_config()),
        }  # fmt: skip
        print(f"[bnas] {name}: {subnets[name]['accuracy']:.2f} % after full recalibration, "
              f"{subnets[name]['macs']} MACs", flush=True)  # fmt: skip

    C.write_json(args.out, {
        "algorithm": "nncf_bootstrapnas_progressive_shrinking",
        "command": " ".join([sys.executable, *sys.argv]), "args": vars(args),
        "nncf_config": cfg_dict, "versions": C.versions(), "task_meta": task.meta, "fp32": fp32,
        "machine_before": machine_before, "machine_after": machine_after,
        "search_space": {"width": {str(k): v for k, v in meh.width_search_space.items()},
                         "depth": meh.depth_search_space,
                         "blocks": [str(b) for b in meh.depth_handler._skipped_blocks]},
        "run_seconds": run_seconds, "epochs": epochs, "step_seconds": clock.steps,
        "plain": {"epochs": [e for p in plain for e in p["epochs"]],
                  "step_seconds": [s for p in plain for s in p["step_seconds"]]},
        # the training loop validates min then max after every epoch (its own BN adaptation)
        "nncf_validations": validations,
        "nncf_reported": {"min": validations[-2], "max": validations[-1]},
        "recalibrated": subnets,
    })  # fmt: skip


if __name__ == "__main__":
    main()
