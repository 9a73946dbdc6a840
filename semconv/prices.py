"""Model prices: load and validate the effective-dated price table (USD per 1M tokens).

The shipped table is `prices.toml` beside this module; a user's override file has the same format
(see the header of `prices.toml` for the fields). `load_prices` returns validated `Price` rows; the
ClickHouse side stores them and computes cost at query time, so a corrected row reprices history.

Lookup rule the data assumes (implemented in SQL, not here). For a span with provider P, model M
(the response model, else the request model) and start time T, compared case-insensitively:

1. Candidate names, most specific first: M itself; M without a provider prefix (everything up to the
   last `/`, as in `openai/gpt-4o`, `models/...` or a Bedrock ARN, then a Bedrock vendor prefix with
   an optional geography: `anthropic.`, `us.anthropic.`, `eu.`, `apac.`, `global.` ...); then that
   name after stripping, one at a time, each trailing version or date suffix: `-v1:0` / `-v2` (Bedrock,
   Vertex), `@20240620` (Vertex), `-20250514` (Anthropic), `-2024-08-06` (OpenAI), `-latest`, and
   the `-0` Anthropic uses for a `.0` release (`claude-sonnet-4-0`). The first candidate that names
   any row wins, so a priced snapshot (`gpt-4o-2024-05-13`) beats its family (`gpt-4o`).
2. Rows of that name with provider P; if there are none (P is a hosting platform such as aws.bedrock,
   gcp.vertex_ai or azure.ai.openai), the rows of that name whose provider is not a hosting platform
   (the model's first-party price). The shipped table has a single provider per model name.
3. The row with the latest `effective_from` on or before T's date. No row: cost is NULL.

Cost from one row, with OTel token counts (input tokens include cache reads and cache writes;
output tokens include reasoning): (input - cache_read - cache_write) x `input` + cache_read x
`cache_read` + 5-minute writes x `cache_write` + 1-hour writes x `cache_write_1h` + output x `output`
+ reasoning x (`reasoning` - `output`). An absent price means "not billed separately": cache_read and
cache_write fall back to `input`, cache_write_1h to `cache_write`, reasoning to `output`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Final

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["PRICE_FIELDS", "Price", "PriceError", "load_prices", "parse_prices"]

PRICE_FIELDS: Final = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")
"""The per-token-kind price columns, in table order (USD per 1M tokens)."""

_REQUIRED: Final = ("model", "provider", "effective_from", "input", "output")
_OPTIONAL_PRICES: Final = ("cache_read", "cache_write", "cache_write_1h", "reasoning")
_KEYS: Final = ("model", "provider", "effective_from", *PRICE_FIELDS, "source")


class PriceError(ValueError):
    """A prices file that cannot be used; the message names the file, the entry and the field."""


@dataclass(frozen=True, slots=True)
class Price:
    """One price row: what a model costs from `effective_from` until the model's next row."""

    model: str
    provider: str
    effective_from: date
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    reasoning: float | None = None
    source: str | None = None


def load_prices(path: str | Path | None = None) -> list[Price]:
    """Load and validate a prices file (the shipped table by default), sorted by provider, model, date.

    Raises `PriceError` naming the entry and field of the first problem found.
    """
    if path is None:
        name = "prices.toml (shipped)"
        text = resources.files("llmloop.semconv").joinpath("prices.toml").read_text(encoding="utf-8")
    else:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise PriceError(f"{name}: cannot read prices file: {e}") from e
    return parse_prices(text, name)


def parse_prices(text: str, name: str) -> list[Price]:
    """Validate the text of a prices file (`name` says where it came from, for error messages)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PriceError(f"{name}: not valid TOML: {e}") from e

    extra = sorted(set(doc) - {"price"})
    if extra:
        raise PriceError(f"{name}: unknown top-level key(s) {', '.join(extra)}; expected only [[price]] entries")
    entries = doc.get("price", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PriceError(f"{name}: `price` must be an array of tables, written as [[price]] entries")

    rows: list[Price] = []
    seen: dict[tuple[str, str, date], int] = {}
    for number, entry in enumerate(entries, start=1):
        row = _parse_entry(entry, f"{name}: [[price]] #{number}{_label(entry)}")
        key = (row.model, row.provider, row.effective_from)
        if key in seen:
            raise PriceError(
                f"{name}: [[price]] #{number}{_label(entry)}: duplicate of #{seen[key]} "
                f"(same model, provider and effective_from {row.effective_from.isoformat()})"
            )
        seen[key] = number
        rows.append(row)
    return sorted(rows, key=lambda r: (r.provider, r.model, r.effective_from))


def _label(entry: dict[str, Any]) -> str:
    model = entry.get("model")
    return f" (model {model!r})" if isinstance(model, str) else ""


def _parse_entry(entry: dict[str, Any], where: str) -> Price:
    unknown = [k for k in entry if k not in _KEYS]
    if unknown:
        raise PriceError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(_KEYS)}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise PriceError(f"{where}: missing required field {missing[0]!r}")
    source = entry.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise PriceError(f"{where}: field 'source' must be a non-empty string")
    return Price(
        model=_name(entry, "model", where),
        provider=_name(entry, "provider", where),
        effective_from=_date(entry["effective_from"], where),
        input=_amount(entry["input"], "input", where),
        output=_amount(entry["output"], "output", where),
        **{k: _amount(entry[k], k, where) for k in _OPTIONAL_PRICES if k in entry},
        source=source,
    )


def _name(entry: dict[str, Any], field: str, where: str) -> str:
    value = entry[field]
    if not isinstance(value, str) or not value.strip() or value != value.strip().lower():
        raise PriceError(f"{where}: field {field!r} must be a non-empty lower-case string, got {value!r}")
    return value


def _date(value: object, where: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    elif type(value) is date:  # a TOML local date, not a datetime
        return value
    raise PriceError(f"{where}: field 'effective_from' must be a date like 2025-06-10, got {value!r}")


def _amount(value: object, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PriceError(f"{where}: field {field!r} must be a number (USD per 1M tokens), got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise PriceError(f"{where}: field {field!r} must be a finite price >= 0, got {value!r}")
    return float(value)
