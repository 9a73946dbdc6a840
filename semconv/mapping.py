"""Foreign GenAI conventions mapped onto ours: tables a reviewer can read, not branches.

Spans from OpenLLMetry, OpenInference, the official OTel GenAI instrumentations (old and new), the
Anthropic SDK's native tracing and the Vercel AI SDK name the same facts differently. The collector
loads these tables into the store (`llmloop.conventions`) at start-up and its ingest view reads them,
so each typed column of `llmloop.spans` means one thing whatever the source; the mapped attributes
stay in `SpanAttributes` too. Editing a table here takes effect at the next collector start (no
migration). Structural mappings (flattened messages, events) live in the ingest view's SQL
(queries/schema/0006_conventions.sql), which names the key prefixes it rebuilds; which spans need the
mapping at all is decided from `foreign_keys()` and FLATTENED_PREFIXES (0009_lean_ingest.sql).

Token semantics (one meaning per column, as the OTel GenAI convention says):
`InputTokens` includes cache reads and cache writes; `OutputTokens` includes reasoning tokens.
Sources that report Anthropic's raw numbers (uncached input beside the cache counts) are listed in
`INPUT_EXCLUDES_CACHE`, and their cache counts are added.
"""

from __future__ import annotations

from typing import Final

ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    # canonical key: foreign keys, first present wins (the canonical key itself always wins)
    "gen_ai.provider.name": ("gen_ai.system", "llm.provider", "llm.system", "ai.model.provider"),
    "gen_ai.operation.name": ("llm.request.type", "openinference.span.kind", "ai.operationId"),
    "gen_ai.request.model": ("llm.request.model", "llm.request.model_name", "ai.model.id", "embedding.model_name"),
    "gen_ai.response.model": ("llm.response.model", "llm.response.model_name", "ai.response.model",
                              "llm.model_name", "embedding.model_name"),
    "gen_ai.response.id": ("ai.response.id", "llm.response.id"),
    "gen_ai.usage.input_tokens": ("gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens", "llm.token_count.prompt",
                                  "ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens"),
    "gen_ai.usage.output_tokens": ("gen_ai.usage.completion_tokens", "llm.usage.completion_tokens",
                                   "llm.token_count.completion", "ai.usage.outputTokens",
                                   "ai.usage.completionTokens"),
    "gen_ai.usage.cache_read.input_tokens": ("gen_ai.usage.cache_read_input_tokens",
                                             "llm.token_count.prompt_details.cache_read",
                                             "ai.usage.cachedInputTokens",
                                             "ai.usage.inputTokenDetails.cacheReadTokens"),
    "gen_ai.usage.cache_write.input_tokens": ("gen_ai.usage.cache_creation.input_tokens",
                                              "gen_ai.usage.cache_creation_input_tokens",
                                              "llm.token_count.prompt_details.cache_write",
                                              "ai.usage.inputTokenDetails.cacheWriteTokens"),
    "gen_ai.usage.reasoning.output_tokens": ("gen_ai.usage.reasoning_tokens",
                                             "llm.token_count.completion_details.reasoning",
                                             "ai.usage.reasoningTokens",
                                             "ai.usage.outputTokenDetails.reasoningTokens"),
    "gen_ai.usage.cost": ("llm.cost.total",),
    "llmloop.usage.cache_write_1h.input_tokens": ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens",),
    "gen_ai.response.finish_reasons": ("llm.finish_reason", "ai.response.finishReason",
                                       "anthropic.message.stop_reason"),
    "gen_ai.conversation.id": ("session.id", "traceloop.association.properties.session_id",
                               "ai.telemetry.metadata.sessionId"),
    "gen_ai.input.messages": ("ai.prompt.messages",),
    "gen_ai.system_instructions": (),
    "llmloop.config.id": ("traceloop.association.properties.llmloop.config.id",
                          "ai.telemetry.metadata.llmloop.config.id", "metadata.llmloop.config.id"),
    "llmloop.rollout.name": ("traceloop.association.properties.llmloop.rollout.name",
                             "ai.telemetry.metadata.llmloop.rollout.name"),
    "llmloop.rollout.arm": ("traceloop.association.properties.llmloop.rollout.arm",
                            "ai.telemetry.metadata.llmloop.rollout.arm"),
}
"""Scalar attributes: canonical key -> the foreign keys that carry the same fact, in priority order."""

QUERY_TIME_ATTRIBUTES: Final[tuple[str, ...]] = ("gen_ai.usage.cost", "llmloop.usage.cache_write_1h.input_tokens")
"""Canonical keys read when querying (`llmloop.genai_calls` cost), not at ingest: their aliases do not
make a span foreign."""

JSON_ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    "gen_ai.request.model": ("llm.invocation_parameters#model", "embedding.invocation_parameters#model",
                             "input.value#model"),
}
"""Like `ATTRIBUTES`, for facts inside a JSON attribute (`key#field`), used when no alias is present."""

SPAN_OPERATIONS: Final[dict[str, str]] = {
    # some libraries mislabel the operation attribute (legacy OpenLLMetry calls Anthropic chats "completion")
    "anthropic.chat": "chat",
    "anthropic.completion": "text_completion",
    "openai.chat": "chat",
    "openai.completion": "text_completion",
    "openai.embeddings": "embeddings",
}
"""Span names that say the operation, trusted over a foreign operation attribute (not over ours)."""

MILLISECOND_ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    "gen_ai.response.time_to_first_chunk": ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"),
}
"""Like `ATTRIBUTES`, for foreign keys measured in milliseconds where ours are in seconds."""

PROVIDERS: Final[dict[str, str]] = {
    # foreign value (lower case) -> gen_ai.provider.name; a value with a dot is also tried by its first part
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure.ai.openai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure.ai.inference": "azure.ai.inference",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "aws.bedrock": "aws.bedrock",
    "google": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "google.vertex": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google.generative-ai": "gcp.gemini",
    "gcp.gemini": "gcp.gemini",
    "gcp.gen_ai": "gcp.gen_ai",
    "cohere": "cohere",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral_ai": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "moonshot_ai": "moonshot_ai",
}
"""Provider names and flavours as sources spell them -> the spec's `gen_ai.provider.name` values."""

OPERATIONS: Final[dict[str, str]] = {
    # foreign value -> gen_ai.operation.name; a value not listed here is kept as it is
    "completion": "text_completion",
    "embedding": "embeddings",
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
    "CHAIN": "",
    "ai.generateText.doGenerate": "chat",
    "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat",
    "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings",
    "ai.embedMany.doEmbed": "embeddings",
    "ai.toolCall": "execute_tool",
    # the Vercel SDK's outer spans wrap the model calls above; they are not model calls themselves
    "ai.generateText": "invoke_workflow",
    "ai.streamText": "invoke_workflow",
    "ai.generateObject": "invoke_workflow",
    "ai.streamObject": "invoke_workflow",
    "ai.embed": "invoke_workflow",
    "ai.embedMany": "invoke_workflow",
}
"""Operation names and span kinds as sources spell them -> `gen_ai.operation.name` values."""

FLATTENED_PREFIXES: Final[tuple[str, ...]] = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.",
                                               "llm.output_messages.")
"""Key prefixes of flattened messages (`gen_ai.prompt.0.content`, ...), rebuilt by the ingest view."""

STRUCTURAL_KEYS: Final[tuple[str, ...]] = ("input.value", "output.value", "ai.prompt", "ai.response.text",
                                           "ai.response.toolCalls")
"""Keys holding request/response JSON the ingest view reads messages and instructions from."""

INPUT_EXCLUDES_CACHE: Final[tuple[str, ...]] = ()
"""Instrumentation scopes whose input-token count leaves out cache reads and writes (Anthropic's raw
`input_tokens`); the ingest view adds their cache counts so `InputTokens` means one thing."""


DUPLICATE_SOURCES: Final[tuple[str, ...]] = ("com.anthropic.sdk.python",)
"""Instrumentation scopes that trace a call another library may trace too (the Anthropic SDK's own
tracing is on whenever a tracer provider exists): `llmloop.genai_calls` leaves their span out when
another span reports the same response id."""


def foreign_keys() -> set[str]:
    """Every attribute key whose presence marks a span as foreign (see 0009_lean_ingest.sql); keys
    starting with one of FLATTENED_PREFIXES mark it too."""
    keys = {key for table in (ATTRIBUTES, MILLISECOND_ATTRIBUTES) for canonical, sources in table.items()
            if canonical not in QUERY_TIME_ATTRIBUTES for key in sources}
    keys.update(path.split("#")[0] for paths in JSON_ATTRIBUTES.values() for path in paths)
    keys.update(STRUCTURAL_KEYS)
    return keys


def tables() -> list[tuple[str, str, list[str]]]:
    """Every mapping as (table, key, values) rows, the shape the collector loads into the store."""
    rows = [("attribute", key, list(sources)) for key, sources in ATTRIBUTES.items()]
    rows += [("millisecond_attribute", key, list(sources)) for key, sources in MILLISECOND_ATTRIBUTES.items()]
    rows += [("provider", key, [value]) for key, value in PROVIDERS.items()]
    rows += [("json_attribute", key, list(paths)) for key, paths in JSON_ATTRIBUTES.items()]
    rows += [("operation", key, [value]) for key, value in OPERATIONS.items()]
    rows += [("span_operation", key, [value]) for key, value in SPAN_OPERATIONS.items()]
    rows += [("input_excludes_cache", scope, []) for scope in INPUT_EXCLUDES_CACHE]
    rows += [("duplicate_source", scope, []) for scope in DUPLICATE_SOURCES]
    rows += [("foreign_key", key, []) for key in sorted(foreign_keys())]
    rows += [("foreign_prefix", prefix, []) for prefix in FLATTENED_PREFIXES]
    return rows
