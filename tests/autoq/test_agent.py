"""The DDPG agent, the action → bits map, and the budget projection."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from searchq.autoq.ddpg import DDPG, DDPGConfig, ReplayBuffer
from searchq.autoq.env import action_for_bits, bits_from_action, plan_steps
from searchq.core.allocate import Budget, closest_feasible
from searchq.core.assignment import Assignment
from searchq.core.cost import bit_complexity_ratio, size_ratio
from searchq.core.graph import ModelGraph
from searchq.core.space import QuantSpace
from searchq.errors import InfeasibleBudgetError


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(2, 16), min_size=1, max_size=8, unique=True))
def test_action_reaches_every_allowed_bit(allowed):
    ordered = sorted(allowed)
    hit = {bits_from_action(a, allowed) for a in np.linspace(0, 1, 2001)}
    assert hit == set(ordered)
    assert bits_from_action(0.0, allowed) == ordered[0]
    assert bits_from_action(1.0, allowed) == ordered[-1]
    for b in ordered:  # the centre of each bit's share maps back to it
        assert bits_from_action(action_for_bits(b, allowed), allowed) == b


def test_agent_solves_a_toy_environment_with_a_known_optimum():
    """Four steps, bits {2, 4, 8}; reward = -mean distance (in index) to the pattern 8, 2, 4, 8."""
    allowed = [2, 4, 8]
    target = [2, 0, 1, 2]
    steps = len(target)
    states = np.eye(steps, dtype=np.float32)
    agent = DDPG(steps + 1, DDPGConfig(), seed=0)  # default hyperparameters

    def episode(explore: bool, warm: bool) -> tuple[list[float], list[np.ndarray], float]:
        actions, obs, prev = [], [], 0.0
        for t in range(steps):
            s = np.concatenate([states[t], [prev]]).astype(np.float32)
            a = agent.random_action() if warm else agent.act(s, explore=explore)
            actions.append(a)
            obs.append(s)
            prev = a
        chosen = [sorted(allowed).index(bits_from_action(a, allowed)) for a in actions]
        reward = -float(np.mean(np.abs(np.asarray(chosen) - np.asarray(target))))
        return actions, obs, reward

    for ep in range(200):
        warm = ep < 20
        actions, obs, reward = episode(explore=True, warm=warm)
        adv = agent.shaped(reward)
        for t in range(steps):
            nxt = obs[t + 1] if t + 1 < steps else obs[t]
            agent.buffer.add(obs[t], actions[t], adv, nxt, t == steps - 1)
        if not warm:
            for _ in range(steps):
                agent.update()
        agent.end_episode(warm)
    _, _, greedy = episode(explore=False, warm=False)
    assert greedy == 0.0  # the greedy policy is the optimum


def test_replay_buffer_round_trip():
    buf = ReplayBuffer(8, 3)
    for i in range(11):
        buf.add(np.full(3, i, np.float32), i / 10, -i, np.zeros(3, np.float32), i % 2 == 0)
    other = ReplayBuffer(8, 3)
    other.load_state_dict(buf.state_dict())
    assert other.size == buf.size == 8 and other.pos == buf.pos == 3
    assert np.array_equal(other.states, buf.states) and np.array_equal(other.rewards, buf.rewards)


def _space(hw="trial", bits=(2, 4, 8)):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 3),
    )  # fmt: skip
    graph = ModelGraph.build(model, torch.randn(1, 1, 4, 4))
    return QuantSpace(graph, hw, weight_bits=bits, activation_bits=bits)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["size_ratio", "bit_complexity_ratio"]),
    target=st.floats(0.07, 3.9),
    hw=st.sampled_from(["trial", "npu"]),
)
def test_projection_is_always_feasible_and_legal(seed, kind, target, hw):
    space = _space(hw)
    rng = np.random.default_rng(seed)
    proposal = Assignment(
        weights={p.qname: int(rng.choice(p.bits)) for p in space.weight_points},
        activations={p.qname: int(rng.choice(p.bits)) for p in space.activation_points},
    )
    budget = Budget(kind, target)
    try:
        fixed, changed = closest_feasible(space, proposal, budget)
    except InfeasibleBudgetError as exc:
        assert "out of reach" in str(exc)
        return
    space.check(fixed)
    value = (size_ratio if kind == "size_ratio" else bit_complexity_ratio)(space.graph, fixed)
    if kind == "size_ratio":
        assert value <= target + 1e-9
    else:
        assert value >= target - 1e-9
    if not changed:
        assert fixed == space.repair(proposal)


def test_projection_keeps_a_feasible_proposal_and_changes_little():
    space = _space()
    proposal = space.uniform(8)
    same, changed = closest_feasible(space, proposal, Budget("size_ratio", 0.3))
    assert same == proposal and not changed
    fixed, changed = closest_feasible(space, proposal, Budget("size_ratio", 0.2))
    assert changed
    # only weights need to move for a size budget; activations stay as proposed
    assert dict(fixed.activations) == dict(proposal.activations)
    moved = [q for q in proposal.weights if fixed.weights[q] != proposal.weights[q]]
    assert moved == ["7.weight"]  # the largest layer: one step fixes it


def test_plan_order_and_features():
    space = _space()
    plan = plan_steps(space.graph, space)
    assert [s.point.qname for s in plan.steps][:4] == ["0.input", "0.weight", "2.input", "2.weight"]
    states = np.stack([plan.state(t, 0.3) for t in range(len(plan))])
    assert states.shape == (len(plan), plan.state_dim)
    assert np.all(states >= -1e-6) and np.all(states <= 1 + 1e-6)
    dw = next(t for t, s in enumerate(plan.steps) if s.point.qname == "4.weight")
    assert states[dw, 1] == 1.0  # is-depthwise
