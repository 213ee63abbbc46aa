"""The DDPG agent, the action → bits map, and the budget projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from searchq.autoq.ddpg import DDPG, DDPGConfig, ReplayBuffer, truncated_normal
from searchq.autoq.env import FEATURES, action_for_bits, bits_from_action, plan_steps
from searchq.core.allocate import (
    Budget,
    FeasibleProjection,
    allocation_groups,
    closest_feasible,
    cost_table,
    solve_mckp,
    to_assignment,
)
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


def _filled_agent(seed: int = 0, state_dim: int = 5, n: int = 300) -> DDPG:
    agent = DDPG(state_dim, DDPGConfig(hidden1=32, hidden2=24, batch_size=16), seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        s, s2 = rng.random(state_dim, np.float32), rng.random(state_dim, np.float32)
        agent.buffer.add(s, float(rng.random()), float(rng.normal()), s2, bool(rng.random() < 0.1))
    return agent


def test_batch_one_acting_path_is_the_actor_forward():
    agent = _filled_agent()
    agent.train(agent.sample_batches(20))  # off the initial weights
    states = np.random.default_rng(1).random((50, 5), np.float32)
    with torch.no_grad():
        reference = agent.actor(torch.from_numpy(states))[:, 0].numpy()
    fast = np.asarray([agent.mean_action(s) for s in states])
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-6)
    assert agent.act(states[0], explore=False) == agent.mean_action(states[0])


@pytest.mark.parametrize(("mean", "sigma"), [(0.5, 0.5), (0.02, 0.5), (0.97, 0.2), (0.3, 0.03)])
def test_truncated_normal_is_scipys_distribution(mean: float, sigma: float):
    rng = np.random.default_rng(0)
    draws = np.asarray([truncated_normal(mean, sigma, float(rng.random())) for _ in range(4000)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    reference = stats.truncnorm(-mean / sigma, (1 - mean) / sigma, loc=mean, scale=sigma)
    assert stats.kstest(draws, reference.cdf).pvalue > 1e-3
    assert truncated_normal(0.99, 1e-3, 0.0) >= 0.0 and truncated_normal(0.0, 1e-3, 1.0) <= 1.0


def test_stacked_batches_are_the_same_draws_as_single_ones():
    agent = _filled_agent()
    stacked = agent.buffer.sample_many(3, 16, np.random.default_rng(5))
    assert all(column.shape[0] == 3 for column in stacked)
    single = agent.buffer.sample(16, np.random.default_rng(5))
    for a, b in zip(stacked, single, strict=True):
        assert torch.equal(a[0], b)


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


def _random_proposal(space, rng):
    return Assignment(
        weights={p.qname: int(rng.choice(p.bits)) for p in space.weight_points},
        activations={p.qname: int(rng.choice(p.bits)) for p in space.activation_points},
    )


# a random proposal's seed and a budget: reachable or not, on two presets
BUDGET_CASES = dict(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["size_ratio", "bit_complexity_ratio"]),
    target=st.floats(0.07, 3.9),
    hw=st.sampled_from(["trial", "npu"]),
)


@settings(max_examples=100, deadline=None)
@given(**BUDGET_CASES)
def test_projection_is_always_feasible_and_legal(seed, kind, target, hw):
    space = _space(hw)
    proposal = _random_proposal(space, np.random.default_rng(seed))
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


def _reference_closest_feasible(space, proposal, budget):
    """The projection written plainly: every table rebuilt, distances summed in Python."""
    proposal = space.repair(proposal)
    groups = allocation_groups(space, derive_activations=False)
    costs, limit, _ = cost_table(space.graph, groups, budget)
    wanted = proposal.bits

    def distance(q, b):
        bits = space.point(q).bits
        return abs(bits.index(b) - bits.index(wanted[q])) / len(bits)

    current = [
        next(j for j, o in enumerate(g.options) if all(wanted[q] == b for q, b in o.items()))
        for g in groups
    ]
    if sum(float(costs[i][j]) for i, j in enumerate(current)) <= limit * (1 + 1e-12):
        return proposal, False
    values = [np.asarray([sum(distance(q, b) for q, b in o.items()) for o in g.options])
              for g in groups]  # fmt: skip
    choice = solve_mckp(values, costs, limit)
    return (None, True) if choice is None else (to_assignment(groups, choice, proposal), True)


@settings(max_examples=60, deadline=None)
@given(**BUDGET_CASES)
def test_reused_projection_equals_the_plain_one(seed, kind, target, hw):
    space = _space(hw)
    budget = Budget(kind, target)
    project = FeasibleProjection(space, budget)
    rng = np.random.default_rng(seed)
    for _ in range(5):  # one projection object, many proposals
        proposal = _random_proposal(space, rng)
        expected = _reference_closest_feasible(space, proposal, budget)
        if expected[0] is None:
            with pytest.raises(InfeasibleBudgetError):
                project(proposal)
        else:
            assert project(proposal) == expected


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
    # the normalised table is computed once; a state is the formula applied to that step
    prev = FEATURES.index("prev_action")
    for t in (0, dw, len(plan) - 1):
        span = np.where(plan.high > plan.low, plan.high - plan.low, 1.0)
        expected = ((plan.steps[t].features - plan.low) / span).astype(np.float32)
        expected[prev] = 0.3
        assert np.array_equal(states[t], expected)
