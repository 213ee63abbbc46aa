"""BatchNorm statistics re-estimation ("BN adaptation").

Once-for-All's ``set_running_statistics``: reset every BatchNorm's running mean / variance and
re-estimate them as a *cumulative* average (``momentum=None``) over ``num_samples`` training
samples, with everything else in eval mode (dropout off). The result is deterministic and does
not depend on which configuration ran before — unlike NNCF 2.x's adaptation, which runs a few
batches at momentum 0.1 on top of the previous statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from searchq.core.insert import iterate_inputs

__all__ = ["adapt_batchnorm", "batchnorm_layers"]


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, batches: Iterable[Any], num_samples: int = 2000) -> int:
    """Re-estimate BatchNorm statistics on up to ``num_samples`` samples; returns samples used.

    Layers must track running statistics; the model's train / eval flags and the BN momenta
    are restored afterwards. ``num_samples <= 0`` leaves the model unchanged.
    """
    bns = [m for m in batchnorm_layers(model) if m.track_running_stats]
    if not bns or num_samples <= 0:
        return 0
    flags = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches seen
        m.train()
    seen = 0
    try:
        for x in iterate_inputs(batches):
            if seen >= num_samples:
                break
            take = min(num_samples - seen, x.shape[0])
            model(x[:take])
            seen += take
    finally:
        for m, mom in momenta:
            m.momentum = mom
        for mod, f in flags:
            mod.training = f
    return seen
