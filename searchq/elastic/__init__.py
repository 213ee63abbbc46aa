"""Elastic supernets: width / kernel / depth elasticity, progressive shrinking, extraction.

``searchq.elastic.train`` is the training module; its entry point is :func:`train_supernet`.

>>> import searchq
>>> task = searchq.get_task("digits")
>>> result = searchq.elastic.train_supernet(task)   # doctest: +SKIP
"""

from __future__ import annotations

from searchq.elastic.space import ElasticSpace, SubnetConfig, kernel_choices, width_choices
from searchq.elastic.spec import ElasticSpec, StageSpec, elastic_spec
from searchq.elastic.supernet import Supernet
from searchq.elastic.train import train_supernet

__all__ = [
    "ElasticSpace",
    "ElasticSpec",
    "StageSpec",
    "SubnetConfig",
    "Supernet",
    "elastic_spec",
    "kernel_choices",
    "train_supernet",
    "width_choices",
]
