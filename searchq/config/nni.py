"""NNI ``config_list`` selectors -> the modules each entry configures.

Semantics follow NNI 3 (``nni/compression/base/config.py``, docs ``compression/config_list.rst``):

* an entry selects ``(op_names ∪ names matching op_names_re) ∩ modules of op_types``; with no
  name selector, every module of ``op_types``; then removes ``exclude_op_names``, names matching
  ``exclude_op_names_re`` and modules of ``exclude_op_types``;
* regular expressions use ``re.match`` (anchored at the start, not a full match), like NNI;
* types compare the class name (``type(module).__name__``); ``"default"`` expands to NNI's
  ``weighted_modules`` (Conv1d/2d/3d, ConvTranspose1d/2d/3d, Linear, Bilinear, PReLU,
  Embedding, EmbeddingBag) — of these, searchq quantizes Conv and Linear;
* when several entries select a module, the later entry wins (its settings replace earlier ones);
* legacy ``"exclude": true`` entries remove what they select from every entry, whatever their
  position (NNI 3's conversion of legacy lists; NNI 2 used "last matching entry wins"); legacy
  ``op_partial_names`` become ``op_names_re`` ``.*<name>.*``.

Unlike NNI, names / patterns / types that match nothing are reported back, not dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from searchq.config._common import json_type_name, short_repr, thaw
from searchq.errors import ConfigError

__all__ = ["WEIGHTED_MODULES", "NNISelection", "resolve_nni_config_list"]

WEIGHTED_MODULES = (
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Linear", "Bilinear", "PReLU", "Embedding", "EmbeddingBag",
)  # fmt: skip
_LIST_KEYS = (
    "op_names", "op_names_re", "op_types", "op_partial_names",
    "exclude_op_names", "exclude_op_names_re", "exclude_op_types",
)  # fmt: skip
SELECTOR_KEYS = (*_LIST_KEYS, "exclude")


class NNISelection(dict[str, dict[str, Any]]):
    """``{module name: settings of the entry that configures it}`` (settings = the entry without
    its selector keys). ``entry_of[name]`` is that entry's index; ``unmatched`` lists selectors
    that matched nothing, e.g. ``"config_list[0].op_names: 'fc3' is not a module"``."""

    def __init__(
        self,
        items: Iterable[tuple[str, dict[str, Any]]],
        entry_of: Mapping[str, int],
        unmatched: Sequence[str],
    ):
        super().__init__(items)
        self.entry_of = dict(entry_of)
        self.unmatched = tuple(unmatched)


def _strings(entry: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if key == "op_types" and value == "default":  # NNI 1.x wrote the bare string
        value = ["default"]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"got {short_repr(value)}; expected a list of strings", key=f"{where}.{key}"
        )
    return list(value)


def _compile(patterns: list[str], where: str) -> list[re.Pattern[str]]:
    try:
        return [re.compile(p) for p in patterns]
    except re.error as err:
        raise ConfigError(
            f"invalid regular expression ({err}); fix the pattern", key=where
        ) from None


def _expand(types: list[str]) -> list[str]:
    out: list[str] = []
    for name in types:
        out.extend(WEIGHTED_MODULES if name == "default" else [name])
    return out


class _Entry:
    def __init__(self, entry: object, index: int, modules: Mapping[str, str]) -> None:
        where = f"config_list[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"got {json_type_name(entry)} {short_repr(entry)}; expected an object", key=where
            )
        lists = {k: _strings(entry, k, where) for k in _LIST_KEYS}
        exclude = entry.get("exclude", False)
        if not isinstance(exclude, bool):
            raise ConfigError(
                f"got {short_repr(exclude)}; expected true or false", key=f"{where}.exclude"
            )
        if not (
            lists["op_names"]
            or lists["op_names_re"]
            or lists["op_types"]
            or lists["op_partial_names"]
        ):
            raise ConfigError(
                "selects nothing; add 'op_types', 'op_names' or 'op_names_re'", key=where
            )
        self.where, self.exclude = where, exclude
        self.settings = {k: thaw(v) for k, v in entry.items() if k not in SELECTOR_KEYS}
        self.lists = lists
        partial = [f".*{re.escape(p)}.*" for p in lists["op_partial_names"]]
        self.name_res = _compile(lists["op_names_re"] + partial, f"{where}.op_names_re")
        self.exclude_res = _compile(lists["exclude_op_names_re"], f"{where}.exclude_op_names_re")
        self.unmatched: list[str] = []
        self.selected = self._select(modules)

    def _select(self, modules: Mapping[str, str]) -> set[str]:
        lists, where = self.lists, self.where
        names = set()
        for name in lists["op_names"]:
            if name in modules:
                names.add(name)
            else:
                self.unmatched.append(f"{where}.op_names: {name!r} is not a module")
        for pattern in self.name_res:
            hits = {n for n in modules if pattern.match(n)}
            if not hits:
                self.unmatched.append(f"{where}.op_names_re: {pattern.pattern!r} matches no module")
            names |= hits
        types = _expand(lists["op_types"])
        for name in lists["op_types"]:
            wanted = WEIGHTED_MODULES if name == "default" else (name,)
            if not any(t in wanted for t in modules.values()):
                self.unmatched.append(f"{where}.op_types: no module of type {name!r}")
        has_names = bool(lists["op_names"] or self.name_res)
        if types:
            of_type = {n for n, t in modules.items() if t in types}
            names = names & of_type if has_names else of_type
        names -= set(lists["exclude_op_names"])
        names = {n for n in names if not any(p.match(n) for p in self.exclude_res)}
        excluded_types = _expand(lists["exclude_op_types"])
        return {n for n in names if modules[n] not in excluded_types}


def resolve_nni_config_list(config_list: object, modules: Mapping[str, str]) -> NNISelection:
    """Apply NNI ``config_list`` selectors to ``modules`` (``{name: class name}`` in model order,
    e.g. ``{n: type(m).__name__ for n, m in model.named_modules()}``)."""
    if not isinstance(config_list, (list, tuple)):
        raise ConfigError(
            f"got {json_type_name(config_list)}; expected a list of selector objects",
            key="config_list",
        )
    if not isinstance(modules, Mapping):
        raise ConfigError(
            f"got {type(modules).__name__}; expected a mapping of module name to class name",
            key="modules",
        )
    entries = [_Entry(e, i, modules) for i, e in enumerate(config_list)]
    excluded = set().union(*(e.selected for e in entries if e.exclude))
    chosen: dict[str, int] = {}
    unmatched: list[str] = []
    for index, entry in enumerate(entries):
        unmatched.extend(entry.unmatched)
        if entry.exclude:
            continue
        kept = entry.selected - excluded
        if not kept:
            unmatched.append(f"{entry.where} selects no module")
        for name in kept:
            chosen[name] = index  # later entries override earlier ones
    ordered = [n for n in modules if n in chosen]
    return NNISelection(
        ((n, dict(entries[chosen[n]].settings)) for n in ordered),
        {n: chosen[n] for n in ordered},
        unmatched,
    )
