"""NNCF 2.x's config object and its init-argument registry, for scripts written against NNCF.

``NNCFConfig`` is what NNCF scripts pass around: the decoded JSON file (a ``dict``), validated
against searchq's schema when it is made (errors name ``file:line:column`` and the key), plus the
"extra structs" that :func:`register_default_init_args` attaches — the data loaders and functions
the initialisers need (range init, BN adaptation, HAWQ traces, AutoQ rewards).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.utils.data import DataLoader

from searchq.config import SearchqConfig, load_config
from searchq.config.load import read_config_text
from searchq.config.loader import parse_json_with_comments
from searchq.errors import ConfigError

__all__ = ["InitArgs", "NNCFConfig", "as_searchq_config", "register_default_init_args"]


@dataclass
class InitArgs:
    """Data and functions for the initialisers (NNCF's ``QuantizationRangeInitArgs``,
    ``BNAdaptationInitArgs``, ``QuantizationPrecisionInitArgs`` and ``AutoQPrecisionInitArgs``
    in one struct)."""

    train_loader: DataLoader | None = None
    val_loader: DataLoader | None = None
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None
    model_eval_fn: Callable[[nn.Module], float] | None = None
    autoq_eval_fn: Callable[[nn.Module, Any], float] | None = None
    device: Any = None

    def merged(self, **given: Any) -> InitArgs:
        """These args with every non-None keyword in ``given`` taking precedence."""
        out = copy.copy(self)
        for key, value in given.items():
            if value is not None:
                setattr(out, key, value)
        return out


class NNCFConfig(dict):
    """A compression config as NNCF 2.x scripts use it: a dict with ``from_json`` / ``from_dict``.

    Validated when made, so a typo fails at once with the file position; the dict itself stays
    editable (scripts set ``config["log_dir"]`` and the like) and is validated again when
    :func:`~searchq.compress.create_compressed_model` reads it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path: str | None = None
        self._as_loaded: dict[str, Any] | None = None
        self._structs: dict[type, Any] = {}

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> NNCFConfig:
        file = os.fspath(path)
        doc, _ = parse_json_with_comments(read_config_text(file), file=file)
        load_config(file)  # validation with file positions
        config = cls(doc)
        config.path = file
        config._as_loaded = copy.deepcopy(dict(doc))  # type: ignore[call-overload]
        return config

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NNCFConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"expected a dict, got {type(d).__name__}; pass the decoded JSON")
        load_config(d)
        return cls(copy.deepcopy(dict(d)))

    # NNCF's struct registry: one struct per type
    def register_extra_structs(self, structs: Iterable[Any]) -> None:
        for struct in structs:
            self._structs[type(struct)] = struct

    def get_extra_struct(self, struct_type: type) -> Any:
        if struct_type not in self._structs:
            raise KeyError(f"no {struct_type.__name__} registered; call register_default_init_args")
        return self._structs[struct_type]

    def has_extra_struct(self, struct_type: type) -> bool:
        return struct_type in self._structs

    def get_redefinable_global_param_value_for_algo(self, param: str, algo: str) -> Any:
        """NNCF's lookup: the algorithm section's value, else the root value."""
        sections = self.get("compression", [])
        sections = [sections] if isinstance(sections, Mapping) else list(sections)
        for section in sections:
            if section.get("algorithm") == algo and param in section:
                return section[param]
        return self.get(param)

    def searchq_config(self) -> SearchqConfig:
        """The typed specs of this config (file positions in errors while the dict is as
        loaded)."""
        if self.path is not None and self._as_loaded == dict(self):
            return load_config(self.path)
        return load_config(dict(self))


def as_searchq_config(config: Any) -> SearchqConfig:
    """Accept an NNCFConfig, a plain dict, a file path or a SearchqConfig."""
    if isinstance(config, SearchqConfig):
        return config
    if isinstance(config, NNCFConfig):
        return config.searchq_config()
    if isinstance(config, Mapping):
        return load_config(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise ConfigError(
        f"config is a {type(config).__name__}; pass NNCFConfig.from_json(path), a dict or a path"
    )


def register_default_init_args(
    nncf_config: Mapping[str, Any],
    train_loader: DataLoader | None,
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
    criterion_fn: Callable[..., Tensor] | None = None,
    train_steps_fn: Callable[..., Any] | None = None,
    validate_fn: Callable[..., Any] | None = None,
    val_loader: DataLoader | None = None,
    autoq_eval_fn: Callable[[nn.Module, Any], float] | None = None,
    model_eval_fn: Callable[[nn.Module], float] | None = None,
    distributed_callbacks: Any = None,
    execution_parameters: Any = None,
    legr_train_optimizer: Any = None,
    device: Any = None,
) -> NNCFConfig:
    """Attach the initialisers' data to the config (NNCF's function, same arguments).

    ``criterion_fn(outputs, target, criterion)`` (NNCF's form) wraps ``criterion``.
    ``train_steps_fn``, ``distributed_callbacks``, ``execution_parameters`` and
    ``legr_train_optimizer`` serve algorithms searchq does not implement and are not used.
    Returns the config (an :class:`NNCFConfig`; a plain dict is converted).
    """
    config = (
        nncf_config if isinstance(nncf_config, NNCFConfig) else NNCFConfig.from_dict(nncf_config)
    )
    loss = criterion
    if criterion_fn is not None and criterion is not None:
        base = criterion

        def loss(outputs: Tensor, target: Tensor) -> Tensor:
            return criterion_fn(outputs, target, base)

    if autoq_eval_fn is None and validate_fn is not None:
        autoq_eval_fn = validate_fn
    config.register_extra_structs(
        [
            InitArgs(
                train_loader=train_loader,
                val_loader=val_loader,
                criterion=loss,
                model_eval_fn=model_eval_fn,
                autoq_eval_fn=autoq_eval_fn,
                device=device,
            )
        ]
    )
    return config
