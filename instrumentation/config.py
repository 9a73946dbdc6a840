"""The config context: which config produced the model calls made in a scope.

`use_config("support-triage@2026-06-03.1")` marks every GenAI span started inside it with
`llmloop.config.id` (and `llmloop.rollout.name` / `llmloop.rollout.arm` when a router says so). The
scope lives in OpenTelemetry baggage, so it follows threads/tasks the way OTel context does and
crosses process boundaries with the W3C `baggage` header: a downstream service running llmloop's span
processor tags its GenAI spans with the same config. `LLMLOOP_CONFIG_ID` is the process default.

`record_retrieval(ids)` attaches retrieved document ids to the current GenAI span, or, when no GenAI
span is current (the usual "retrieve, then call the model" order), to the next one started in this context.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context

from llmloop.semconv import attributes as A

F = TypeVar("F", bound=Callable[..., Any])

ENV_CONFIG_ID = "LLMLOOP_CONFIG_ID"
"""Environment variable naming the process-wide default config id."""

ARMS = ("control", "canary", "shadow")
"""The rollout arms a scope may name."""


@dataclass(frozen=True)
class ConfigRef:
    """The config of the current scope: its id and, when a router chose it, the rollout name and arm."""

    id: str
    rollout: str | None = None
    arm: str | None = None


_default: ConfigRef | None = None


def reload_default() -> ConfigRef | None:
    """Re-read `LLMLOOP_CONFIG_ID` (done once at import and again by `instrument()`)."""
    global _default
    value = os.environ.get(ENV_CONFIG_ID, "").strip()
    _default = ConfigRef(value) if value else None
    return _default


reload_default()


def current_config(ctx: Context | None = None) -> ConfigRef | None:
    """The config of `ctx` (default: the current context): baggage first, then the process default."""
    entries = baggage.get_all(ctx)
    config_id = entries.get(A.BAGGAGE_CONFIG_ID) if entries else None
    if not config_id:
        return _default
    rollout = entries.get(A.BAGGAGE_ROLLOUT_NAME)
    arm = entries.get(A.BAGGAGE_ROLLOUT_ARM)
    return ConfigRef(str(config_id), str(rollout) if rollout else None, str(arm) if arm else None)


def config_attributes(config: ConfigRef | None) -> dict[str, str]:
    """The `llmloop.*` span attributes naming `config` (empty for None)."""
    if config is None:
        return {}
    attrs = {A.LLMLOOP_CONFIG_ID: config.id}
    if config.rollout:
        attrs[A.LLMLOOP_ROLLOUT_NAME] = config.rollout
    if config.arm:
        attrs[A.LLMLOOP_ROLLOUT_ARM] = config.arm
    return attrs


class use_config:
    """Context manager and decorator: model calls inside are tagged with `config_id`.

    ``with llmloop.use_config("support-triage@2026-06-03.1"): ...`` or ``@llmloop.use_config("...")``
    on a sync or async function. `rollout` and `arm` (``control`` | ``canary`` | ``shadow``) are set by the
    rollout router. Scopes nest; the innermost wins. Values travel in OTel baggage.
    """

    def __init__(self, config_id: str, *, rollout: str | None = None, arm: str | None = None) -> None:
        if not isinstance(config_id, str) or not config_id.strip():
            raise ValueError("use_config needs a non-empty config id, e.g. 'support-triage@2026-06-03.1'")
        if arm is not None and arm not in ARMS:
            raise ValueError(f"rollout arm must be one of {', '.join(ARMS)}, not {arm!r}")
        self.config = ConfigRef(config_id.strip(), rollout, arm)
        self._tokens: list[object] = []

    def _context(self) -> Context:
        ctx = baggage.set_baggage(A.BAGGAGE_CONFIG_ID, self.config.id)
        # Inner scopes replace the rollout fields too, so a plain use_config inside a routed one is plain.
        for key, value in ((A.BAGGAGE_ROLLOUT_NAME, self.config.rollout), (A.BAGGAGE_ROLLOUT_ARM, self.config.arm)):
            ctx = baggage.set_baggage(key, value, ctx) if value else baggage.remove_baggage(key, ctx)
        return ctx

    def __enter__(self) -> ConfigRef:
        self._tokens.append(context.attach(self._context()))
        return self.config

    def __exit__(self, *exc: object) -> None:
        if self._tokens:
            context.detach(self._tokens.pop())

    async def __aenter__(self) -> ConfigRef:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        config = self.config

        def scope() -> use_config:
            return use_config(config.id, rollout=config.rollout, arm=config.arm)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with scope():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with scope():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


# --- retrieval ---------------------------------------------------------------------------------------

_pending_retrieval: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "llmloop_pending_retrieval", default=None
)


def is_genai_span(span: object) -> bool:
    """Whether `span` (an SDK span) carries GenAI marker attributes (ours, native SDK or another library's)."""
    attrs = getattr(span, "attributes", None)
    if not attrs:
        return False
    return any(key in attrs for key in A.GENAI_MARKERS) or A.OPENINFERENCE_SPAN_KIND in attrs


def record_retrieval(ids: Iterable[object]) -> None:
    """Record the ids of the documents retrieved for the current (or next) model call.

    Sets `llmloop.retrieval.document_ids` on the current GenAI span when one is current and recording;
    otherwise the ids wait in this context and go on the next GenAI span started in it. Calling it
    again before that span adds to the list. Never raises.
    """
    try:
        values = [str(i) for i in ids]
        span = trace.get_current_span()
        if span.is_recording() and is_genai_span(span):
            previous = span.attributes.get(A.LLMLOOP_RETRIEVAL_DOCUMENT_IDS) or ()  # type: ignore[attr-defined]
            span.set_attribute(A.LLMLOOP_RETRIEVAL_DOCUMENT_IDS, [*previous, *values])
            return
        pending = _pending_retrieval.get()
        _pending_retrieval.set([*(pending or ()), *values])
    except Exception:  # pragma: no cover - defensive: never reach the app
        return


def take_pending_retrieval() -> list[str] | None:
    """The ids waiting for the next GenAI span in this context, clearing them (None when there are none)."""
    pending = _pending_retrieval.get()
    if pending is not None:
        _pending_retrieval.set(None)
    return pending
