"""Compression in a training loop, NNCF 2.x style, and deployable artefacts.

>>> ctrl, model = create_compressed_model(model, NNCFConfig.from_json("q.json"),
...                                       train_loader=train, criterion=loss)  # doctest: +SKIP
>>> for epoch in range(epochs):                                                 # doctest: +SKIP
...     ctrl.scheduler.epoch_step()
...     ...  # your loop: ctrl.scheduler.step() per batch, loss + ctrl.loss()
>>> ctrl.export_model("model.onnx")                                             # doctest: +SKIP

ONNX export needs ``pip install 'searchq[onnx]'``.
"""

from __future__ import annotations

from searchq.compress.api import create_compressed_model
from searchq.compress.controller import (
    SCHEMA_VERSION,
    CompressionController,
    CompressionScheduler,
    Statistics,
)
from searchq.compress.nncf_config import InitArgs, NNCFConfig, register_default_init_args
from searchq.compress.onnx_export import export_onnx

__all__ = [
    "SCHEMA_VERSION",
    "CompressionController",
    "CompressionScheduler",
    "InitArgs",
    "NNCFConfig",
    "Statistics",
    "create_compressed_model",
    "export_onnx",
    "register_default_init_args",
]
