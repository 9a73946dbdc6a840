"""Turning instrumentation on and off: `instrument()`, `uninstrument()`, and the OTel instrumentor classes.

`instrument()` builds one `Telemetry`, adds `LlmloopSpanProcessor` to the tracer provider (when it is
an SDK provider), and patches each provider SDK when it is imported (a post-import hook, so an app that
never imports `openai` pays nothing for it). `AnthropicInstrumentor` / `OpenAIInstrumentor` are what
the `opentelemetry_instrumentor` entry points `llmloop_anthropic` / `llmloop_openai` load, so plain
`opentelemetry-instrument` picks llmloop up too.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Collection, Iterable
from typing import Any

import wrapt
from opentelemetry import trace

from llmloop.instrumentation import config as _config
from llmloop.instrumentation.capture import CaptureMode
from llmloop.instrumentation.processor import LlmloopSpanProcessor
from llmloop.instrumentation.telemetry import Telemetry

log = logging.getLogger("llmloop.instrumentation")

PROVIDERS: dict[str, str] = {
    "anthropic": "llmloop.instrumentation.anthropic",
    "openai": "llmloop.instrumentation.openai",
}
"""Provider name -> llmloop module holding its `SDK` and `PATCHES`."""

_lock = threading.RLock()
_telemetry: Telemetry | None = None
_providers: set[str] = set()
_hooks: set[str] = set()
_processors: dict[int, LlmloopSpanProcessor] = {}


def _add_processor(tracer_provider: Any) -> LlmloopSpanProcessor | None:
    provider = tracer_provider or trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):
        log.info("llmloop: the tracer provider is not the OTel SDK's; spans of native SDK tracing and of "
                 "downstream services are not tagged with the config id")
        return None
    processor = _processors.get(id(provider))
    if processor is None:
        processor = LlmloopSpanProcessor()
        provider.add_span_processor(processor)
        _processors[id(provider)] = processor
    processor.enabled = True
    return processor


def _patch_provider(name: str, telemetry: Telemetry) -> None:
    module = importlib.import_module(PROVIDERS[name])
    with _lock:
        if _telemetry is not telemetry or name not in _providers:
            return
        installed = [p for p in module.PATCHES if p.install(telemetry)]
    log.debug("llmloop: patched %s (%d methods)", name, len(installed))


def _on_import(name: str) -> Any:
    def hook(_module: Any) -> None:
        telemetry = _telemetry
        if telemetry is not None and telemetry.active:
            try:
                _patch_provider(name, telemetry)
            except Exception:
                log.debug("llmloop: could not patch %s", name, exc_info=True)

    return hook


def instrument(
    providers: Iterable[str] | None = None,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    logger_provider: Any = None,
    capture: CaptureMode | None = None,
    max_content_bytes: int | None = None,
) -> Telemetry:
    """Patch the provider SDKs (default: all of `PROVIDERS`) and return the active `Telemetry`.

    Calling it again adds providers to the running instrumentation; call `uninstrument()` first to
    change providers or settings. Reads `LLMLOOP_CONFIG_ID` and the capture switch now, once.
    """
    global _telemetry
    names = list(providers) if providers is not None else list(PROVIDERS)
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown provider(s) {unknown}; llmloop instruments {sorted(PROVIDERS)}")
    with _lock:
        if _telemetry is None or not _telemetry.active:
            _config.reload_default()
            _telemetry = Telemetry(tracer_provider, meter_provider, logger_provider, capture, max_content_bytes)
            _add_processor(tracer_provider)
        telemetry = _telemetry
        new = [n for n in names if n not in _providers]
        _providers.update(new)
    for name in new:
        sdk = importlib.import_module(PROVIDERS[name]).SDK
        if name not in _hooks:
            _hooks.add(name)
            wrapt.register_post_import_hook(_on_import(name), sdk)
        else:
            import sys

            if sdk in sys.modules:
                _patch_provider(name, telemetry)
    return telemetry


def uninstrument(providers: Iterable[str] | None = None) -> None:
    """Remove llmloop's patches (default: all). Wrappers the SDK cached meanwhile become pass-through."""
    global _telemetry
    with _lock:
        names = list(providers) if providers is not None else list(_providers)
        for name in names:
            if name in _providers:
                _providers.discard(name)
                for patch in importlib.import_module(PROVIDERS[name]).PATCHES:
                    patch.uninstall()
        if not _providers and _telemetry is not None:
            _telemetry.active = False
            _telemetry = None
            for processor in _processors.values():
                processor.enabled = False


def active_telemetry() -> Telemetry | None:
    """The running instrumentation's `Telemetry`, if any."""
    return _telemetry


class _ProviderInstrumentor:
    """Entry-point face of one provider, in the shape `opentelemetry-instrument` expects."""

    provider = ""

    def instrumentation_dependencies(self) -> Collection[str]:
        module = importlib.import_module(PROVIDERS[self.provider])
        return module._instruments

    def instrument(self, **kwargs: Any) -> None:
        instrument([self.provider], tracer_provider=kwargs.get("tracer_provider"),
                   meter_provider=kwargs.get("meter_provider"), logger_provider=kwargs.get("logger_provider"))

    def uninstrument(self, **kwargs: Any) -> None:
        uninstrument([self.provider])


class AnthropicInstrumentor(_ProviderInstrumentor):
    """llmloop for the anthropic SDK (entry point `llmloop_anthropic`)."""

    provider = "anthropic"


class OpenAIInstrumentor(_ProviderInstrumentor):
    """llmloop for the openai SDK, incl. Azure clients (entry point `llmloop_openai`)."""

    provider = "openai"
