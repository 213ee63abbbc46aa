"""Weight transforms (fake quantization, sparsity masks) as torch parametrizations.

Several transforms may sit on one weight (mask, then quantizer); removing one must keep the
others and give back the original ``Parameter`` object, which ``remove_parametrizations`` alone
does not (it drops the whole chain).
"""

from __future__ import annotations

import weakref

from torch import nn
from torch.nn.utils import parametrize

__all__ = ["add_weight_transform", "original_weight", "remove_weight_transform"]


# Parameter order of each module before its first transform, so removal restores state-dict order.
_ORDER: weakref.WeakKeyDictionary[nn.Module, list[str]] = weakref.WeakKeyDictionary()


def add_weight_transform(module: nn.Module, transform: nn.Module, name: str = "weight") -> None:
    if not parametrize.is_parametrized(module):
        _ORDER[module] = list(module._parameters)
    parametrize.register_parametrization(module, name, transform, unsafe=True)


def original_weight(module: nn.Module, name: str = "weight") -> nn.Parameter:
    """The stored (untransformed) parameter of ``module.<name>``."""
    if parametrize.is_parametrized(module, name):
        return getattr(module.parametrizations, name).original
    return getattr(module, name)


def remove_weight_transform(module: nn.Module, transform: nn.Module, name: str = "weight") -> None:
    """Remove ``transform`` from ``module.<name>``, keeping any other transforms in order."""
    if not parametrize.is_parametrized(module, name):
        return
    chain = list(getattr(module.parametrizations, name))
    if not any(t is transform for t in chain):
        return
    parametrize.remove_parametrizations(module, name, leave_parametrized=False)
    rest = [t for t in chain if t is not transform]
    if not rest and not parametrize.is_parametrized(module) and module in _ORDER:
        order = _ORDER.pop(module)
        params = module._parameters
        for key in sorted(params, key=lambda k: order.index(k) if k in order else len(order)):
            params[key] = params.pop(key)
    for t in rest:
        parametrize.register_parametrization(module, name, t, unsafe=True)
