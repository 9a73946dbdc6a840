"""Reading SDK requests and responses without raising: shared by the provider extractors."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def given_check(package: str) -> Callable[[Any], bool]:
    """`given(value)` for an SDK: whether a kwarg was really passed (not None / NOT_GIVEN / omit).

    The SDK's sentinel types are looked up on first use, so importing an extractor imports no SDK.
    """
    sentinels: list[tuple[type, ...]] = []

    def given(value: Any) -> bool:
        if not sentinels:
            try:
                types = importlib.import_module(f"{package}._types")
            except ImportError:
                sentinels.append((type(None),))
            else:
                sentinels.append(tuple(getattr(types, n) for n in ("NotGiven", "Omit") if hasattr(types, n)))
        return value is not None and not isinstance(value, sentinels[0])

    return given


def get(obj: Any, key: str) -> Any:
    """`obj[key]` for mappings, else `obj.key`; None when absent."""
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
