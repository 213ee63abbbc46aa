"""Which subnets a progressive-shrinking step trains: sandwich cycle, "auto" sizing, seeding,
in-place distillation, the spec / config keys, and the module layout."""

from __future__ import annotations

import importlib
import types
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

import searchq.elastic
from searchq.config.validate import validate_document
from searchq.elastic import ElasticSpec, StageSpec, Supernet, elastic_spec, train_supernet
from searchq.elastic.spec import DEFAULT_LR
from searchq.elastic.train import stage_members, step_roles, step_subnets
from searchq.errors import ConfigError
from searchq.tasks import get_task

DEPTH = StageSpec(("depth",), 1, depth_indicator=1)
WIDTH = StageSpec(("depth", "width"), 1, depth_indicator=2, width_indicator=3)


@pytest.fixture(scope="module")
def supernet() -> Supernet:
    task = get_task("digits")
    assert task.example_input is not None
    return Supernet(task.model, task.example_input, space_options=ElasticSpec().space_options())


def test_train_is_the_module_and_train_supernet_the_function() -> None:
    import searchq.elastic.train as m

    assert isinstance(m, types.ModuleType)
    assert importlib.import_module("searchq.elastic.train") is m
    assert searchq.elastic.train_supernet is m.train_supernet
    assert "train" not in searchq.elastic.__all__


def test_one_member_per_step_cycles_max_min_random() -> None:
    spec = ElasticSpec(subnets_per_step=1)
    roles = [step_roles(spec, e, 1) for e in range(6)]
    assert roles == [["max"], ["min"], ["random"]] * 2


def test_three_members_per_step_is_the_bignas_sandwich_max_first() -> None:
    spec = ElasticSpec(subnets_per_step=3, max_subnet_every=1)
    assert all(step_roles(spec, e, 3) == ["max", "min", "random"] for e in range(5))
    two = [step_roles(spec, e, 2) for e in range(3)]  # the cycle continues across steps
    assert two == [["max", "min"], ["max", "random"], ["min", "random"]]


def test_without_sandwich_every_member_is_random() -> None:
    nncf = ElasticSpec(sandwich=False)
    assert step_roles(nncf, 0, 3) == ["random"] * 3
    assert step_roles(nncf, 3, 2) == ["random", "random"]


def test_auto_sizes_steps_by_the_stage(supernet: Supernet) -> None:
    spec = ElasticSpec()
    assert spec.subnets_per_step == "auto"
    assert stage_members(supernet, spec, DEPTH) == 1  # the smallest keeps ~65 % of the MACs
    assert stage_members(supernet, spec, replace(DEPTH, depth_indicator=2)) == 1  # ~30 %
    assert stage_members(supernet, spec, WIDTH) == 3  # ~8 %: the whole sandwich every step
    assert stage_members(supernet, replace(spec, subnets_per_step=2), WIDTH) == 2
    assert stage_members(supernet, spec, StageSpec(("kernel",), 1)) == 1  # no such dimension


def test_auto_width_stage_trains_min_and_random_in_every_step(supernet: Supernet) -> None:
    spec = ElasticSpec()
    dims = ("depth", "width")
    members = stage_members(supernet, spec, WIDTH)
    steps = [step_subnets(supernet, spec, WIDTH, dims, 0, s, members) for s in range(6)]
    assert all([role for role, _ in step] == ["min", "random"] for step in steps)
    bignas = replace(spec, max_subnet_every=1)
    steps = [step_subnets(supernet, bignas, WIDTH, dims, 0, s, members) for s in range(6)]
    assert all([role for role, _ in step] == ["max", "min", "random"] for step in steps)
    assert len({cfg.key() for step in steps for role, cfg in step if role == "random"}) > 1


def _keys(configs: list) -> list:
    return [(role, cfg.key()) for role, cfg in configs]


def test_step_subnets_are_a_pure_function_of_seed_and_step(supernet: Supernet) -> None:
    spec = ElasticSpec(max_subnet_every=1)
    dims = ("depth", "width")
    runs = [
        [_keys(step_subnets(supernet, spec, WIDTH, dims, 7, s, 3)) for s in range(12)]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = [_keys(step_subnets(supernet, spec, WIDTH, dims, 8, s, 3)) for s in range(12)]
    assert other != runs[0]  # the random members depend on the seed
    fixed = [[k for k in step if k[0] != "random"] for step in runs[0]]
    assert fixed == [[k for k in step if k[0] != "random"] for step in other]  # max / min do not
    roles = Counter(role for step in runs[0] for role, _ in step)
    assert roles == {"min": 12, "max": 12, "random": 12}
    maximal, smallest = supernet.maximal().key(), supernet.minimal(depth_indicator=2).key()
    for step in runs[0]:
        for role, key in step:
            if role == "max":
                assert key == maximal
            if role == "min":
                assert key == smallest


def test_sample_rate_keeps_the_subnets_for_that_many_steps(supernet: Supernet) -> None:
    stage = replace(WIDTH, sample_rate=3)
    dims = ("depth", "width")
    steps = [_keys(step_subnets(supernet, ElasticSpec(), stage, dims, 0, s, 1)) for s in range(9)]
    assert steps[0] == steps[1] == steps[2] != steps[3] == steps[4] == steps[5]
    assert [s[0][0] for s in steps[::3]] == ["max", "min", "random"]


def test_depth_only_minimum_keeps_full_width(supernet: Supernet) -> None:
    ((role, cfg),) = step_subnets(supernet, ElasticSpec(), DEPTH, ("depth",), 0, 1, 1)
    assert role == "min"
    assert cfg.width == supernet.maximal().width and cfg.depth


def test_inplace_distillation_skips_the_original_teacher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import searchq.elastic.train as m

    calls = Counter[str]()
    orig = m._teach

    def counting(teacher, x):  # noqa: ANN001, ANN202
        calls["teacher"] += 1
        return orig(teacher, x)

    monkeypatch.setattr(m, "_teach", counting)
    stages = (DEPTH,)
    steps = len(get_task("digits").train_loader)
    for k, expected in ((3, 0), (1, steps - (steps + 2) // 3)):  # every step but the max's
        calls.clear()
        spec = replace(elastic_spec({}), stages=stages, subnets_per_step=k, max_subnet_every=1)
        train_supernet(get_task("digits"), spec, out=tmp_path / f"k{k}", progress=False)
        assert calls["teacher"] == expected, k
    calls.clear()  # BigNAS in a width stage: [max, min, random], all taught in place
    spec = replace(elastic_spec({}), stages=(WIDTH,), max_subnet_every=1)
    train_supernet(get_task("digits"), spec, out=tmp_path / "bignas", progress=False)
    assert calls["teacher"] == 0
    calls.clear()  # the default width stage: [min, random], the original net teaches each step
    spec = replace(elastic_spec({}), stages=(WIDTH,))
    train_supernet(get_task("digits"), spec, out=tmp_path / "auto", progress=False)
    assert calls["teacher"] == steps
    calls.clear()  # the maximal subnet every other step: the original net teaches the rest
    spec = replace(elastic_spec({}), stages=(WIDTH,), max_subnet_every=2)
    train_supernet(get_task("digits"), spec, out=tmp_path / "every2", progress=False)
    assert calls["teacher"] == steps // 2
    calls.clear()
    spec = replace(
        elastic_spec({}), stages=stages, subnets_per_step=3, inplace_distillation=False,
        max_subnet_every=1,
    )  # fmt: skip
    train_supernet(get_task("digits"), spec, out=tmp_path / "orig", progress=False)
    assert calls["teacher"] == steps


def test_stage_learning_rate_defaults_to_default_lr() -> None:
    assert StageSpec().lr == DEFAULT_LR == 0.15  # chosen on digits: see searchq.elastic.spec
    assert StageSpec(init_lr=0.01).lr == 0.01
    assert all(s.lr == DEFAULT_LR for s in elastic_spec({}).stages)


def test_spec_and_config_keys() -> None:
    spec = elastic_spec({})
    assert (spec.subnets_per_step, spec.sandwich) == ("auto", True)
    assert (spec.inplace_distillation, spec.distill_max) == (True, False)
    spec = elastic_spec(
        {"subnets_per_step": 3, "distillation": {"inplace": False, "distill_max": True}}
    )
    assert (spec.subnets_per_step, spec.inplace_distillation, spec.distill_max) == (3, False, True)
    for bad in (0, "two", True):
        with pytest.raises(ConfigError):
            ElasticSpec(subnets_per_step=bad)  # type: ignore[arg-type]
    for value in ("auto", 2):
        doc = {
            "model": "digits",
            "bootstrapNAS": {
                "training": {
                    "subnets_per_step": value,
                    "distillation": {"type": "softmax", "inplace": True, "distill_max": False},
                }
            },
        }
        validate_document(doc, None)
    with pytest.raises(ConfigError):
        validate_document(
            {"model": "digits", "bootstrapNAS": {"training": {"subnets_per_step": "many"}}}, None
        )


def test_max_subnet_every_leaves_the_maximal_out_of_multi_member_steps() -> None:
    every2 = ElasticSpec(max_subnet_every=2)
    sandwich, without = ["max", "min", "random"], ["min", "random"]
    assert [step_roles(every2, e, 3) for e in range(4)] == [sandwich, without] * 2
    never = ElasticSpec(max_subnet_every=0)
    assert all(step_roles(never, e, 3) == without for e in range(4))
    # single-member steps (depth stages) keep their cycle: the maximal subnet still trains
    assert [step_roles(never, e, 1) for e in range(3)] == [["max"], ["min"], ["random"]]
    assert elastic_spec({"max_subnet_every": 2}).max_subnet_every == 2
    assert elastic_spec({}).max_subnet_every == 0
    for bad in (-1, "2", True, 1.5):
        with pytest.raises(ConfigError, match="max_subnet_every"):
            ElasticSpec(max_subnet_every=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        validate_document(
            {"model": "digits", "bootstrapNAS": {"training": {"max_subnet_every": -2}}}, None
        )
