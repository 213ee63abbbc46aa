"""Export searchq's built-in task (trained model + data split) for the NNCF 2.19 venv.

Runs in the SEARCHQ venv:

    . .venv/bin/activate
    python experiments/nncf/export_task.py --task digits --seed 0 \
        --out experiments/nncf/out/digits_task.pt

Writes a plain dict of tensors / str / numbers that the NNCF venv loads with
``torch.load(path, weights_only=True)``:

    state_dict      trained weights (task.model, eval mode)
    x_train/y_train the 80 % train split (float32 N x 1 x 8 x 8 normalised, int64), dataset order
    x_val/y_val     the 20 % val split (360 images)
    model           builder name in searchq.tasks.models ("resnet20")
    model_kwargs    its kwargs ({"num_classes": 10, "in_channels": 1})
    meta            task name/seed, batch sizes, FP32 val top-1 measured here, torch version,
                    and the labels of the first train batch the task's seeded loader yields
                    (the NNCF side rebuilds that loader and checks it yields the same batch)
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

_MODELS = {"digits": "resnet20", "tiny_cnn": "tiny_cnn", "mbv2_tiny": "mbv2_tiny"}


def _top1(model: torch.nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    return 100.0 * correct / total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--task", default="digits", choices=sorted(_MODELS))
    parser.add_argument(
        "--seed", type=int, default=0, help="task seed (weights cache key + shuffling)"
    )
    parser.add_argument("--out", default="experiments/nncf/out/digits_task.pt")
    args = parser.parse_args()

    from searchq.tasks import get_task

    task = get_task(args.task, seed=args.seed)
    model = task.model.eval()
    train_ds = task.train_loader.dataset
    val_ds = task.val_loader.dataset
    x_train, y_train = train_ds.tensors
    x_val, y_val = val_ds.tensors

    # First batch the task's own (seeded, shuffled) train loader yields: the NNCF side checks that
    # its DataLoader(seeded generator) reproduces it. A fresh task, so its generator is untouched.
    fresh = get_task(args.task, seed=args.seed)
    _, first_y = next(iter(fresh.train_loader))

    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    digest = hashlib.sha256()
    for k in sorted(state_dict):
        digest.update(k.encode())
        digest.update(state_dict[k].cpu().contiguous().numpy().tobytes())

    payload = {
        "state_dict": state_dict,
        "x_train": x_train.clone(),
        "y_train": y_train.clone(),
        "x_val": x_val.clone(),
        "y_val": y_val.clone(),
        "model": _MODELS[args.task],
        "model_kwargs": {"num_classes": 10, "in_channels": int(x_train.shape[1])},
        "meta": {
            "task": args.task,
            "task_seed": args.seed,
            "train_batch_size": int(task.train_loader.batch_size),
            "val_batch_size": int(task.val_loader.batch_size),
            "fp32_val_top1": _top1(model, task.val_loader),
            "state_dict_sha256": digest.hexdigest(),
            "torch_version": str(torch.__version__),
            "first_train_batch_y": first_y.clone(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, out)
    print(
        f"wrote {out}: model={payload['model']} "
        f"train={tuple(x_train.shape)} val={tuple(x_val.shape)} "
        f"fp32_val_top1={payload['meta']['fp32_val_top1']:.2f}% sha256={digest.hexdigest()[:12]}"
    )


if __name__ == "__main__":
    main()
