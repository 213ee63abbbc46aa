"""Channel importance and weight reorganisation for elastic width.

Convention: a channel's importance comes from the *producers'* own filters (NNCF's filter
reordering), not from the next layer's input channels (OFA). Per producer the filter scores are
L1 or L2 norms, ``geometric_median`` (sum of L2 distances to the other filters: a filter close
to all others is redundant), or ``external`` (a file of per-module importance tensors, loaded
with ``weights_only=True``); each producer's scores are scaled to unit L2 norm and summed over
the group. Channels are then permuted most important first in every producer, depthwise conv,
BatchNorm and consumer of the group, so the network computes exactly the same function and the
first k channels are the k most important ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from searchq.core._param import original_weight
from searchq.elastic.space import WidthGroup
from searchq.errors import CheckpointError, ConfigError

__all__ = ["IMPORTANCE", "filter_importance", "load_external_importance", "reorder_group"]

IMPORTANCE = ("L1", "L2", "geometric_median", "external")


def filter_importance(weight: Tensor, kind: str) -> Tensor:
    w = weight.detach().reshape(weight.shape[0], -1).float()
    if kind == "L1":
        return w.abs().sum(dim=1)
    if kind == "L2":
        return w.norm(dim=1)
    if kind == "geometric_median":
        return torch.cdist(w, w).sum(dim=1)
    raise ConfigError(
        f"filter_importance {kind!r} is not one of {list(IMPORTANCE)}",
        key="width.filter_importance",
    )


def load_external_importance(path: str | Path) -> dict[str, Tensor]:
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise ConfigError(
            "external importance file not found",
            key="width.external_importance_path",
            file=str(path),
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot read importance ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ConfigError(
            "external importance must map module names to 1-D tensors",
            key="width.external_importance_path",
            file=str(path),
        )
    return {str(k): v for k, v in data.items()}


def _group_importance(
    modules: Mapping[str, nn.Module],
    group: WidthGroup,
    kind: str,
    external: Mapping[str, Tensor] | None,
) -> Tensor:
    total = torch.zeros(group.max)
    for name in group.producers:
        if kind == "external":
            if external is None or name not in external:
                raise ConfigError(
                    f"external importance lacks {name!r}", key="width.external_importance_path"
                )
            score = external[name].float().reshape(-1)
        else:
            score = filter_importance(original_weight(modules[name]), kind)
        if score.numel() != group.max:
            raise ConfigError(
                f"importance of {name!r} has {score.numel()} values, the layer has "
                f"{group.max} channels",
                key="width.filter_importance",
            )
        total += score / score.norm().clamp_min(1e-12)
    return total


@torch.no_grad()
def reorder_group(
    model: nn.Module,
    group: WidthGroup,
    kind: str = "L1",
    external: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Permute the group's channels most important first; returns the permutation."""
    modules = dict(model.named_modules())
    perm = torch.argsort(
        _group_importance(modules, group, kind, external), descending=True, stable=True
    )

    def permute(t: Tensor | None, dim: int) -> None:
        if t is not None:
            t.copy_(t.index_select(dim, perm))

    for name in (*group.producers, *group.depthwise):
        mod = modules[name]
        permute(original_weight(mod), 0)
        permute(getattr(mod, "bias", None), 0)
    for name in group.norms:
        bn = modules[name]
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            permute(t, 0)
    for name in group.consumers:
        if name in group.depthwise:
            continue
        permute(original_weight(modules[name]), 1)
    return perm
