"""``load_config``: file or dict in, :class:`SearchqConfig` or a one-line ConfigError out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from searchq.config.config import SearchqConfig, config_from_document
from searchq.config.loader import parse_json_with_comments, read_config_text
from searchq.config.positions import SourceMap
from searchq.config.validate import validate_document
from searchq.errors import ConfigError

__all__ = ["load_config"]


def load_config(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any], *, strict: bool = False
) -> SearchqConfig:
    """Load an NNCF 2.x / searchq config file (JSON with comments) or an already-decoded dict.

    Every problem is a :class:`~searchq.errors.ConfigError` whose one-line message names the key,
    the bad value, the allowed values and the fix, located as ``file:line:column`` when loaded
    from a file. NNCF keys searchq ignores produce one :class:`SearchqWarning` per key; algorithms
    searchq does not implement load as ``UnsupportedAlgorithm`` (call ``require_supported()``).

    ``strict=True`` turns both into errors: ignored NNCF keys raise ConfigError and unsupported
    algorithms raise NotSupportedError here.
    """
    if isinstance(path_or_dict, Mapping):
        doc: object = path_or_dict
        source = SourceMap(None)
        file = None
    elif isinstance(path_or_dict, (str, os.PathLike)):
        file = os.fspath(path_or_dict)
        doc, source = parse_json_with_comments(read_config_text(file), file=file)
    else:
        raise ConfigError(
            f"expected a config file path or a dict, got {type(path_or_dict).__name__}; "
            "pass the path of an NNCF-style .json file"
        )
    try:
        validate_document(doc, source, strict=strict)
        assert isinstance(doc, Mapping)
        config = config_from_document(doc, source if file is not None else None, file)
    except RecursionError:
        raise ConfigError("nested too deeply; flatten the structure", file=file) from None
    if strict:
        config.require_supported()
    return config
