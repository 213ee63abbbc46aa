from __future__ import annotations

import os

import pytest
import torch

# Tests never touch the user's real cache; built-in tasks train into a per-session directory.
os.environ.setdefault("SEARCHQ_PROGRESS", "0")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    if "SEARCHQ_CACHE" not in os.environ:
        os.environ["SEARCHQ_CACHE"] = str(tmp_path_factory.mktemp("searchq-cache"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# CI must not flake: the default profile replays the same examples every run; explore with
# HYPOTHESIS_PROFILE=explore (random examples, more of them).
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
