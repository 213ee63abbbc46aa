"""A plain PyTorch training script on the digits task; ``--config`` adds compression.

This is how training frameworks use a compression config (MMDetection's ``nncf_config``): with
no config the script trains as it always did; with one, a single ``if config:`` block wraps the
model, and the loop calls the scheduler and adds the compression loss. The calls are NNCF 2.x's:
swap the ``searchq.nncf_compat`` import for ``from nncf import NNCFConfig`` and
``from nncf.torch import create_compressed_model, register_default_init_args`` and the script
runs on NNCF unchanged.

    python examples/train_with_searchq.py --epochs 4
    python examples/train_with_searchq.py --config examples/configs/digits_sparsity.json \
        --epochs 4 --out runs/example
    python examples/train_with_searchq.py --config ... --epochs 6 \
        --resume runs/example/last.pth       # continues the schedule where it stopped
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from searchq.nncf_compat import NNCFConfig, create_compressed_model, register_default_init_args
from searchq.tasks import get_task


def validate(model: nn.Module, loader: torch.utils.data.DataLoader) -> tuple[float, float]:
    model.eval()
    correct, total, loss = 0, 0, 0.0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss += nn.functional.cross_entropy(out, y, reduction="sum").item()
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
    return 100.0 * correct / total, loss / total


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="NNCF-style compression config (JSON)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/example", help="checkpoints and logs")
    parser.add_argument("--resume", help="checkpoint written by this script")
    parser.add_argument("--export", help="write the compressed model as ONNX here")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    task = get_task("digits", seed=args.seed)  # a trained ResNet-20 and its loaders
    model, train_loader, val_loader = task.model, task.train_loader, task.val_loader
    criterion = nn.CrossEntropyLoss()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = torch.load(args.resume, weights_only=True) if args.resume else None

    compression_ctrl = None
    if args.config:
        nncf_config = NNCFConfig.from_json(args.config)
        nncf_config["log_dir"] = str(out)
        nncf_config = register_default_init_args(
            nncf_config, train_loader, criterion=criterion, val_loader=val_loader
        )
        compression_ctrl, model = create_compressed_model(
            model,
            nncf_config,
            compression_state=checkpoint["compression_state"] if checkpoint else None,
        )

    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        train_loader.generator.set_state(checkpoint["loader_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        start_epoch = checkpoint["epoch"] + 1

    history = []
    for epoch in range(start_epoch, args.epochs):
        if compression_ctrl is not None:
            compression_ctrl.scheduler.epoch_step()
        model.train()
        for x, y in train_loader:
            if compression_ctrl is not None:
                compression_ctrl.scheduler.step()
            loss = criterion(model(x), y)
            if compression_ctrl is not None:
                loss = loss + compression_ctrl.loss()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        acc, val_loss = validate(model, val_loader)
        row = {"epoch": epoch, "accuracy": acc, "val_loss": val_loss}
        if compression_ctrl is not None:
            stats = compression_ctrl.statistics()
            row.update({k: v for k, v in stats.totals.items() if k != "epoch"})
        history.append(row)
        print(json.dumps(row))
        state = {
            "epoch": epoch,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "loader_rng": train_loader.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if compression_ctrl is not None:
            state["compression_state"] = compression_ctrl.get_compression_state()
        torch.save(state, out / "last.pth")

    if compression_ctrl is not None:
        print(compression_ctrl.statistics().to_str())
        if args.export:
            compression_ctrl.export_model(args.export)
    return history


if __name__ == "__main__":
    main()
