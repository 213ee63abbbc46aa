from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from searchq.core.schedules import (
    AdaptiveSchedule,
    ExponentialSchedule,
    MultiStepSchedule,
    PolynomialSchedule,
    make_schedule,
)
from searchq.core.sparsity import MagnitudeSparsifier
from searchq.errors import ConfigError


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 7), nn.Conv1d(1, 3, 3))


@settings(max_examples=30, deadline=None)
@given(
    level=st.floats(0, 0.99),
    mode=st.sampled_from(["global", "local"]),
    importance=st.sampled_from(["abs", "normed_abs"]),
)
def test_level_is_exact(level, mode, importance):
    m = _model()
    sp = MagnitudeSparsifier(m, ["0", "2", "3"], importance=importance, level_mode=mode)
    sp.set_level(level)
    sizes = {n: mod.weight.numel() for n, mod in [("0", m[0]), ("2", m[2]), ("3", m[3])]}
    total = sum(sizes.values())
    if mode == "global":
        assert sp.sparsity() == round(level * total) / total
    else:
        for n, s in sp.layer_sparsity().items():
            assert s == round(level * sizes[n]) / sizes[n]
    # the effective weights really are zero where masked
    zeros = sum(int((mod.weight == 0).sum()) for mod in (m[0], m[2], m[3]))
    assert zeros >= sum(int((mk.mask == 0).sum()) for mk in sp.masks.values())


def test_global_prunes_smallest_importance():
    m = _model()
    with torch.no_grad():
        m[2].weight.mul_(100)  # large layer: abs importance keeps it, normed_abs does not
    sp = MagnitudeSparsifier(m, ["0", "2"], importance="abs")
    sp.set_level(0.5)
    ls = sp.layer_sparsity()
    assert ls["2"] < 0.05 and ls["0"] > 0.8  # 170 of 340 weights, nearly all from layer 0
    sp.remove(apply=False)
    sp2 = MagnitudeSparsifier(m, ["0", "2"], importance="normed_abs")
    sp2.set_level(0.5)
    assert 0 < sp2.layer_sparsity()["2"] < 1


def test_freeze_const_masks_and_remove():
    m = _model()
    sp = MagnitudeSparsifier(m, ["0"])
    sp.set_level(0.3)
    masks = sp.mask_state()
    sp.freeze()
    sp.set_level(0.9)
    assert sp.sparsity() == pytest.approx(0.3, abs=0.01)
    original = m[0].parametrizations.weight.original.detach().clone()
    sp.remove(apply=True)
    assert torch.equal(m[0].weight, original * masks["0"])
    m2 = _model()
    sp2 = MagnitudeSparsifier(m2, ["0"])
    sp2.load_masks(masks)
    assert sp2.frozen and torch.equal(sp2.masks["0"].mask, masks["0"])
    with pytest.raises(ConfigError, match="shape"):
        sp2.load_masks({"0": torch.ones(3)})


def test_sparsity_and_quantization_share_a_weight():
    from searchq.core.graph import ModelGraph
    from searchq.core.insert import QuantizedModel
    from searchq.core.space import QuantSpace

    m = nn.Sequential(nn.Linear(8, 8))
    x = torch.randn(4, 8)
    sp = MagnitudeSparsifier(m, ["0"])
    sp.set_level(0.5)
    qm = QuantizedModel(m, QuantSpace(ModelGraph.build(m, x), "trial"))
    qm.init_ranges([x])
    assert (m[0].weight == 0).float().mean() == 0.5
    qm.remove()
    assert sp.masks["0"] in list(m[0].parametrizations.weight)  # mask survives quantizer removal
    assert (m[0].weight == 0).float().mean() == 0.5


def _levels(schedule, epochs):
    out = []
    for _ in range(epochs):
        schedule.epoch_step()
        out.append(schedule.level)
    return out


def test_polynomial_formula():
    s = PolynomialSchedule(init=0.1, target=0.6, target_epoch=4, power=2.0, concave=True)
    want = [0.6 - 0.5 * (1 - min(e / 4, 1)) ** 2 for e in range(7)]
    assert _levels(s, 7) == pytest.approx(want)
    s = PolynomialSchedule(init=0.1, target=0.6, target_epoch=4, power=2.0, concave=False)
    assert _levels(s, 5) == pytest.approx([0.1 + 0.5 * (e / 4) ** 2 for e in range(5)])


def test_polynomial_per_step_progress():
    s = PolynomialSchedule(
        init=0.0,
        target=0.5,
        target_epoch=2,
        power=1.0,
        concave=False,
        update_per_optimizer_step=True,
    )
    s.epoch_step()
    for _ in range(4):
        s.step()  # epoch 0 has 4 steps: learnt for later epochs
    s.epoch_step()
    s.step()
    assert s.steps_per_epoch == 4
    assert s.level == pytest.approx(0.5 * (1 + 1 / 4) / 2)


def test_exponential_formula():
    s = ExponentialSchedule(init=0.0, target=0.8, target_epoch=4)
    want = [min(1 - max(1.0 * (0.2 / 1.0) ** (e / 4), 0.2), 0.8) for e in range(6)]
    assert _levels(s, 6) == pytest.approx(want)
    assert _levels(ExponentialSchedule(init=0.0, target=0.8, target_epoch=4), 6)[
        -1
    ] == pytest.approx(0.8)


def test_multistep_and_freeze():
    s = MultiStepSchedule(steps=[2, 4], levels=[0.1, 0.3, 0.5], freeze_epoch=3)
    assert _levels(s, 6) == pytest.approx([0.1, 0.1, 0.3, 0.3, 0.3, 0.3])  # frozen from epoch 3
    assert s.frozen
    with pytest.raises(ConfigError, match="one more level than steps"):
        MultiStepSchedule(steps=[2, 4], levels=[0.1, 0.3])


def test_adaptive_schedule_raises_level_after_patience():
    s = AdaptiveSchedule(init=0.1, target=0.2, patience=2, level_step=0.05)
    levels = []
    for _ in range(8):
        s.epoch_step(current_sparsity=s.level)  # the model always reaches the level
        levels.append(round(s.level, 6))
    assert levels == [0.1, 0.1, 0.15, 0.15, 0.2, 0.2, 0.2, 0.2]


def test_schedule_state_round_trip_and_factory():
    s = make_schedule("polynomial", init=0.0, target=0.5, target_epoch=10, power=3, concave=True)
    _levels(s, 3)
    t = make_schedule("polynomial", init=0.0, target=0.5, target_epoch=10, power=3, concave=True)
    t.load_state_dict(s.state_dict())
    assert t.level == s.level and math.isclose(t.level, 0.5 - 0.5 * (1 - 0.2) ** 3)
    with pytest.raises(ConfigError, match="not one of"):
        make_schedule("cosine")
