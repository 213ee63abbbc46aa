"""``ignored_scopes`` / ``target_scopes`` matching on module names, NNCF addresses and ``{re}``.

A scope may be written three ways, and old NNCF configs keep working:

* a dotted module name (``layer1.0.conv1``): selects that module and everything below it
  (prefix match on ``.`` boundaries, so ``layer1`` does not select ``layer10``);
* an NNCF graph address (``ResNet/Sequential[layer1]/BasicBlock[0]/NNCFConv2d[conv1]/conv2d_0``,
  optionally with ``|WEIGHT`` / ``|OUTPUT`` / ``|INPUT<n>``): mapped to the module it names. An
  address that ends in an operation (``conv2d_0``) selects exactly that module; one that ends in a
  module (``ResNet/Sequential[layer1]``) selects the module and everything below it;
* ``{re}`` + a regular expression: as in NNCF 2.x (``nncf/common/scopes.py``), every ``{re}`` is
  removed and the rest is applied with ``re.search`` (unanchored; add ``^``/``$`` to anchor) —
  to the dotted name AND to the NNCF-style address of the module (built from the class names when
  they are given), so patterns written against NNCF addresses still match.

NNCF 2.x itself compares non-regex scopes by exact string equality on operation names; the prefix
rule above is NNCF 1.x's and is what a module-level tool needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from searchq.config._common import short_repr
from searchq.errors import ConfigError

__all__ = ["MODEL_INPUT", "NNCFAddress", "ScopeMatch", "match_scopes", "nncf_scope_to_module"]

#: Module name given to NNCF's ``/nncf_model_input_<i>`` nodes (op_index = input index).
MODEL_INPUT = "<model_input>"

_BRACKETED = re.compile(r"^(?P<type>[^\[\]]*)\[(?P<name>.*)\]$")
_OP = re.compile(r"^(?P<op>.+)_(?P<index>\d+)$")
_SUFFIX = re.compile(r"^(?P<kind>WEIGHT|OUTPUT|INPUT)(?P<port>\d*)$")
_NNCF_WRAPPED = {
    "Conv1d": "conv1d", "Conv2d": "conv2d", "Conv3d": "conv3d",
    "ConvTranspose1d": "conv_transpose1d", "ConvTranspose2d": "conv_transpose2d",
    "ConvTranspose3d": "conv_transpose3d", "Linear": "linear", "BatchNorm1d": "batch_norm",
    "BatchNorm2d": "batch_norm", "BatchNorm3d": "batch_norm", "Embedding": "embedding",
    "EmbeddingBag": "embedding_bag", "GroupNorm": "group_norm", "LayerNorm": "layer_norm",
}  # fmt: skip


@dataclass(frozen=True)
class NNCFAddress:
    """A parsed NNCF node name / quantizer id. Unpacks as ``(module_name, op_index, kind)``."""

    module_name: str
    op_index: int | None
    kind: str | None
    op_name: str | None = None
    input_port: int | None = None
    root: str = ""
    types: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[object]:
        return iter((self.module_name, self.op_index, self.kind))


def _split_components(body: str) -> list[str]:
    # "/" separates scope components except inside [...] (a module attribute name may hold "/").
    parts, depth, current = [], 0, ""
    for char in body:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "/" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def nncf_scope_to_module(scope: str) -> NNCFAddress:
    """Map ``ResNet/Sequential[layer1]/BasicBlock[0]/NNCFConv2d[conv1]/conv2d_0|WEIGHT`` to
    ``("layer1.0.conv1", 0, "WEIGHT")`` (plus op name, class names and input port as attributes).

    ``/nncf_model_input_<i>|OUTPUT`` becomes ``(MODEL_INPUT, i, "OUTPUT")``; an address without an
    operation part has ``op_index`` None; the root model's own operations have module_name "".
    """
    if not isinstance(scope, str) or not scope:
        raise ConfigError(f"got {short_repr(scope)}; expected an NNCF scope string", key="scope")
    body, _, suffix = scope.partition("|")
    kind = port = None
    if suffix:
        match = _SUFFIX.match(suffix)
        if match is None:
            raise ConfigError(
                f"{scope!r} ends in {'|' + suffix!r}; allowed: |WEIGHT, |OUTPUT, |INPUT<n>",
                key="scope",
            )
        kind = match["kind"]
        port = int(match["port"]) if match["port"] else None
    root, *rest = _split_components(body)
    names: list[str] = []
    types: list[str] = []
    op_name = op_index = None
    for position, part in enumerate(rest):
        bracketed = _BRACKETED.match(part)
        if bracketed is not None:
            types.append(bracketed["type"])
            names.append(bracketed["name"])
            continue
        op = _OP.match(part)
        if op is None or position != len(rest) - 1:
            raise ConfigError(
                f"{scope!r}: component {part!r} is neither Class[name] nor an operation like "
                "conv2d_0; copy the address from NNCF's graph dump",
                key="scope",
            )
        op_name, op_index = op["op"], int(op["index"])
    if not root and op_name == "nncf_model_input" and not names:
        return NNCFAddress(MODEL_INPUT, op_index, kind, op_name, port)
    return NNCFAddress(".".join(names), op_index, kind, op_name, port, root, tuple(types))


def is_nncf_address(scope: str) -> bool:
    """True if ``scope`` is written in NNCF's address form rather than as a module name."""
    return any(c in scope for c in "/[|")


class ScopeMatch(list[str]):
    """The selected module names (a list), plus the scopes that matched no module."""

    def __init__(
        self,
        names: Iterable[str],
        unmatched_ignored: Sequence[str],
        unmatched_target: Sequence[str],
    ):
        super().__init__(names)
        self.unmatched_ignored = tuple(unmatched_ignored)
        self.unmatched_target = tuple(unmatched_target)

    @property
    def unmatched(self) -> tuple[str, ...]:
        return self.unmatched_ignored + self.unmatched_target


def _address_forms(name: str, types: Mapping[str, str]) -> tuple[str, ...]:
    # Rebuild NNCF's address for a module from the class names of it and its parents.
    parts = name.split(".") if name else []
    components = []
    for depth in range(1, len(parts) + 1):
        cls = types.get(".".join(parts[:depth]))
        if cls is None:
            return ()
        wrapped = f"NNCF{cls}" if cls in _NNCF_WRAPPED else cls
        components.append(f"{wrapped}[{parts[depth - 1]}]")
    base = "/".join([types.get("", ""), *components])
    op = _NNCF_WRAPPED.get(types.get(name, ""))
    return (base, f"{base}/{op}_0") if op else (base,)


def _matcher(scope: object, types: Mapping[str, str] | None, which: str):  # type: ignore[no-untyped-def]
    if not isinstance(scope, str) or not scope:
        raise ConfigError(f"got {short_repr(scope)}; expected a non-empty scope string", key=which)
    if "{re}" in scope:
        try:
            pattern = re.compile(scope.replace("{re}", ""))
        except re.error as err:
            raise ConfigError(
                f"{scope!r} is not a valid regular expression ({err}); fix the pattern", key=which
            ) from None

        def regex(name: str) -> bool:
            forms = (name, *(_address_forms(name, types) if types is not None else ()))
            return any(pattern.search(form) for form in forms)

        return regex
    if is_nncf_address(scope):
        address = nncf_scope_to_module(scope)
        target, exact = address.module_name, address.op_name is not None
    else:
        target, exact = scope, False

    def plain(name: str) -> bool:
        return name == target or (not exact and (target == "" or name.startswith(target + ".")))

    return plain


def _as_list(scopes: str | Sequence[str] | None, which: str) -> list[str]:
    if scopes is None:
        return []
    if isinstance(scopes, str):
        return [scopes]
    if not isinstance(scopes, (list, tuple)):
        raise ConfigError(
            f"got {short_repr(scopes)}; expected a scope string or a list of them", key=which
        )
    return list(scopes)


def match_scopes(
    module_names: Iterable[str] | Mapping[str, str],
    ignored_scopes: str | Sequence[str] | None = None,
    target_scopes: str | Sequence[str] | None = None,
) -> ScopeMatch:
    """Module names selected by NNCF's rule: (no target_scopes or matches one) and matches no
    ignored scope; returned in the order of ``module_names``.

    ``module_names`` may be a mapping ``name -> class name`` (``type(m).__name__``, with ``""``
    for the root model): then ``{re}`` scopes are also tried against NNCF-style addresses.
    Scopes that match nothing are reported in ``.unmatched_ignored`` / ``.unmatched_target``
    (NNCF raises for them when ``validate_scopes`` is true — the caller decides).
    """
    types = module_names if isinstance(module_names, Mapping) else None
    names = list(module_names)
    ignored = _as_list(ignored_scopes, "ignored_scopes")
    targets = None if target_scopes is None else _as_list(target_scopes, "target_scopes")
    ignore_fns = [_matcher(s, types, "ignored_scopes") for s in ignored]
    target_fns = [_matcher(s, types, "target_scopes") for s in targets or ()]
    hit_ignored = [False] * len(ignored)
    hit_target = [False] * len(target_fns)
    selected = []
    for name in names:
        for i, fn in enumerate(target_fns):
            hit_target[i] = hit_target[i] or fn(name)
        is_target = targets is None or any(fn(name) for fn in target_fns)
        is_ignored = False
        for i, fn in enumerate(ignore_fns):
            if fn(name):
                hit_ignored[i] = is_ignored = True
        if is_target and not is_ignored:
            selected.append(name)
    return ScopeMatch(
        selected,
        [s for s, hit in zip(ignored, hit_ignored, strict=True) if not hit],
        [s for s, hit in zip(targets or (), hit_target, strict=True) if not hit],
    )
