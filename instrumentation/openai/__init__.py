"""openai: the patched methods (chat completions, responses, embeddings; sync and async; Azure included)."""

from llmloop.instrumentation.openai import patch as _patch
from llmloop.instrumentation.openai.package import _instruments
from llmloop.instrumentation.patching import Patch

SDK = "openai"
"""Top-level module of the SDK these patches target."""

_CHAT = "openai.resources.chat.completions"

PATCHES: tuple[Patch, ...] = (
    Patch(_CHAT, "Completions.create", _patch.chat_create),
    Patch(_CHAT, "AsyncCompletions.create", _patch.async_chat_create),
    Patch("openai.resources.responses", "Responses.create", _patch.responses_create),
    Patch("openai.resources.responses", "AsyncResponses.create", _patch.async_responses_create),
    Patch("openai.resources.embeddings", "Embeddings.create", _patch.embeddings_create),
    Patch("openai.resources.embeddings", "AsyncEmbeddings.create", _patch.async_embeddings_create),
)
"""`chat.completions.stream()` and `responses.stream()` call these `create`s, so the helpers are covered."""

__all__ = ["PATCHES", "SDK", "_instruments"]
