"""NNCF 2.x-style training script on searchq: HAWQ QAT and multistep magnitude sparsity on digits.

Runs ``examples/train_with_searchq.py`` (a plain PyTorch loop whose compression calls are NNCF's
``create_compressed_model`` / ``register_default_init_args`` / ``scheduler.epoch_step`` /
``controller.loss``, imported from ``searchq.nncf_compat``) with the two example configs, and
checks each epoch's sparsity level against the schedule's formula.

    .venv/bin/python experiments/finetune.py            # writes experiments/results/finetune.md
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "finetune.md"
SPARSITY = ROOT / "examples" / "configs" / "digits_sparsity.json"
HAWQ = ROOT / "examples" / "configs" / "digits_hawq.json"


def _example():
    spec = importlib.util.spec_from_file_location(
        "train_with_searchq", ROOT / "examples" / "train_with_searchq.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_level(config: Path, epoch: int) -> float:
    from searchq.config import load_config

    sp = load_config(config).sparsity
    assert sp is not None and sp.schedule == "multistep"
    e = min(epoch, sp.sparsity_freeze_epoch)
    return sp.multistep_sparsity_levels[bisect.bisect_right(sp.multistep_steps, e)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sparsity-epochs", type=int, default=6)
    parser.add_argument("--hawq-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    example = _example()
    from searchq.tasks import get_task

    lines = [
        "# NNCF 2.x-style fine-tuning on searchq: digits ResNet-20",
        "",
        "Command: `.venv/bin/python experiments/finetune.py`",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')}, 1 torch thread, load average "
        f"{os.getloadavg()[0]:.1f}. Script: `examples/train_with_searchq.py` (plain PyTorch loop, "
        "SGD lr 0.01 momentum 0.9, batch 64; compression through `searchq.nncf_compat`'s "
        "`NNCFConfig.from_json`, `register_default_init_args`, `create_compressed_model`, "
        "`scheduler.epoch_step()` / `.step()`, `controller.loss()`). Start: the trained task "
        "model. Accuracy on the 360 validation images (1 image = 0.28 points).",
        "",
    ]
    for name, config, epochs in (
        (
            "magnitude sparsity, multistep 0.1 → 0.5 (`examples/configs/digits_sparsity.json`)",
            SPARSITY,
            args.sparsity_epochs,
        ),
        (
            "HAWQ 4/8 bits at bit-complexity ratio 1.5, then QAT "
            "(`examples/configs/digits_hawq.json`)",
            HAWQ,
            args.hawq_epochs,
        ),
    ):
        lines += [f"## {name}", ""]
        header = "| seed | fp32 | " + " | ".join(f"epoch {e}" for e in range(epochs)) + " | s |"
        lines += [header, "|" + " ---: |" * (epochs + 3)]
        levels: list[str] = []
        for seed in args.seeds:
            fp32 = get_task("digits", seed=seed).evaluator(get_task("digits", seed=seed).model)[
                "accuracy"
            ]
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                rows = example.main(
                    [
                        "--config",
                        str(config),
                        "--epochs",
                        str(epochs),
                        "--seed",
                        str(seed),
                        "--out",
                        tmp,
                    ]
                )
                took = time.perf_counter() - start
            cells = []
            for r in rows:
                cell = f"{r['accuracy']:.2f}"
                if "sparsity_level" in r:
                    want = _expected_level(config, r["epoch"])
                    assert r["sparsity_level_target"] == want, (r, want)
                    cell += f" @ {100 * r['sparsity_level']:.3f} %"
                    if seed == args.seeds[0]:
                        levels.append(
                            f"{r['epoch']}: schedule {want:.2f}, measured "
                            f"{r['sparsity_level']:.6f}, frozen {r['masks_frozen']}"
                        )
                if "bit_complexity_ratio" in r:
                    cell += f" (ratio {r['bit_complexity_ratio']:.3f})"
                cells.append(cell)
            lines.append(f"| {seed} | {fp32:.2f} | " + " | ".join(cells) + f" | {took:.0f} |")
            print(json.dumps({"config": config.name, "seed": seed, "rows": rows}))
        if levels:
            lines += ["", "Sparsity per epoch (seed 0): " + "; ".join(levels) + "."]
        lines.append("")
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
