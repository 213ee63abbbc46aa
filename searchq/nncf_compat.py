"""Drop-in names for NNCF 2.x training scripts: change the import, keep the script.

::

    # from nncf import NNCFConfig
    # from nncf.torch import create_compressed_model, register_default_init_args
    from searchq.nncf_compat import NNCFConfig, create_compressed_model, register_default_init_args

``load_state(model, state_dict)`` is NNCF's helper for loading a checkpoint's weights into a
compressed model (here: ``model.load_state_dict`` with a one-line error on a mismatch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from searchq.compress import (
    CompressionController,
    NNCFConfig,
    create_compressed_model,
    register_default_init_args,
)
from searchq.errors import CheckpointError

__all__ = [
    "CompressionController",
    "NNCFConfig",
    "create_compressed_model",
    "load_state",
    "register_default_init_args",
]


def load_state(
    model: nn.Module, state_dict_to_load: Mapping[str, Any], is_resume: bool = True
) -> int:
    """Load weights (``is_resume=True``: every key must match); returns the keys loaded."""
    state = dict(state_dict_to_load.get("state_dict", state_dict_to_load))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=is_resume)
    if (
        not is_resume
        and result.missing_keys
        and len(result.missing_keys) == len(model.state_dict())
    ):
        raise CheckpointError("no key of the checkpoint matches the model; is it another model?")
    return len(state) - len(result.unexpected_keys)
