"""NNCF 2.x-style API: create_compressed_model, the controller's schedules, checkpoints, strip."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from searchq.compress import (
    CompressionController,
    NNCFConfig,
    create_compressed_model,
    register_default_init_args,
)
from searchq.compress.controller import POLY_DROP_POWER, diff_config
from searchq.errors import CheckpointError, ConfigError
from searchq.tasks import get_task

QUANT = {
    "algorithm": "quantization",
    "weights": {"bits": 8},
    "activations": {"bits": 8},
    "initializer": {
        "range": {"num_init_samples": 128},
        "batchnorm_adaptation": {"num_bn_adaptation_samples": 128},
    },
}
SPARSITY = {
    "algorithm": "magnitude_sparsity",
    "sparsity_init": 0.1,
    "params": {
        "schedule": "multistep",
        "multistep_steps": [1, 2, 3],
        "multistep_sparsity_levels": [0.1, 0.2, 0.35, 0.5],
        "sparsity_freeze_epoch": 3,
    },
}


def _config(*sections: dict, **root: object) -> NNCFConfig:
    return NNCFConfig.from_dict(
        {"input_info": {"sample_size": [1, 1, 8, 8]}, "compression": list(sections), **root}
    )


def _compress(config: NNCFConfig, tmp_path: Path, state: dict | None = None):
    task = get_task("tiny_cnn")
    config = register_default_init_args(
        config, task.train_loader, criterion=nn.CrossEntropyLoss(), val_loader=task.val_loader
    )
    ctrl, model = create_compressed_model(
        task.model, config, compression_state=state, log_dir=tmp_path
    )
    return task, ctrl, model


def _epochs(task, ctrl: CompressionController, model: nn.Module, opt, epochs: int) -> list:
    levels = []
    for _ in range(epochs):
        ctrl.scheduler.epoch_step()
        levels.append(ctrl.statistics().totals)
        model.train()
        for x, y in task.train_loader:
            ctrl.scheduler.step()
            loss = nn.functional.cross_entropy(model(x), y) + ctrl.loss()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return levels


def test_register_default_init_args_converts_a_dict_and_keeps_loaders() -> None:
    task = get_task("tiny_cnn")
    cfg = register_default_init_args(
        {"compression": {"algorithm": "magnitude_sparsity"}}, task.train_loader
    )
    assert isinstance(cfg, NNCFConfig)
    from searchq.compress import InitArgs

    assert cfg.get_extra_struct(InitArgs).train_loader is task.train_loader


def test_from_json_reports_a_typo_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{\n  // comment\n  "compression": {"algorithm": "quantization",\n'
        '    "weigths": {"bits": 8}}\n}\n'
    )
    with pytest.raises(ConfigError) as err:
        NNCFConfig.from_json(path)
    text = str(err.value)
    assert "weigths" in text and "weights" in text and ":4:" in text


def test_sparsity_levels_follow_the_multistep_schedule(tmp_path: Path) -> None:
    task, ctrl, model = _compress(_config(SPARSITY), tmp_path)
    n = sum(m.mask.numel() for m in ctrl.sparsifier.masks.values())
    assert abs(ctrl.sparsifier.sparsity() - 0.1) <= 1 / n  # sparsity_init applied at once
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    totals = _epochs(task, ctrl, model, opt, 5)
    expected = [0.1, 0.2, 0.35, 0.5, 0.5]
    assert [t["sparsity_level_target"] for t in totals] == expected
    for t, level in zip(totals, expected, strict=True):
        assert abs(t["sparsity_level"] - level) <= 1 / n
    assert [t["masks_frozen"] for t in totals] == [False, False, False, True, True]
    # frozen masks: more training does not change them
    masks = {k: v.clone() for k, v in ctrl.sparsifier.mask_state().items()}
    _epochs(task, ctrl, model, opt, 1)
    assert all(torch.equal(masks[k], v) for k, v in ctrl.sparsifier.mask_state().items())


def test_staged_quantization_and_optimizer_rules(tmp_path: Path) -> None:
    quant = copy.deepcopy(QUANT)
    quant["params"] = {
        "activations_quant_start_epoch": 1,
        "weights_quant_start_epoch": 2,
        "lr_poly_drop_start_epoch": 2,
        "lr_poly_drop_duration_epochs": 2,
        "disable_wd_start_epoch": 1,
        "base_lr": 0.02,
        "base_wd": 1e-4,
    }
    task, ctrl, model = _compress(_config(quant), tmp_path)
    opt = ctrl.make_optimizer()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 0.02
    seen = []
    for _ in range(4):
        ctrl.scheduler.epoch_step()
        qs = ctrl.qmodel
        seen.append(
            (
                all(q.enabled for q in qs.activation_quantizers.values()),
                all(q.enabled for q in qs.weight_quantizers.values()),
                opt.param_groups[0]["lr"],
                opt.param_groups[0]["weight_decay"],
            )
        )
        for _ in task.train_loader:
            ctrl.scheduler.step()
    assert [s[:2] for s in seen] == [(False, False), (True, False), (True, True), (True, True)]
    assert seen[0][2] == seen[1][2] == 0.02
    assert seen[2][2] == pytest.approx(0.02)  # (finish - 2) / 2 = 1
    assert seen[3][2] == pytest.approx(0.02 * 0.5**POLY_DROP_POWER)
    assert seen[0][3] == seen[1][3] == 1e-4 and seen[2][3] == 0.0  # wd off after epoch 1


def test_resume_continues_exactly(tmp_path: Path) -> None:
    cfg = _config(QUANT, SPARSITY)

    def train(epochs: int, state=None, model_state=None, opt_state=None, rng=None):
        torch.manual_seed(0)
        task, ctrl, model = _compress(copy.deepcopy(cfg), tmp_path / "r", state)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if model_state is not None:
            model.load_state_dict(model_state)
            opt.load_state_dict(opt_state)
            task.train_loader.generator.set_state(rng)
        _epochs(task, ctrl, model, opt, epochs)
        return ctrl, model, opt, task

    ctrl4, model4, _, _ = train(4)
    ctrl2, model2, opt2, task2 = train(2)
    saved = {
        "state": ctrl2.state_dict(),
        "model": model2.state_dict(),
        "opt": opt2.state_dict(),
        "rng": task2.train_loader.generator.get_state(),
    }
    torch.save(saved, tmp_path / "ckpt.pth")
    loaded = torch.load(tmp_path / "ckpt.pth", weights_only=True)
    ctrl_r, model_r, _, _ = train(2, loaded["state"], loaded["model"], loaded["opt"], loaded["rng"])
    a, b = model4.state_dict(), model_r.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key
    assert ctrl4.state_dict()["scheduler"] == ctrl_r.state_dict()["scheduler"]
    assert ctrl4.statistics().totals == ctrl_r.statistics().totals


def test_mismatched_config_on_resume_names_the_keys(tmp_path: Path) -> None:
    _, ctrl, _ = _compress(_config(QUANT, SPARSITY), tmp_path)
    state = ctrl.state_dict()
    other = copy.deepcopy(SPARSITY)
    other["params"]["multistep_steps"] = [1, 2, 4]
    quant = copy.deepcopy(QUANT)
    quant["weights"]["bits"] = 4
    with pytest.raises(CheckpointError) as err:
        _compress(_config(quant, other), tmp_path, state)
    message = str(err.value)
    assert "\n" not in message
    assert "compression[0].weights.bits" in message
    assert "compression[1].params.multistep_steps[2]" in message
    with pytest.raises(CheckpointError, match="schema_version"):
        _compress(_config(QUANT, SPARSITY), tmp_path, {"config": {}})


def test_diff_config_lists_added_removed_and_changed_keys() -> None:
    saved = {"a": 1, "b": {"c": [1, 2]}, "d": 0}
    now = {"a": 1, "b": {"c": [1, 3]}, "e": 0}
    assert diff_config(saved, now) == ["b.c[1]", "d", "e"]


def test_statistics_and_strip(tmp_path: Path) -> None:
    task, ctrl, model = _compress(_config(QUANT, SPARSITY), tmp_path)
    ctrl.scheduler.epoch_step()
    stats = ctrl.statistics()
    text = stats.to_str()
    assert "sparsity_level" in text and "bit_complexity_ratio" in text
    assert all(r["w_bits"] == 8 for r in stats.layers)
    assert stats.totals["size_ratio"] == pytest.approx(0.25 * 0.9, rel=0.02)
    x = next(iter(task.val_loader))[0]
    model.eval()
    with torch.no_grad():
        expected = model(x)
        stripped = ctrl.strip()
        assert torch.allclose(stripped(x), expected, atol=1e-6)
        assert torch.equal(model(x), expected)  # the original still works
    zeros = total = 0
    for name, mask in ctrl.sparsifier.masks.items():
        w = dict(stripped.named_modules())[name].parametrizations.weight.original
        assert torch.all(w[mask.mask == 0] == 0)  # masked values stored as zeros
        for channel in w:
            assert channel.unique().numel() <= 255  # 8-bit values (narrow range) folded in
        zeros, total = zeros + int((mask.mask == 0).sum()), total + mask.mask.numel()
    assert zeros / total == pytest.approx(0.1, abs=1 / total)


def test_hawq_precision_init_through_the_api(tmp_path: Path) -> None:
    quant = {
        "algorithm": "quantization",
        "initializer": {
            "range": {"num_init_samples": 128},
            "precision": {
                "type": "hawq",
                "bits": [4, 8],
                "compression_ratio": 1.5,
                "num_data_points": 64,
                "iter_number": 40,
            },
        },
    }
    _, ctrl, _ = _compress(_config(quant, target_device="TRIAL"), tmp_path)
    result = ctrl.init_results["quantization"]
    assert result["algorithm"] == "hawq"
    assert json.loads((Path(result["run_dir"]) / "result.json").read_text())["algorithm"] == "hawq"
    bits = set(ctrl.qmodel.assignment.bits.values())
    assert bits <= {4, 8} and 4 in bits
    assert ctrl.statistics().totals["bit_complexity_ratio"] >= 1.5 - 1e-9


def test_no_training_data_is_a_clear_error(tmp_path: Path) -> None:
    task = get_task("tiny_cnn")
    with pytest.raises(ConfigError, match="register_default_init_args"):
        create_compressed_model(task.model, _config(QUANT), log_dir=tmp_path)
    with pytest.raises(ConfigError, match="filter_pruning"):
        create_compressed_model(
            task.model, {"compression": {"algorithm": "filter_pruning"}}, log_dir=tmp_path
        )
