"""llmloop: the production loop for LLM features, on OpenTelemetry and ClickHouse.

The app-side API is re-exported here (`llmloop.use_config(...)`, `llmloop.router(...)`, `llmloop.feedback(...)`),
loaded on first use so that the collector's command line does not import the instrumentation.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_APP_API = ("instrument", "uninstrument", "use_config", "record_retrieval", "current_config", "router", "feedback")

__all__ = ["__version__", *_APP_API]


def __getattr__(name: str) -> Any:
    if name in _APP_API:
        from llmloop import instrumentation

        return getattr(instrumentation, name)
    raise AttributeError(f"module 'llmloop' has no attribute {name!r}")
