from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from searchq.errors import TaskError
from searchq.tasks import get_task
from searchq.tasks import train as train_module
from searchq.tasks.builtin import DEFAULT_RECIPES, build_digits_task, digits_recipe
from searchq.tasks.cache import SCHEMA_VERSION, CacheWarning, cache_dir, cache_path, recipe_hash
from searchq.tasks.metrics import accuracy
from searchq.tasks.train import RECIPE_VERSION, TrainRecipe, _lr_factor

ONE_EPOCH = TrainRecipe(epochs=1)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SEARCHQ_CACHE", str(directory))
    return directory


@pytest.fixture()
def fit_calls(monkeypatch) -> list[int]:
    """Count calls of the real training function."""
    calls: list[int] = []
    real_fit = train_module.fit

    def counting_fit(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_module, "fit", counting_fit)
    return calls


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def tiny(**kwargs):
    return build_digits_task("tiny_cnn", recipe=ONE_EPOCH, progress=False, **kwargs)


def the_cache_file(directory: Path) -> Path:
    files = list(directory.iterdir())
    assert len(files) == 1, files  # in particular: no temp files left behind
    return files[0]


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEARCHQ_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "searchq"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert cache_dir() == tmp_path / "home" / ".cache" / "searchq"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "searchq"
    monkeypatch.setenv("SEARCHQ_CACHE", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"


def test_cache_path_is_task_and_recipe_hash(cache):
    recipe = digits_recipe("tiny_cnn", seed=0, recipe=ONE_EPOCH)
    assert recipe["recipe_version"] == RECIPE_VERSION and recipe["train"]["epochs"] == 1
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert cache_path("tiny_cnn", recipe) == cache / f"tiny_cnn-{digest}.pt"
    assert re.fullmatch(r"[0-9a-f]{12}", recipe_hash(recipe))
    # anything that changes the weights changes the key
    others = [
        digits_recipe("tiny_cnn", seed=1, recipe=ONE_EPOCH),
        digits_recipe("tiny_cnn", seed=0, recipe=TrainRecipe(epochs=2)),
        {**recipe, "recipe_version": RECIPE_VERSION + 1},
    ]
    assert len({recipe_hash(r) for r in [recipe, *others]}) == 4


def test_training_is_deterministic_and_leaves_global_rng_alone(tmp_path, monkeypatch):
    models = []
    for run in ("a", "b"):
        monkeypatch.setenv("SEARCHQ_CACHE", str(tmp_path / run))  # two separate caches: no hit
        state = torch.get_rng_state()
        models.append(tiny(seed=0).model)
        assert torch.equal(torch.get_rng_state(), state)
    assert states_equal(*models)
    monkeypatch.setenv("SEARCHQ_CACHE", str(tmp_path / "c"))
    assert not states_equal(models[0], tiny(seed=1).model)


def test_cache_file_contents(cache):
    task = tiny()
    path = the_cache_file(cache)
    assert path == cache_path("tiny_cnn", digits_recipe("tiny_cnn", seed=0, recipe=ONE_EPOCH))
    entry = torch.load(path, weights_only=True)
    assert entry["schema_version"] == SCHEMA_VERSION == 1
    assert entry["recipe"] == digits_recipe("tiny_cnn", seed=0, recipe=ONE_EPOCH)
    assert entry["val_accuracy"] == pytest.approx(accuracy(task.model, task.val_loader))
    assert all(torch.equal(v, task.model.state_dict()[k]) for k, v in entry["state_dict"].items())


def test_cache_hit_does_not_retrain(cache, monkeypatch):
    first = tiny().model

    def no_training(*args, **kwargs):
        raise AssertionError("retrained despite a cache hit")

    monkeypatch.setattr(train_module, "fit", no_training)
    second = tiny().model
    assert states_equal(first, second)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "schema", "other_recipe", "bad_state"])
def test_broken_cache_file_warns_once_and_retrains(cache, fit_calls, tmp_path, monkeypatch, damage):
    reference = tiny().model
    path = the_cache_file(cache)
    fit_calls.clear()
    good = path.read_bytes()
    entry = torch.load(path, weights_only=True)
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "schema":
        torch.save({**entry, "schema_version": 99}, path)
    elif damage == "other_recipe":
        torch.save({**entry, "recipe": {"something": "else"}}, path)
    else:  # right schema and recipe, weights that do not fit the model
        torch.save({**entry, "state_dict": {"fc.weight": torch.zeros(3)}}, path)

    with pytest.warns(CacheWarning) as record:
        retrained = tiny().model
    assert len(record) == 1
    message = str(record[0].message)
    assert str(path) in message and "retraining" in message and "\n" not in message
    assert fit_calls == [1]
    # the retrain starts from the same initialisation, so it reproduces the original weights
    assert states_equal(retrained, reference)
    # ... and repairs the file: the next build is a silent hit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny()
    assert fit_calls == [1]


def test_unwritable_cache_warns_but_works(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("SEARCHQ_CACHE", str(blocker / "sub"))
    with pytest.warns(CacheWarning, match="could not write"):
        task = tiny()
    assert not task.model.training


def test_untrained_task(cache, fit_calls):
    a = build_digits_task("mbv2_tiny", train=False)
    b = build_digits_task("mbv2_tiny", train=False)
    assert fit_calls == [] and not cache.exists()
    assert a.name == "mbv2_tiny" and not a.model.training
    assert all(p.device.type == "cpu" for p in a.model.parameters())
    assert states_equal(a.model, b.model)
    assert not states_equal(a.model, build_digits_task("mbv2_tiny", seed=1, train=False).model)
    assert a.example_input is not None and a.example_input.shape == (64, 1, 8, 8)


def test_short_training_learns(cache):
    task = build_digits_task("tiny_cnn", recipe=TrainRecipe(epochs=3), progress=False)
    assert task.name == "tiny_cnn" and not task.model.training
    assert task.evaluator is not None and task.evaluator(task.model)["accuracy"] > 70.0


def test_unknown_builtin_and_bad_seed():
    with pytest.raises(TaskError, match="unknown built-in"):
        build_digits_task("resnet56")
    with pytest.raises(TaskError, match="seed=-1"):
        build_digits_task("digits", seed=-1, train=False)


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"lr": 0.0}, {"schedule": "step"}, {"momentum": 1.0}]
)
def test_recipe_validation(kwargs):
    with pytest.raises(TaskError, match=f"TrainRecipe.{next(iter(kwargs))}="):
        TrainRecipe(**kwargs)


def test_lr_schedule_warms_up_then_anneals():
    recipe, total = TrainRecipe(warmup_fraction=0.2), 100
    factors = [_lr_factor(recipe, s, total) for s in range(total)]
    assert factors[19] == 1.0 and factors[0] == pytest.approx(1 / 20)
    assert all(a <= b for a, b in zip(factors[:20], factors[1:20], strict=False))
    assert all(a >= b for a, b in zip(factors[20:], factors[21:], strict=False))
    assert factors[-1] < 0.001
    cosine = TrainRecipe(schedule="cosine")
    assert _lr_factor(cosine, 0, total) == 1.0
    assert _lr_factor(cosine, 50, total) == pytest.approx(0.5)


def test_default_recipes_cover_the_builtins():
    assert set(DEFAULT_RECIPES) == {"digits", "tiny_cnn", "mbv2_tiny"}


@pytest.mark.slow
def test_digits_resnet20_reaches_97_percent(cache):
    task = get_task("digits")
    assert task.name == "digits" and not task.model.training
    assert task.evaluator is not None
    assert task.evaluator(task.model)["accuracy"] >= 97.0
