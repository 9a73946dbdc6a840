"""How a patch reads, every time: start the invocation, call the SDK, end or hand over to a wrapper.

`traced_call` / `traced_acall` are the whole life of a patched SDK method; providers pass their
extractors in. `Patch` installs and removes one wrapt wrapper, noticing another instrumentation
library's wrapper on the same method (then llmloop enriches that library's span instead of adding one).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wrapt
from opentelemetry import trace

from llmloop.instrumentation.invocation import Invocation, Request
from llmloop.instrumentation.processor import pending_adoption
from llmloop.semconv import attributes as A

log = logging.getLogger("llmloop.instrumentation")

INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_OPENINFERENCE_KINDS = frozenset({"LLM", "EMBEDDING"})
_warned: set[str] = set()
_WRAPPER_TYPES: tuple[type, ...] = tuple(
    t for t in (getattr(wrapt, name, None) for name in ("FunctionWrapper", "ObjectProxy", "BaseObjectProxy"))
    if isinstance(t, type))
"""What another library's wrapt patch looks like (wrapt 2's FunctionWrapper is no `wrapt.ObjectProxy`)."""


def warn_once(key: str, message: str) -> None:
    """A `RuntimeWarning` (and a log line) the first time `key` is seen in this process."""
    if key in _warned:
        return
    _warned.add(key)
    log.warning(message)
    with contextlib.suppress(Exception):  # warnings turned into errors (-W error) must not reach the app
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def foreign_inference_span() -> trace.Span | None:
    """The current span if another library's GenAI inference span is current and recording, else None."""
    span = trace.get_current_span()
    attrs = getattr(span, "attributes", None)
    if not attrs:
        return None
    if attrs.get(A.GEN_AI_OPERATION_NAME) in INFERENCE_OPERATIONS or \
            attrs.get(A.OPENINFERENCE_SPAN_KIND) in _OPENINFERENCE_KINDS:
        scope = getattr(span, "instrumentation_scope", None)
        if span.is_recording() and getattr(scope, "name", "") != "llmloop.instrumentation":
            return span
    return None


@dataclass
class Result:
    """What a provider does with an SDK call's return value (see `traced_call`)."""

    handle: Callable[[Invocation, Any], Any]
    """Returns what the app gets (the SDK's object, or a wrapper that ends the invocation later)."""
    error_type: Callable[[BaseException], str | None] = field(default=lambda error: None)


def _guarded_error_type(result: Result, error: BaseException) -> str | None:
    try:
        return result.error_type(error)
    except Exception:
        return None


def _begin(telemetry: Any, extract: Callable[[], Request], adopt: bool,
           patch: Patch | None) -> tuple[Invocation | None, Any, Any]:
    """Start an invocation: own span (current), or waiting to adopt a native / foreign span."""
    foreign = foreign_inference_span()
    if foreign is not None:
        warn_once("foreign-span", "llmloop: another GenAI instrumentation already traces this call; llmloop adds "
                  "its attributes to that span instead of creating a second one.")
        adopt = True
    inv = telemetry.invocation(extract)
    if inv is None:
        return None, None, None
    if foreign is not None:
        inv.foreign = True
        inv.adopt(foreign)
        return inv, None, None
    if patch is not None and patch.foreign:
        inv.foreign = inv.adopt_any = adopt = True
    if adopt:
        return inv, None, pending_adoption.set(inv)
    try:
        inv.start_span()
    except Exception:
        log.debug("llmloop: could not start the span", exc_info=True)
        return None, None, None
    return inv, inv.activate(), None


def _after(inv: Invocation, value: Any, result: Result) -> Any:
    if inv.done or inv.deferred:
        return value
    try:
        return result.handle(inv, value)
    except Exception:
        log.debug("llmloop: could not handle the SDK result", exc_info=True)
        inv.finish()
        return value


def traced_call(telemetry: Any, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                extract: Callable[[], Request], result: Result, *, adopt: bool = False,
                patch: Patch | None = None) -> Any:
    """Run a sync SDK call traced. The SDK's return value or exception reaches the app untouched."""
    if not telemetry.active:
        return wrapped(*args, **kwargs)
    inv, token, pending = _begin(telemetry, extract, adopt, patch)
    if inv is None:
        return wrapped(*args, **kwargs)
    try:
        value = wrapped(*args, **kwargs)
    except BaseException as error:
        inv.fail(error, _guarded_error_type(result, error))
        raise
    finally:
        if pending is not None:
            pending_adoption.reset(pending)
        Invocation.deactivate(token)
    return _after(inv, value, result)


async def traced_acall(telemetry: Any, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                       extract: Callable[[], Request], result: Result, *, adopt: bool = False,
                patch: Patch | None = None) -> Any:
    """Run an async SDK call traced; `result.handle` may return an awaitable (awaited here)."""
    if not telemetry.active:
        return await wrapped(*args, **kwargs)
    inv, token, pending = _begin(telemetry, extract, adopt, patch)
    if inv is None:
        return await wrapped(*args, **kwargs)
    try:
        value = await wrapped(*args, **kwargs)
    except BaseException as error:
        inv.fail(error, _guarded_error_type(result, error))
        raise
    finally:
        if pending is not None:
            pending_adoption.reset(pending)
        Invocation.deactivate(token)
    handled = _after(inv, value, result)
    if inspect.iscoroutine(handled):
        try:
            return await handled
        except Exception:
            log.debug("llmloop: could not handle the SDK result", exc_info=True)
            inv.finish()
            return value
    return handled


class Patch:
    """One wrapt patch of `module.attr` (e.g. ``Messages.create``), removable, aware of other wrappers."""

    def __init__(self, module: str, attr: str, factory: Callable[[Any, Patch], Callable[..., Any]]) -> None:
        self.module = module
        self.attr = attr
        self.factory = factory
        self.installed: Any = None
        self.foreign = False

    def _target(self) -> tuple[Any, str]:
        owner: Any = importlib.import_module(self.module)
        path = self.attr.split(".")
        for name in path[:-1]:
            owner = getattr(owner, name)
        return owner, path[-1]

    def install(self, telemetry: Any) -> bool:
        """Wrap the target; False when it does not exist in this SDK version."""
        try:
            owner, name = self._target()
            current = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
            if current is None:
                return False
            self.foreign = isinstance(current, _WRAPPER_TYPES)
            if self.foreign:
                sdk = self.module.split(".")[0]
                warn_once(f"foreign:{sdk}", f"llmloop: another instrumentation already wraps the {sdk} SDK "
                          f"({self.module}.{self.attr}); llmloop adds its attributes to that library's spans "
                          "instead of creating its own.")
            wrapt.wrap_function_wrapper(owner, name, self.factory(telemetry, self))
            self.installed = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
            return True
        except Exception:
            log.debug("llmloop: could not patch %s.%s", self.module, self.attr, exc_info=True)
            return False

    def uninstall(self) -> None:
        """Restore the original when llmloop's wrapper is still the outermost one."""
        if self.installed is None:
            return
        try:
            owner, name = self._target()
            current = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
            if current is self.installed:
                setattr(owner, name, self.installed.__wrapped__)
        except Exception:
            log.debug("llmloop: could not unpatch %s.%s", self.module, self.attr, exc_info=True)
        self.installed = None
