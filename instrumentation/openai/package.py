"""The openai SDK range llmloop instruments (it has no native tracing: llmloop always makes the span)."""

_instruments = ("openai >= 1.26, < 4",)
"""SDK versions the patches support."""
