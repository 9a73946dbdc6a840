"""Span attribute names: the OTel GenAI conventions llmloop sets or reads, and llmloop's own.

Each name is a constant with a one-line docstring saying what it means and when it is set.
The `gen_ai.*` names follow the newest GenAI semantic conventions (open-telemetry/semantic-conventions-genai);
`llmloop.*` names are the few the loop adds. Values are the attribute keys as they appear on the wire.
"""

from __future__ import annotations

from typing import Final

# --- gen_ai.*: what the call was ------------------------------------------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
"""The operation: `chat`, `embeddings`, ... (see `Operation`). Required on every GenAI span."""

GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
"""The provider flavour: `anthropic`, `openai`, `azure.ai.openai`, ... (see `Provider`). Required."""

GEN_AI_SYSTEM: Final = "gen_ai.system"
"""Deprecated predecessor of `gen_ai.provider.name`; read (never written) to recognise older GenAI spans."""

GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
"""The conversation (session/thread) the call belongs to, when the application says so."""

GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
"""The requested output type: `text`, `json`, ... when the request asks for one."""

# --- gen_ai.request.* ------------------------------------------------------------------------------

GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
"""The model name the application asked for (for Azure: the deployment name)."""

GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
"""The maximum number of tokens the model may generate."""

GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
"""The sampling temperature, when set."""

GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
"""The nucleus-sampling probability mass, when set."""

GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
"""The top-k sampling cut-off, when set."""

GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
"""The frequency penalty, when set."""

GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
"""The presence penalty, when set."""

GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
"""The stop sequences (string array), when set."""

GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
"""The sampling seed, when set."""

GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
"""How many candidates were requested, set only when not 1."""

GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
"""True when the response is streamed."""

GEN_AI_REQUEST_REASONING_LEVEL: Final = "gen_ai.request.reasoning.level"
"""The requested reasoning effort (`low`, `medium`, `high`, ...), when set."""

GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
"""Embeddings: the requested encoding formats (string array)."""

GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
"""Embeddings: the requested number of dimensions."""

# --- gen_ai.response.* -----------------------------------------------------------------------------

GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
"""The provider's id of the response (message / completion / response id)."""

GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
"""The model that actually answered (often a dated snapshot of the requested one)."""

GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
"""Why generation stopped, one entry per candidate, as the provider says it (`end_turn`, `stop`, `tool_use`, ...)."""

GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
"""Streams: seconds from the request to the first chunk that carries output content."""

# --- gen_ai.usage.* --------------------------------------------------------------------------------

GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
"""Input tokens, including cached ones (cache read + cache write), as the conventions ask."""

GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
"""Output tokens, including reasoning tokens."""

GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
"""Input tokens served from the provider's prompt cache."""

GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
"""Input tokens written to the provider's prompt cache (older name: `...cache_creation.input_tokens`)."""

GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
"""Output tokens spent on reasoning/thinking (included in the output tokens)."""

# --- gen_ai content (opt-in, see capture mode) -----------------------------------------------------

GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
"""Opt-in: the request's messages as JSON (gen-ai-input-messages.json schema), within the byte budget."""

GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
"""Opt-in: the model's output messages as JSON (gen-ai-output-messages.json schema), within the byte budget."""

GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
"""Opt-in: the system instructions as JSON parts (gen-ai-system-instructions.json schema)."""

GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
"""Opt-in: the tool definitions offered to the model, as JSON."""

GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
"""Metric attribute of `gen_ai.client.token.usage`: `input` or `output`."""

# --- general OTel ----------------------------------------------------------------------------------

ERROR_TYPE: Final = "error.type"
"""Set (with status ERROR) when the call failed: the API's error type, the status code, or the exception type."""

SERVER_ADDRESS: Final = "server.address"
"""Host of the API endpoint the client talks to."""

SERVER_PORT: Final = "server.port"
"""Port of the API endpoint the client talks to."""

# --- provider-specific ----------------------------------------------------------------------------

OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
"""OpenAI: the requested service tier, when set."""

OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
"""OpenAI: the service tier that served the request."""

OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"
"""OpenAI: the backend configuration fingerprint of the response."""

ANTHROPIC_STOP_REASON: Final = "anthropic.message.stop_reason"
"""Anthropic SDK native tracing: the message's stop reason (llmloop mirrors it into the finish reasons)."""

ANTHROPIC_SCOPE: Final = "com.anthropic.sdk.python"
"""Instrumentation scope of the anthropic SDK's native spans (platform clients append `.<platform>`)."""

OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
"""OpenInference's span kind (`LLM`, `EMBEDDING`, ...): read to recognise another instrumentor's GenAI span."""

# --- llmloop.* -------------------------------------------------------------------------------------

LLMLOOP_CONFIG_ID: Final = "llmloop.config.id"
"""The config that produced the call (`support-triage@2026-06-03.1`), from `use_config`, baggage or env."""

LLMLOOP_CONFIG_FINGERPRINT: Final = "llmloop.config.fingerprint"
"""Short stable hash of what defines the call's config (see `semconv.fingerprint`)."""

LLMLOOP_ROLLOUT_NAME: Final = "llmloop.rollout.name"
"""The rollout (config name) the router picked the config from, when a router did."""

LLMLOOP_ROLLOUT_ARM: Final = "llmloop.rollout.arm"
"""The rollout arm that served the call: `control`, `canary` or `shadow`."""

LLMLOOP_TOOL_CALL_NAMES: Final = "llmloop.tool_calls.names"
"""Names of the tools the model asked to call in its response (string array, in order)."""

LLMLOOP_TOOL_CALL_IDS: Final = "llmloop.tool_calls.ids"
"""Ids of the tool calls the model made in its response (string array, same order as the names)."""

LLMLOOP_RETRIEVAL_DOCUMENT_IDS: Final = "llmloop.retrieval.document_ids"
"""Ids of the documents retrieved for this call, from `llmloop.record_retrieval(ids)` (string array)."""

LLMLOOP_CONTENT_TRUNCATED: Final = "llmloop.content.truncated"
"""True when captured content was shortened to fit the byte budget (the JSON stays valid)."""

# --- baggage keys (W3C baggage, carried to downstream services) -----------------------------------

BAGGAGE_CONFIG_ID: Final = LLMLOOP_CONFIG_ID
"""Baggage entry carrying the config id across processes."""

BAGGAGE_ROLLOUT_NAME: Final = LLMLOOP_ROLLOUT_NAME
"""Baggage entry carrying the rollout name across processes."""

BAGGAGE_ROLLOUT_ARM: Final = LLMLOOP_ROLLOUT_ARM
"""Baggage entry carrying the rollout arm across processes."""


class Operation:
    """Values of `gen_ai.operation.name` llmloop emits."""

    CHAT: Final = "chat"
    EMBEDDINGS: Final = "embeddings"
    TEXT_COMPLETION: Final = "text_completion"


class Provider:
    """Values of `gen_ai.provider.name` llmloop emits."""

    ANTHROPIC: Final = "anthropic"
    OPENAI: Final = "openai"
    AZURE_OPENAI: Final = "azure.ai.openai"
    AWS_BEDROCK: Final = "aws.bedrock"
    GCP_VERTEX_AI: Final = "gcp.vertex_ai"


GENAI_MARKERS: Final = (GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM)
"""Attributes whose presence at span start marks a span as a GenAI span (ours, native, or another library's)."""
