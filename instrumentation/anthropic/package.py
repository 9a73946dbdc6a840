"""The anthropic SDK range llmloop instruments, and where native tracing starts."""

_instruments = ("anthropic >= 0.40, < 3",)
"""SDK versions the patches support (llmloop's own spans on all of them)."""

NATIVE_TRACING_SINCE = "1.14.0"
"""First SDK release whose clients trace natively; there llmloop enriches the SDK's span instead."""
