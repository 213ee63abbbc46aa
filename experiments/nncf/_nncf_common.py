"""Shared helpers for the NNCF 2.19 side of the benchmarks (runs IN the NNCF venv).

Imported by run_nncf_hawq.py / run_nncf_autoq.py; run directly with ``--warmup`` by setup_venv.sh
to print versions and build NNCF's CPU extension once (so no timed run pays for that build).

Nothing here is NNCF code: it only imports nncf and calls its public / legacy torch API.
"""

from __future__ import annotations

import os

# NNCF 2.19's legacy torch path (the one that still has HAWQ / AutoQ) is only used with this set;
# it must be in the environment before nncf is imported.
os.environ.setdefault("NNCF_TORCH_LEGACY_TRACING", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

# NNCF 2.19's AutoQ env triggers thousands of pandas FutureWarnings per run, and
# create_compressed_model a deprecation FutureWarning; none affects results.
warnings.filterwarnings("ignore", category=FutureWarning)

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_TASK_FILE = HERE / "out" / "digits_task.pt"


# --------------------------------------------------------------------------------------------------
# seeding, model, data


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch's global RNG."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_models_module():
    """Load ``searchq/tasks/models.py`` by file path.

    ``import searchq.tasks.models`` would run ``searchq/tasks/__init__`` -> builtin -> train, which
    imports tqdm (not in the NNCF venv: ``ModuleNotFoundError: No module named 'tqdm'``). models.py
    itself only needs torch and ``searchq.errors``, so load it by path with the repo on sys.path.
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    path = REPO / "searchq" / "tasks" / "models.py"
    spec = importlib.util.spec_from_file_location("_searchq_tasks_models", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@dataclass
class Task:
    model: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    meta: dict[str, Any]
    input_shape: list[int]


def load_task(
    path: str | Path, seed: int, train_batch_size: int = 64, val_batch_size: int = 256
) -> Task:
    """Rebuild the exported model (eval mode) and seeded loaders from export_task.py's file."""
    blob = torch.load(path, weights_only=True)
    models = load_models_module()
    model = getattr(models, blob["model"])(**blob["model_kwargs"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    # Same construction as searchq.tasks.digits.digits_loaders: own seeded generator per loader.
    train_loader = DataLoader(
        TensorDataset(blob["x_train"], blob["y_train"]),
        batch_size=train_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        num_workers=0,
    )
    val_loader = DataLoader(
        TensorDataset(blob["x_val"], blob["y_val"]),
        batch_size=val_batch_size,
        shuffle=False,
        generator=torch.Generator().manual_seed(seed),
        num_workers=0,
    )
    meta = dict(blob.get("meta", {}))
    expected = meta.pop("first_train_batch_y", None)
    if (
        expected is not None
        and meta.get("task_seed") == seed
        and train_batch_size == meta.get("train_batch_size")
    ):
        probe = DataLoader(
            train_loader.dataset,
            batch_size=train_batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        meta["loader_matches_searchq_first_batch"] = bool(
            torch.equal(next(iter(probe))[1], expected)
        )
    input_shape = [1, *blob["x_train"].shape[1:]]
    return Task(model, train_loader, val_loader, meta, input_shape)


def top1(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy in percent; leaves the model in eval mode."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    return 100.0 * correct / total


def val_loss(model: nn.Module, loader: DataLoader) -> float:
    """Mean cross-entropy over the loader (less noisy than top-1 on 360 images); eval mode."""
    model.eval()
    total = 0.0
    n = 0
    with torch.no_grad():
        for x, y in loader:
            total += float(nn.functional.cross_entropy(model(x), y, reduction="sum"))
            n += int(y.numel())
    return total / n


# --------------------------------------------------------------------------------------------------
# NNCF bits


_SCOPE_PART = re.compile(r"^[A-Za-z_][\w.]*\[(?P<name>[^\]]+)\]$")


def scope_to_module_name(scope: str) -> str:
    """Map an NNCF scope to our module name.

    ``ResNet/Sequential[layer1]/BasicBlock[0]/NNCFConv2d[conv1]/conv2d_0|WEIGHT``
    -> ``layer1.0.conv1``.

    The first part is the root class; ``Class[attr]`` parts are attribute names; the last part
    (``conv2d_0``) is the op. ``|WEIGHT`` / ``|OUTPUT`` suffixes are dropped.
    """
    scope = scope.split("|", 1)[0]
    parts = scope.split("/")[1:]
    names = []
    for part in parts:
        match = _SCOPE_PART.match(part)
        if match:
            names.append(match.group("name"))
    return ".".join(names)


def module_names_by_id(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


def collect_bits(ctrl, model: nn.Module) -> dict[str, Any]:
    """Chosen bits per weight quantizer (``<module>.weight``) and per activation quantizer.

    The module name is taken from the quantized module's identity in ``model.named_modules()`` and
    cross-checked against the parsed NNCF scope.
    """
    by_id = module_names_by_id(model)
    weights: dict[str, int] = {}
    weight_scopes: dict[str, str] = {}
    mismatches = []
    for wq_id, info in ctrl.weight_quantizers.items():
        scope = str(wq_id)
        parsed = scope_to_module_name(scope)
        found = by_id.get(id(info.quantized_module))
        name = found if found is not None else parsed
        if found is not None and found != parsed:
            mismatches.append({"scope": scope, "parsed": parsed, "named_modules": found})
        weights[f"{name}.weight"] = int(info.quantizer_module_ref.num_bits)
        weight_scopes[f"{name}.weight"] = scope
    activations = {
        str(aq_id): int(info.quantizer_module_ref.num_bits)
        for aq_id, info in ctrl.non_weight_quantizers.items()
    }
    out: dict[str, Any] = {
        "weight_bits": weights,
        "weight_scopes": weight_scopes,
        "activation_bits": activations,
    }
    if mismatches:
        out["scope_name_mismatches"] = mismatches
    return out


def weight_size_ratio(model: nn.Module, weight_bits: dict[str, int]) -> dict[str, float]:
    """Quantized / FP32 weight bits over the quantized weights (AutoQ's model-size ratio)."""
    params = dict(model.named_parameters())
    q_bits = fp_bits = 0
    for name, bits in weight_bits.items():
        n = params[name].numel()
        q_bits += n * bits
        fp_bits += n * 32
    return {
        "weight_size_ratio_vs_fp32": q_bits / fp_bits,
        "weight_params": fp_bits // 32,
        "weight_bits_total": q_bits,
    }


def bit_complexity_ratio(ctrl, model: nn.Module) -> float | None:
    """NNCF's HAWQ ratio (bit complexity of all-INT8 / of this model) for the final controller.

    Same formula as NNCF's ``precision_init.compression_ratio.CompressionRatioCalculator``:
    sum over weight quantizers of FLOPs(layer) * max(weight bits, bits of the adjacent activation
    quantizer), INT8 = 8 * sum FLOPs. (The final ``QuantizationController`` has no
    ``get_quantizer_setup_for_current_state``, so the calculator itself cannot be fed; the adjacent
    activation is taken from the controller's groups of adjacent quantizers, max over the group.)
    """
    try:
        flops = model.nncf.get_flops_per_module()
        complexity = int8 = 0.0
        for group in ctrl.groups_of_adjacent_quantizers:
            a_bits = max((int(q.num_bits) for _, q in group.activation_quantizers), default=0)
            for wq_id, wq in group.weight_quantizers:
                f = flops[wq_id.target_node_name]
                complexity += max(int(wq.num_bits), a_bits) * f
                int8 += 8 * f
        return float(int8 / complexity) if complexity else None
    except Exception as exc:  # pragma: no cover - diagnostic only
        print(f"[warn] bit-complexity ratio unavailable: {exc!r}", file=sys.stderr)
        return None


def nncf_config_dict(
    input_shape: list[int], precision: dict, num_init_samples: int, bn_samples: int, log_dir: str
) -> dict:
    # log_dir: create_compressed_model calls set_debug_log_dir(config.get("log_dir", ".")) and
    # writes original_graph.dot / compressed_graph.dot there, HAWQ its bitwidth_per_scope.json;
    # without it all three land in the current directory.
    return {
        "log_dir": log_dir,
        "input_info": {"sample_size": input_shape},
        "target_device": "TRIAL",
        "compression": {
            "algorithm": "quantization",
            "initializer": {
                "precision": precision,
                "range": {"num_init_samples": num_init_samples},
                "batchnorm_adaptation": {"num_bn_adaptation_samples": bn_samples},
            },
        },
    }


def qat(
    model: nn.Module,
    ctrl,
    train_loader: DataLoader,
    val_loader: DataLoader,
    epochs: int,
    lr: float,
    momentum: float,
    criterion: nn.Module,
) -> list[dict[str, float]]:
    """Plain QAT: SGD over all parameters (quantizer scales too), CE + ctrl.loss(), scheduler."""
    history = []
    if epochs <= 0:
        return history
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        ctrl.scheduler.epoch_step()
        model.train()
        total_loss = 0.0
        n = 0
        for x, y in train_loader:
            ctrl.scheduler.step()
            optimizer.zero_grad()
            loss = criterion(model(x), y) + ctrl.loss()
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * int(y.numel())
            n += int(y.numel())
        acc = top1(model, val_loader)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total_loss / n,
                "val_top1": acc,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"[qat] epoch {epoch + 1}/{epochs} loss={total_loss / n:.4f} val_top1={acc:.2f}%",
            flush=True,
        )
    return history


def versions() -> dict[str, str]:
    import nncf
    import sklearn

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nncf": nncf.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "NNCF_TORCH_LEGACY_TRACING": os.environ.get("NNCF_TORCH_LEGACY_TRACING", ""),
        "torch_num_threads": str(torch.get_num_threads()),
    }


def machine_state() -> dict[str, Any]:
    """Load average + a 2-thread conv micro-probe: flags runs timed on a busy (shared) machine.

    On this 2-core box another process using one core makes every multi-threaded torch op wait at
    OpenMP barriers: a 64x16x8x8 3x3 conv goes from ~0.1 ms to ~30 ms. A probe well above ~1 ms
    means the timings of that run are not trustworthy.
    """
    conv = nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(64, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in range(5):
            conv(x)
        t0 = time.perf_counter()
        for _ in range(50):
            conv(x)
    probe_ms = (time.perf_counter() - t0) / 50 * 1e3
    try:
        load = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = []
    return {
        "loadavg": load,
        "conv_probe_ms": round(probe_ms, 4),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task-file", default=str(DEFAULT_TASK_FILE), help="file written by export_task.py"
    )
    parser.add_argument("--bits", default="2,4,8", help="comma-separated candidate bitwidths")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds torch/numpy/random and the loaders"
    )
    parser.add_argument(
        "--num-init-samples", type=int, default=256, help="initializer.range.num_init_samples"
    )
    parser.add_argument(
        "--bn-adapt-samples",
        type=int,
        default=2000,
        help="initializer.batchnorm_adaptation.num_bn_adaptation_samples",
    )
    parser.add_argument("--qat-epochs", type=int, default=0)
    parser.add_argument("--qat-lr", type=float, default=1e-3)
    parser.add_argument("--qat-momentum", type=float, default=0.9)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads (0 = leave torch's default)"
    )
    parser.add_argument(
        "--log-dir",
        default=None,
        help="NNCF debug/log dir (default: experiments/nncf/out/nncf_log)",
    )
    parser.add_argument("--out", required=True, help="JSON file to write")


def parse_bits(text: str) -> list[int]:
    return sorted({int(b) for b in text.split(",") if b.strip()})


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    print(f"wrote {path}")


# --------------------------------------------------------------------------------------------------
# warm-up: versions + one-time extension build


def warmup() -> None:
    import nncf
    from nncf import NNCFConfig
    from nncf.torch import create_compressed_model
    from nncf.torch.initialization import register_default_init_args

    print(json.dumps(versions(), indent=2))
    # 1 thread: robust on a shared 2-core box; the warm-up only has to build/load the extension.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = torch.randint(0, 10, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = load_models_module().resnet20(num_classes=10, in_channels=1).eval()
    warmup_log_dir = HERE / "out" / "nncf_log" / "warmup"
    warmup_log_dir.mkdir(parents=True, exist_ok=True)
    cfg = NNCFConfig.from_dict(
        {
            "log_dir": str(warmup_log_dir),
            "input_info": {"sample_size": [1, 1, 8, 8]},
            "target_device": "TRIAL",
            "compression": {
                "algorithm": "quantization",
                "initializer": {"range": {"num_init_samples": 16}},
            },
        }
    )
    cfg = register_default_init_args(cfg, loader, criterion=nn.CrossEntropyLoss())
    t0 = time.perf_counter()
    ctrl, qmodel = create_compressed_model(model, cfg)
    qmodel.train()
    loss = nn.functional.cross_entropy(qmodel(x), y)
    loss.backward()  # backward too: the extension's backward kernels get loaded
    seconds = time.perf_counter() - t0
    print(f"warm-up create_compressed_model + fwd/bwd: {seconds:.1f} s (incl. any extension build)")
    print(f"NNCF CPU quantization extension: {extension_status()}  (nncf {nncf.__version__})")


def extension_status() -> str:
    """'compiled (<build dir>)', 'reference fallback' or 'not loaded'.

    'reference fallback': the build failed; NNCF only warns and uses (slower) torch ops.
    """
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU
    from nncf.torch.quantization.reference import ReferenceQuantizedFunctions

    ns = QuantizedFunctionsCPU._loaded_namespace
    if ns is None:
        return "not loaded"
    if ns is ReferenceQuantizedFunctions:
        return "reference fallback"
    return f"compiled ({QuantizedFunctionsCPU._loader.get_build_dir()})"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", action="store_true")
    if ap.parse_args().warmup:
        warmup()
