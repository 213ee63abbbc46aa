"""Check a decoded config against :data:`~searchq.config.schema.NNCF_SCHEMA`.

jsonschema finds the problems; this module turns the first one (in file order) into a one-line
:class:`ConfigError` that names the key, the bad value, what is allowed and how to fix it, located
in the original file through the :class:`SourceMap`. It also applies NNCF's root-level rule (extra
root keys are the user's, not errors) and warns once about NNCF keys searchq ignores.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from searchq.config._common import (
    KeyPath,
    did_you_mean,
    format_path,
    json_type_name,
    short_repr,
    suggest,
)
from searchq.config.positions import SourceMap
from searchq.config.schema import (
    ALL_ALGORITHMS,
    KNOWN_ROOT_KEYS,
    NNCF_SCHEMA,
    SECTION_KEYS,
    UNUSED_KEYS,
)
from searchq.config.warn import warn_once

__all__ = ["validate_document"]

_VALIDATOR = jsonschema.Draft202012Validator(NNCF_SCHEMA)
_NNCF_SECTIONS = (
    "input_info",
    "compression",
    "bootstrapNAS",
    "target_device",
    "hw_config_type",
    "log_dir",
)


def validate_document(doc: object, source: SourceMap | None, *, strict: bool = False) -> None:
    """Raise ConfigError for the first problem in ``doc``; warn about ignored NNCF keys.

    With ``strict=True`` ignored NNCF keys are errors instead of warnings.
    """
    locate = source or SourceMap(None)
    if not isinstance(doc, Mapping):
        raise locate.error(
            (), f"the top level must be a JSON object {{...}}, got {json_type_name(doc)}"
        )
    _check_json_like(doc, locate)
    _check_root_keys(doc, locate)
    errors = list(_VALIDATOR.iter_errors(doc))
    if errors:
        path, message = min((_describe(e) for e in errors), key=lambda pm: _order(pm[0], locate))
        raise locate.error(path, message)
    _report_unused_keys(doc, locate, strict=strict)


def _order(path: KeyPath, source: SourceMap) -> tuple[int, int, int]:
    where = source.locate(path) or (0, 0)
    return where[0], where[1], -len(path)


def _walk(value: object, path: KeyPath = ()) -> Iterator[tuple[KeyPath, object]]:
    # Iterative so that absurdly deep dicts given directly (not via a file) cannot blow the stack.
    stack: list[tuple[KeyPath, object]] = [(path, value)]
    while stack:
        here, item = stack.pop()
        yield here, item
        if isinstance(item, Mapping):
            stack.extend(((*here, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend(((*here, i), v) for i, v in reversed(list(enumerate(item))))


def _check_json_like(doc: Mapping[Any, Any], source: SourceMap) -> None:
    for path, value in _walk(doc):
        if isinstance(value, Mapping):
            bad = next((k for k in value if not isinstance(k, str)), None)
            if bad is not None:
                raise source.error(
                    path, f"key {short_repr(bad)} is not a string; JSON object keys are strings"
                )
        elif not isinstance(value, (list, tuple, str, int, float, type(None))):
            raise source.error(
                path,
                f"{type(value).__name__} is not a JSON value; use objects, arrays, strings, "
                "numbers, booleans or null",
            )
        elif (
            isinstance(value, float)
            and not math.isfinite(value)
            and path
            and path[0] in _NNCF_SECTIONS
        ):
            raise source.error(path, f"{value} is not a usable number; write a finite number")


def _check_root_keys(doc: Mapping[str, Any], source: SourceMap) -> None:
    has_section = any(k in doc for k in SECTION_KEYS)
    for key in doc:
        if key in KNOWN_ROOT_KEYS:
            continue
        # No prefix matching here: a pipeline key like "input" must not trigger a warning.
        near = suggest(key, KNOWN_ROOT_KEYS, prefixes=False)
        if near is None:
            continue  # the user's own training-pipeline setting; kept in SearchqConfig.extra
        if near in SECTION_KEYS and not has_section:
            raise source.error(
                (key,),
                f"unknown top-level key {key!r} and no 'compression' or 'bootstrapNAS' section "
                f"found; did you mean {near!r}? rename the key",
            )
        warn_once(
            key,
            f"kept as a pipeline setting, but it looks like NNCF's {near!r}; rename it if that "
            "was meant",
        )


def _report_unused_keys(doc: Mapping[str, Any], source: SourceMap, *, strict: bool) -> None:
    entries = doc.get("compression", [])
    entries = [entries] if isinstance(entries, Mapping) else list(entries)
    for section, keys in UNUSED_KEYS.items():
        for base in _section_paths(doc, entries, section):
            node: Any = doc
            for part in base:
                node = node[part]
            for key in keys:
                if isinstance(node, Mapping) and key in node:
                    shown = format_path([p for p in (*base, key) if not isinstance(p, int)])
                    message = "NNCF key that searchq does not act on; it is ignored (remove it)"
                    if strict:
                        raise source.error(
                            (*base, key), message.replace("it is ignored", "strict mode refuses it")
                        )
                    warn_once(shown, message)


def _section_paths(
    doc: Mapping[str, Any], entries: list[Any], section: tuple[str, ...]
) -> Iterator[KeyPath]:
    if not section:
        yield ()
        return
    head, rest = section[0], section[1:]
    single = isinstance(doc.get("compression"), Mapping)
    for index, entry in enumerate(entries):
        if not (isinstance(entry, Mapping) and entry.get("algorithm") == head):
            continue
        node: Any = entry
        for part in rest:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            base: KeyPath = ("compression",) if single else ("compression", index)
            yield (*base, *rest)


# ---------------------------------------------------------------------------------------------
# jsonschema error -> (path, one-line message)


def _describe(err: jsonschema.ValidationError) -> tuple[KeyPath, str]:
    path: KeyPath = tuple(err.absolute_path)
    value, keyword, schema = err.instance, err.validator, err.schema
    if keyword == "additionalProperties" and isinstance(value, Mapping):
        allowed = list(schema.get("properties", {}))
        extra = next(k for k in value if k not in allowed)
        return (*path, extra), (
            f"unknown key {extra!r}{did_you_mean(extra, allowed)}; allowed keys here: "
            f"{', '.join(allowed)}; rename or remove it"
        )
    if keyword in ("enum", "const"):
        allowed = list(err.validator_value) if keyword == "enum" else [err.validator_value]
        if path and path[-1] == "algorithm" and value == "bootstrapNAS":
            return (
                path,
                "'bootstrapNAS' is a top-level section, not a compression algorithm; move it "
                "next to 'compression'",
            )
        shown = ", ".join(repr(a) for a in allowed)
        return (
            path,
            f"{short_repr(value)} is not allowed{did_you_mean(value, [str(a) for a in allowed])}"
            f"; allowed values: {shown}",
        )
    if keyword == "type":
        expected = (
            err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        )
        hint = _type_hint(path, value)
        return (
            path,
            f"expected {' or '.join(expected)}, got {json_type_name(value)} "
            f"{short_repr(value)}{hint}",
        )
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return path, f"{short_repr(value)} is out of range; allowed: {_range_text(schema)}"
    if keyword == "required":
        missing = next(k for k in err.validator_value if k not in value)
        if missing == "algorithm":
            names = ", ".join(repr(a) for a in ALL_ALGORITHMS)
            return path, f"missing key 'algorithm'; add \"algorithm\": one of {names}"
        return path, f"missing required key {missing!r}; add it"
    if keyword in ("minItems", "maxItems"):
        if len(path) >= 2 and path[-2] == "bitwidth_per_scope":
            return (
                path,
                f"expected a [bits, scope] pair, got {short_repr(value)}; write e.g. "
                '[8, "Model/NNCFConv2d[conv1]/conv2d_0|WEIGHT"]',
            )
        bound = err.validator_value
        word = "at least" if keyword == "minItems" else "at most"
        return path, f"needs {word} {bound} item(s), got {len(value)}: {short_repr(value)}"
    if keyword == "uniqueItems":
        return path, f"{short_repr(value)} lists a value twice; list each value once"
    if keyword == "minLength":
        return path, "must not be an empty string; give a non-empty value or remove the key"
    return path, err.message.replace("\n", " ")


def _type_hint(path: KeyPath, value: object) -> str:
    last = path[-1] if path else None
    if last == "bits" and isinstance(value, list) and "precision" not in path:
        return "; this takes one bitwidth — candidate lists go in initializer.precision.bits"
    if last == "bits" and isinstance(value, (int, float)) and "precision" in path:
        return f"; write a list of candidate bitwidths, e.g. [{value}]"
    if last in ("ignored_scopes", "target_scopes"):
        return "; write a scope string or a list of scope strings"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "; write true or false without quotes"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return "; give a value of the expected type"
        return "; write the number without quotes"
    return "; give a value of the expected type"


def _range_text(schema: Mapping[str, Any]) -> str:
    kind = "integers" if schema.get("type") == "integer" else "numbers"
    parts = []
    if "minimum" in schema:
        parts.append(f">= {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        parts.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        parts.append(f"<= {schema['maximum']}")
    if "exclusiveMaximum" in schema:
        parts.append(f"< {schema['exclusiveMaximum']}")
    return f"{kind} {' and '.join(parts)}"
