from __future__ import annotations

import pytest
import torch

from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph
from searchq.core.insert import QuantizedModel
from searchq.core.pipeline import QuantEvaluation, take_samples
from searchq.core.space import QuantSpace
from searchq.errors import HardwareConstraintError
from searchq.tasks.models import resnet20


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.randn(32, 1, 8, 8)
    graph = ModelGraph.build(model, x[:2])
    return model, x, graph


def test_insert_then_remove_restores_the_float_model(setup):
    model, x, graph = setup
    ref = model(x)
    params = dict(model.named_parameters())
    keys = list(model.state_dict())
    qm = QuantizedModel(model, QuantSpace(graph, "trial", weight_bits=[2, 4, 8]))
    qm.init_ranges([x])
    qm.set_bits(qm.space.uniform(2))
    assert not torch.allclose(model(x), ref)
    restored = qm.remove()
    assert restored is model
    assert torch.equal(model(x), ref)
    assert all(p is params[n] for n, p in model.named_parameters())
    assert list(model.state_dict()) == keys


def test_bits_change_in_place_and_error_shrinks_with_bits(setup):
    model, x, graph = setup
    ref = model(x)
    qm = QuantizedModel(model, QuantSpace(graph, "trial"))
    qm.init_ranges([x], num_samples=32)
    errs = {}
    for b in (2, 4, 8, 16):
        qm.set_bits(qm.space.uniform(b))
        errs[b] = (model(x) - ref).abs().mean().item()
    assert errs[2] > errs[4] > errs[8] > errs[16]
    with qm.disabled():
        assert torch.equal(model(x), ref)


def test_shared_input_uses_one_quantizer_object(setup):
    model, x, graph = setup
    qm = QuantizedModel(model, QuantSpace(graph, "trial"))
    g = graph.activation_group("layer2.0.downsample.0.input")
    assert set(g.consumers) == {"layer2.0.conv1", "layer2.0.downsample.0"}
    assert "layer2.0.conv1.input" not in qm.activation_quantizers
    assert qm.activation_quantizers[g.qname] is qm.quantizers[g.qname]


def test_illegal_assignment_and_double_insert(setup):
    model, x, graph = setup
    space = QuantSpace(graph, "npu")
    qm = QuantizedModel(model, space)
    with pytest.raises(HardwareConstraintError, match="not allowed by preset 'npu'"):
        qm.set_bits(space.maximal().replace(weights={**space.maximal().weights, "fc.weight": 3}))
    with pytest.raises(HardwareConstraintError, match="already has searchq quantizers"):
        QuantizedModel(model, space)
    qm.remove()
    QuantizedModel(model, space).remove()


def test_evaluation_is_independent_of_order(setup):
    model, x, graph = setup
    y = torch.randint(0, 10, (32,))
    qm = QuantizedModel(model, QuantSpace(graph, "trial"))
    qm.init_ranges([x])

    def evaluator(m):
        return {"loss": torch.nn.functional.cross_entropy(m(x), y).item()}

    ev = QuantEvaluation(qm, evaluator, bn_samples=take_samples([(x, y)], 16))
    a4, a8 = qm.space.uniform(4), qm.space.uniform(8)
    first = ev(a4)
    ev(a8)
    ev.cache.clear()
    assert ev(a4) == first
    assert ev.evaluations == 3
    assert ev(a4) == first and ev.evaluations == 3  # cached


def test_weights_only_assignment(setup):
    model, x, graph = setup
    space = QuantSpace(graph, "trial", quantize_activations=False)
    qm = QuantizedModel(model, space, Assignment(weights={o.weight_qname: 4 for o in graph.ops}))
    assert not qm.activation_quantizers and len(qm.weight_quantizers) == 22
    assert set(qm.assignment.weights.values()) == {4}


def test_sampling_for_init_does_not_move_the_loader_order():
    from torch.utils.data import DataLoader, TensorDataset

    from searchq.core.pipeline import take_samples

    data = TensorDataset(torch.randn(64, 1, 8, 8), torch.zeros(64, dtype=torch.long))

    def order(loader):
        return torch.cat([x.flatten(1)[:, 0] for x, _ in loader])

    def make():
        return DataLoader(data, 16, shuffle=True, generator=torch.Generator().manual_seed(3))

    loader, fresh = make(), make()
    take_samples(loader, 20)
    model = resnet20().eval()
    qm = QuantizedModel(model, QuantSpace(ModelGraph.build(model, data[:2][0]), "trial"))
    qm.init_ranges(loader, num_samples=32)
    assert torch.equal(order(loader), order(fresh))
