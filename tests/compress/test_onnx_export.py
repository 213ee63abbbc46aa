"""ONNX export: Q/DQ pairs with searchq's scale / zero point, checked by running onnxruntime."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

_SKIP = "needs the onnx extra (pip install -e '.[onnx]')"
ort = pytest.importorskip("onnxruntime", reason=_SKIP)
onnx = pytest.importorskip("onnx", reason=_SKIP)
pytest.importorskip("onnxscript", reason=_SKIP)

from onnx import TensorProto, numpy_helper  # noqa: E402

from searchq.compress.onnx_export import export_onnx  # noqa: E402
from searchq.core.graph import ModelGraph  # noqa: E402
from searchq.core.insert import QuantizedModel  # noqa: E402
from searchq.core.space import QuantSpace  # noqa: E402
from searchq.core.sparsity import MagnitudeSparsifier  # noqa: E402
from searchq.errors import ConfigError  # noqa: E402
from searchq.tasks.models import resnet20  # noqa: E402


class SmallNet(nn.Module):
    """Conv + BN + ReLU, a residual add, pooling and a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.relu2(self.bn2(self.conv2(y)) + y)
        return self.fc(torch.flatten(self.pool(y), 1))


def _trained_bn(model: nn.Module, x: Tensor) -> nn.Module:
    """Non-trivial BatchNorm statistics, so BN is not an identity in the exported graph."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def _quantize(
    model: nn.Module, x: Tensor, bits: int = 8, hw: str = "trial", **options: object
) -> QuantizedModel:
    """8-bit symmetric per-channel weights, asymmetric per-tensor activations by default."""
    options.setdefault("activation_mode", "asymmetric")
    space = QuantSpace(ModelGraph.build(model, x[:2]), hw, **options)  # type: ignore[arg-type]
    qm = QuantizedModel(model, space, space.uniform(bits))
    qm.init_ranges([x])
    return qm


def _run(path: Path, x: Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _inits(path: Path) -> dict:
    return {i.name: i for i in onnx.load(str(path)).graph.initializer}


def _assert_close(y: np.ndarray, ref: Tensor) -> float:
    """onnxruntime runs the same float ops on the same dequantized values as the fake-quantized
    torch model, so outputs agree to float precision — except that its conv sums in another
    order, so a value within float error of a rounding tie (k + 1/2)·scale can land one level
    away in the next QuantizeLinear (observed: x/step = 32.50001), and that flip propagates to
    the outputs of its sample. Untrained test nets show no flip; the 8-bit trained digits
    ResNet-20 flips in 1-4 % of its outputs, by at most 0.4 % of the output scale. Hence: at
    most 10 % of outputs differ by more than 1e-5 of the output scale, none by more than 2 %."""
    ref_np = ref.detach().numpy()
    scale = float(np.abs(ref_np).max())
    diff = np.abs(y - ref_np)
    assert float((diff > 1e-5 * scale).mean()) <= 0.10
    assert float(diff.max()) <= 0.02 * scale
    return float(diff.max())


@pytest.fixture()
def small() -> tuple[nn.Module, Tensor]:
    x = torch.randn(16, 3, 8, 8)
    return _trained_bn(SmallNet(), x), x


def test_8bit_symmetric_per_channel_weights_and_asymmetric_activations(small, tmp_path):
    model, x = small
    qm = _quantize(model, x)
    path = export_onnx(model, x[:4], tmp_path / "small.onnx")
    ops = _ops(path)
    assert ops["QuantizeLinear"] == ops["DequantizeLinear"] == len(qm.quantizers) == 6
    graph = onnx.load(str(path)).graph
    names = {n.name for n in graph.node if n.op_type == "QuantizeLinear"}
    assert names == {f"{q}/QuantizeLinear" for q in qm.quantizers}
    inits = _inits(path)
    # independent reference: the formulas of searchq.core.quant's docstring
    w = qm.weight_quantizers["conv2.weight"]
    scale = numpy_helper.to_array(inits["conv2.weight.scale"])
    np.testing.assert_array_equal(scale, (w.threshold.detach().abs() / 127).numpy())
    for name, a in qm.activation_quantizers.items():
        q_act = next(n for n in graph.node if n.name == f"{name}/QuantizeLinear")
        assert q_act.input[1] == f"{name}.scale"
        a_scale = torch.from_numpy(numpy_helper.to_array(inits[q_act.input[1]]))
        assert torch.equal(a_scale, (a.input_range.detach().abs() / 255).reshape(()))
        zp = inits[q_act.input[2]]  # equal zero points may share one initializer
        assert zp.data_type == TensorProto.UINT8
        expected_zp = torch.round(-a.input_low.detach() / a_scale)
        assert int(numpy_helper.to_array(zp)) == int(expected_zp)
    q_weight = next(n for n in graph.node if n.name == "conv2.weight/QuantizeLinear")
    assert q_weight.input[0] == "conv2.weight"
    assert next(a.i for a in q_weight.attribute if a.name == "axis") == 0
    zero_points = {n.input[2] for n in graph.node if n.name.endswith(".weight/QuantizeLinear")}
    assert {inits[z].data_type for z in zero_points} == {TensorProto.INT8}
    _assert_close(_run(path, x), model(x))
    _assert_close(_run(path, x[:7]), model(x[:7]))  # the batch dimension is dynamic


def test_resnet20_8bit(tmp_path):
    model = _trained_bn(resnet20(), torch.randn(32, 1, 8, 8))
    x = torch.randn(16, 1, 8, 8)
    qm = _quantize(model, x)
    path = export_onnx(model, x[:2], tmp_path / "resnet20.onnx")
    ops = _ops(path)
    assert ops["QuantizeLinear"] == ops["DequantizeLinear"] == len(qm.quantizers) == 42
    assert onnx.load(str(path)).opset_import[0].version == 18
    # one Q/DQ pair serves both readers of a shared input (conv1 and the downsample conv)
    graph = onnx.load(str(path)).graph
    dq = next(n for n in graph.node if n.name == "layer2.0.downsample.0.input/DequantizeLinear")
    readers = [n for n in graph.node if dq.output[0] in n.input]
    assert sorted(n.op_type for n in readers) == ["Conv", "Conv"]
    _assert_close(_run(path, x), model(x))


@pytest.mark.slow
def test_trained_digits_resnet20_predicts_the_same_classes(tmp_path):
    from searchq.tasks import get_task

    task = get_task("digits")  # trained once per test session, shared with other tests' cache
    model = task.model
    x = torch.cat([batch[0] for _, batch in zip(range(8), task.train_loader, strict=False)])
    # NNCF's CPU preset: 8-bit narrow-range symmetric weights, symmetric activations
    _quantize(model, x, hw="cpu", activation_mode="symmetric")
    path = export_onnx(model, x[:2], tmp_path / "digits.onnx")
    y, ref = _run(path, x), model(x)
    _assert_close(y, ref)
    assert (y.argmax(1) == ref.argmax(1).numpy()).mean() >= 0.99


def test_4bit_uses_int4_from_opset_21(small, tmp_path):
    model, x = small
    qm = _quantize(model, x, bits=4)
    path = export_onnx(model, x[:4], tmp_path / "w4a4.onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 21
    inits = _inits(path)
    zero_points = {n.name: inits[n.input[2]] for n in proto.graph.node if len(n.input) > 2}
    types = {name.split("/")[0]: z.data_type for name, z in zero_points.items()}
    assert types["conv2.weight"] == TensorProto.INT4
    assert types["fc.input"] == TensorProto.UINT4
    assert _ops(path)["QuantizeLinear"] == len(qm.quantizers)
    _assert_close(_run(path, x), model(x))


def test_4bit_below_opset_21_names_the_first_quantizer(small, tmp_path):
    model, x = small
    qm = _quantize(model, x, bits=8)
    qm.weight_quantizers["conv2.weight"].set_bits(4)
    qm.weight_quantizers["fc.weight"].set_bits(4)
    with pytest.raises(
        ConfigError, match=r"^conv2\.weight has 4 bits; ONNX opset 18 quantizes to 8"
    ):
        export_onnx(model, x[:4], tmp_path / "bad.onnx", opset=18)
    assert not (tmp_path / "bad.onnx").exists()


def test_16bit_uses_int16(small, tmp_path):
    model, x = small
    qm = _quantize(model, x, bits=16)
    path = export_onnx(model, x[:4], tmp_path / "w16a16.onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 21
    inits = _inits(path)
    types = {inits[n.input[2]].data_type for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    assert types == {TensorProto.INT16, TensorProto.UINT16}
    assert _ops(path)["QuantizeLinear"] == len(qm.quantizers)
    _assert_close(_run(path, x), model(x))


def test_2bit_only_with_an_explicit_opset_25(small, tmp_path):
    model, x = small
    _quantize(model, x, bits=2)
    with pytest.raises(ConfigError, match=r"^conv1\.input has 2 bits; .* opset=25"):
        export_onnx(model, x[:4], tmp_path / "w2a2.onnx")
    path = export_onnx(model, x[:4], tmp_path / "w2a2.onnx", opset=25)
    assert onnx.load(str(path)).opset_import[0].version == 25
    # onnxruntime 1.31 runs int2 Q/DQ only without its graph optimisations (see the module doc)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _assert_close(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], model(x))


@pytest.mark.parametrize("bits", [3, 6])
def test_bits_without_an_onnx_type_raise(small, tmp_path, bits):
    model, x = small
    qm = _quantize(model, x, bits=8)
    qm.activation_quantizers["conv2.input"].set_bits(bits)
    with pytest.raises(ConfigError, match=rf"^conv2\.input has {bits} bits; ONNX QuantizeLinear"):
        export_onnx(model, x[:4], tmp_path / "bad.onnx", opset=25)


def test_narrow_range_keeps_searchq_clamp(tmp_path):
    """int8 saturates at -128; searchq's narrow range stops at -127 — also when ranges are tight."""
    model = nn.Sequential(nn.Linear(16, 8)).eval()
    x = torch.randn(64, 16)
    # NNCF's CPU preset: narrow range for 8-bit symmetric weights; none presets it for inputs
    qm = _quantize(model, x, hw="cpu", activation_mode="symmetric", activation_signed=True)
    w = qm.weight_quantizers["0.weight"]
    a = qm.activation_quantizers["0.input"]
    assert w.narrow_range and not a.narrow_range
    a.narrow_range = True
    with torch.no_grad():  # tight ranges, so both quantizers saturate on the negative side
        w.threshold.mul_(0.5)
        a.threshold.fill_(1.0)
    step = (w.threshold.detach() / 127).reshape(-1, 1)
    stored = model[0].parametrizations.weight.original.detach()
    assert (stored / step).min() < -128  # some weights fall past -127.5
    path = export_onnx(model, x, tmp_path / "narrow.onnx")
    ops = _ops(path)
    assert ops["QuantizeLinear"] == 2 and ops["Max"] == 1  # Max: the activation's lower bound
    y = _run(path, x)
    np.testing.assert_allclose(y, model(x).detach().numpy(), rtol=0, atol=1e-6)
    exported_w = numpy_helper.to_array(_inits(path)["0.weight"])
    assert (exported_w / step.numpy()).min() == pytest.approx(-127, abs=1e-3)


def test_sparsified_weights_export_as_zeros(small, tmp_path):
    model, x = small
    original = {n: model.get_submodule(n).weight.detach().clone() for n in ("conv2", "fc")}
    sparsifier = MagnitudeSparsifier(model, ["conv2", "fc"], level_mode="local")
    sparsifier.set_level(0.5)
    qm = _quantize(model, x)
    path = export_onnx(model, x[:4], tmp_path / "sparse.onnx")
    inits = _inits(path)
    for name, w in original.items():
        mask = sparsifier.masks[name].mask.numpy()
        exported = numpy_helper.to_array(inits[f"{name}.weight"])
        assert (mask == 0).mean() == 0.5
        assert (exported[mask == 0] == 0).all()
        np.testing.assert_array_equal(exported[mask == 1], w.numpy()[mask == 1])
    assert _ops(path)["QuantizeLinear"] == len(qm.quantizers)
    _assert_close(_run(path, x), model(x))


def test_sparsity_alone_exports_zeros_without_qdq(small, tmp_path):
    model, x = small
    sparsifier = MagnitudeSparsifier(model, ["conv1"])
    sparsifier.set_level(0.5)
    path = export_onnx(model, x[:4], tmp_path / "sparse_fp32.onnx")
    assert _ops(path)["QuantizeLinear"] == 0
    exported = numpy_helper.to_array(_inits(path)["conv1.weight"])
    assert ((exported == 0) == (sparsifier.masks["conv1"].mask.numpy() == 0)).all()
    np.testing.assert_allclose(_run(path, x), model(x).detach().numpy(), atol=1e-5)


def test_disabled_and_uninitialised_quantizers_export_nothing(small, tmp_path):
    model, x = small
    qm = _quantize(model, x)
    qm.enable(weights=True, activations=False)
    path = export_onnx(model, x[:4], tmp_path / "weights_only.onnx")
    assert _ops(path)["QuantizeLinear"] == len(qm.weight_quantizers) == 3
    _assert_close(_run(path, x), model(x))
    qm.remove()
    space = QuantSpace(ModelGraph.build(model, x[:2]), "trial")
    QuantizedModel(model, space)  # no init_ranges: every quantizer passes values through
    path = export_onnx(model, x[:4], tmp_path / "uninit.onnx")
    assert _ops(path)["QuantizeLinear"] == 0


def test_model_is_unchanged_by_export(small, tmp_path):
    model, x = small
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    sparsifier = MagnitudeSparsifier(model, ["conv2"])
    sparsifier.set_level(0.5)
    qm = _quantize(model, x, bits=4)
    ref = model(x)
    model.train()
    modules = dict(model.named_modules())
    classes = {n: type(m) for n, m in modules.items()}
    params = dict(model.named_parameters())
    # tensors, and each quantizer's bits / sign / narrow range (_extra_state dicts)
    state = {k: v.clone() if torch.is_tensor(v) else dict(v) for k, v in model.state_dict().items()}
    export_onnx(model, x[:4], tmp_path / "a.onnx")
    qm.activation_quantizers["conv2.input"].set_bits(6)
    with pytest.raises(ConfigError):  # a failed export leaves nothing behind either
        export_onnx(model, x[:4], tmp_path / "b.onnx")
    qm.activation_quantizers["conv2.input"].set_bits(4)
    assert all(m.training for m in model.modules())
    after = dict(model.named_modules())
    assert after.keys() == modules.keys() and all(after[n] is m for n, m in modules.items())
    assert {n: type(m) for n, m in after.items()} == classes
    assert all(p is params[n] for n, p in model.named_parameters())
    assert list(model.state_dict()) == list(state)
    assert all(
        torch.equal(v, state[k]) if torch.is_tensor(v) else v == state[k]
        for k, v in model.state_dict().items()
    )
    assert torch.equal(model.eval()(x), ref)
    qm.remove()
    sparsifier.remove(apply=False)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
