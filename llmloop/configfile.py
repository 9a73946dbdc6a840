"""Config files on the user's side: read TOML or YAML, spot floating model aliases, render as YAML.

A config file holds one config document (see the collector's `ConfigDocument`): `id`
(`name@version`), `provider`, `model`, `prompt` (named templates), `params`, and optionally `tools`,
`retrieval`, `metadata`, `description`. Validation is the collector's; this module only parses.
"""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path
from typing import Any

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORDER = ("id", "description", "provider", "model", "prompt", "params", "tools", "retrieval", "metadata")
"""Key order when a config is rendered, so diffs line up."""

# A pinned snapshot ends in a date or version: -20250929, -2024-08-06, -0613, -2407, -002, @20240620,
# 08-2024, optionally followed by a Bedrock-style -v1:0.
_PINNED = re.compile(r"(?:[-@](?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|\d{3,4}))(?:-v\d+(?::\d+)?)?$")


class ConfigFileError(Exception):
    """A file that is not a readable config document."""


def _jsonable(value: Any) -> Any:
    """TOML and YAML dates and times as ISO strings; the rest as is."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def load(path: Path) -> dict[str, Any]:
    """The config document in `path` (.toml, .yaml or .yml)."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
        if suffix == ".toml":
            document = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            documents = list(yaml.safe_load_all(text))
            if len(documents) != 1:
                raise ConfigFileError(f"holds {len(documents)} YAML documents; put one config in each file")
            document = documents[0]
        else:
            raise ConfigFileError("is neither .toml nor .yaml/.yml")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"cannot be read: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigFileError("must hold a mapping of config fields (id, provider, model, prompt, params, ...)")
    return _jsonable(document)


def floating_alias(model: object) -> bool:
    """Whether `model` looks like an alias that moves (`claude-sonnet-4-5`, `gpt-4o`) rather than a
    dated snapshot (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`)."""
    return isinstance(model, str) and bool(model) and not _PINNED.search(model)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a prompt diffs line by line."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)


def render(document: dict[str, Any]) -> str:
    """`document` as YAML: known keys in `ORDER`, others after; multi-line strings as blocks."""
    ordered = {key: document[key] for key in ORDER if key in document}
    ordered |= {key: value for key, value in document.items() if key not in ordered}
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
