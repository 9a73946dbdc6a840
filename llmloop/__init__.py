"""llmloop: the production loop for LLM features, on OpenTelemetry and ClickHouse."""

__version__ = "0.1.0"

__all__ = ["__version__"]
