"""The config context (`use_config`, baggage, process default), retrieval ids, and the span processor."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry import baggage, context, propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmloop.instrumentation import LlmloopSpanProcessor, current_config, record_retrieval, use_config
from llmloop.instrumentation import config as config_module


def test_context_manager_sets_and_restores() -> None:
    assert current_config() is None or current_config().id != "a@1"
    with use_config("a@1") as ref:
        assert ref.id == "a@1"
        assert current_config().id == "a@1"
        assert baggage.get_baggage("llmloop.config.id") == "a@1"
        with use_config("b@2", rollout="triage", arm="canary"):
            assert current_config() == config_module.ConfigRef("b@2", "triage", "canary")
            with use_config("c@3"):
                assert current_config() == config_module.ConfigRef("c@3")  # rollout fields do not leak inward
        assert current_config().id == "a@1"
    assert baggage.get_baggage("llmloop.config.id") is None


def test_decorator_sync_and_async() -> None:
    @use_config("deco@1")
    def sync_fn() -> str:
        return current_config().id

    @use_config("adeco@1", arm="control")
    async def async_fn() -> tuple[str, str | None]:
        await asyncio.sleep(0)
        ref = current_config()
        return ref.id, ref.arm

    assert sync_fn() == "deco@1"
    assert asyncio.run(async_fn()) == ("adeco@1", "control")
    assert sync_fn.__name__ == "sync_fn"


def test_reusable_and_reentrant_object() -> None:
    scope = use_config("re@1")
    with scope, scope:
        assert current_config().id == "re@1"
    assert baggage.get_baggage("llmloop.config.id") is None


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        use_config("  ")
    with pytest.raises(ValueError, match="control, canary, shadow"):
        use_config("x@1", arm="blue")


def test_process_default_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMLOOP_CONFIG_ID", "env-default@7")
    try:
        config_module.reload_default()
        assert current_config().id == "env-default@7"
        with use_config("scoped@1"):
            assert current_config().id == "scoped@1"
    finally:
        monkeypatch.delenv("LLMLOOP_CONFIG_ID")
        config_module.reload_default()
    assert current_config() is None


def test_scope_travels_as_w3c_baggage() -> None:
    carrier: dict[str, str] = {}
    with use_config("wire@1", rollout="triage", arm="shadow"):
        propagate.inject(carrier)
    assert "llmloop.config.id=wire%401" in carrier["baggage"] or "llmloop.config.id=wire@1" in carrier["baggage"]
    received = propagate.extract(carrier)
    assert current_config(received) == config_module.ConfigRef("wire@1", "triage", "shadow")


def test_threads_do_not_inherit_without_context_copy() -> None:
    seen: list[object] = []
    with use_config("thread@1"):
        worker = threading.Thread(target=lambda: seen.append(current_config()))
        worker.start()
        worker.join()
    assert seen == [None]


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(LlmloopSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_processor_tags_foreign_genai_spans_from_context_and_baggage() -> None:
    provider, exporter = _provider()
    tracer = provider.get_tracer("some.other.instrumentation")
    with use_config("proc@1", arm="canary"):
        tracer.start_span("chat x", attributes={"gen_ai.operation.name": "chat"}).end()
        tracer.start_span("not genai").end()
    carrier = {"baggage": "llmloop.config.id=remote%401"}
    tracer.start_span("old", attributes={"gen_ai.system": "openai"}, context=propagate.extract(carrier)).end()
    genai, plain, remote = exporter.get_finished_spans()
    assert genai.attributes["llmloop.config.id"] == "proc@1"
    assert genai.attributes["llmloop.rollout.arm"] == "canary"
    assert "llmloop.config.id" not in plain.attributes
    assert remote.attributes["llmloop.config.id"] == "remote@1"


def test_record_retrieval_on_current_or_next_genai_span() -> None:
    provider, exporter = _provider()
    tracer = provider.get_tracer("x")
    token = context.attach(context.Context())
    try:
        record_retrieval(["doc-1", 2])
        record_retrieval(["doc-3"])
        with tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat"}):
            record_retrieval(["doc-4"])
        tracer.start_span("chat n", attributes={"gen_ai.operation.name": "chat"}).end()
    finally:
        context.detach(token)
    first, second = exporter.get_finished_spans()
    assert first.attributes["llmloop.retrieval.document_ids"] == ("doc-1", "2", "doc-3", "doc-4")
    assert "llmloop.retrieval.document_ids" not in second.attributes


def test_record_retrieval_never_raises() -> None:
    record_retrieval(None)  # type: ignore[arg-type]
    config_module.take_pending_retrieval()
