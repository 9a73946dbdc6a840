"""User feedback on a model call, sent to the collector (`POST /api/v1/feedback`, table `llmloop.feedback`).

    llmloop.feedback(thumbs="down", comment="wrong queue")            # for the current span
    llmloop.feedback(0.8, trace_id=trace_id, key=user_id)             # later, for a trace the app kept

Validation happens in the caller (ValueError for bad arguments); sending happens in one background
thread per collector, retried for up to two minutes, never raising into the app. Each feedback carries a client
id (uuid4) so the collector stores a retried delivery once. `flush(timeout)` waits for the queue.
"""

from __future__ import annotations

import atexit
import http.client
import logging
import math
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from llmloop.instrumentation.config import current_config
from llmloop.instrumentation.registry import Connection, error_message, resolve_token, resolve_url

log = logging.getLogger("llmloop.instrumentation.feedback")

THUMBS = ("up", "down")
MAX_PENDING = 10_000
"""Feedback waiting to be sent per collector; more is dropped with a warning."""
RETRY_FOR = 120.0
"""Seconds a feedback is retried (network errors, 5xx, 408, 429) before it is dropped with a warning."""
RETRY_MAX = 2.0
"""Cap of the wait between attempts."""

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


def _hex_id(value: int | str, width: int, pattern: re.Pattern[str], what: str) -> str:
    text = format(value, f"0{width}x") if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not pattern.fullmatch(text.lower()) or not text.strip("0"):
        raise ValueError(f"{what} must be a non-zero {width}-digit hex string or an int, not {value!r}")
    return text.lower()


def _body(score: float | None, thumbs: str | None, comment: str | None, trace_id: int | str | None,
          span_id: int | str | None, response_id: str | None, key: object, metadata: Mapping[str, Any] | None,
          config_id: str | None) -> dict[str, Any]:
    """The API body for one feedback, or ValueError."""
    if score is None and thumbs is None:
        raise ValueError("feedback needs a score or thumbs ('up' or 'down')")
    body: dict[str, Any] = {"id": str(uuid.uuid4())}
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"feedback score must be a finite number, not {score!r}")
        body["score"] = float(score)
    if thumbs is not None:
        if thumbs not in THUMBS:
            raise ValueError(f"feedback thumbs must be 'up' or 'down', not {thumbs!r}")
        body["thumbs"] = thumbs
    if comment is not None:
        if not isinstance(comment, str):
            raise ValueError("feedback comment must be a string")
        body["comment"] = comment
    if response_id is not None and (not isinstance(response_id, str) or not response_id):
        raise ValueError("feedback response_id must be a non-empty string (the provider's response id)")
    if trace_id is None and span_id is None and response_id is None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            raise ValueError("feedback needs trace_id, span_id or response_id when no span is current")
        trace_id, span_id = context.trace_id, context.span_id
        current = current_config()
        config_id = config_id or (current.id if current else None)
    ids = {"trace_id": None if trace_id is None else _hex_id(trace_id, 32, _TRACE_ID, "trace_id"),
           "span_id": None if span_id is None else _hex_id(span_id, 16, _SPAN_ID, "span_id"),
           "response_id": response_id, "key": None if key is None else str(key), "config_id": config_id}
    body.update((name, value) for name, value in ids.items() if value is not None)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValueError("feedback metadata must be a mapping of strings")
        body["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    return body


def feedback(
    score: float | None = None,
    *,
    thumbs: str | None = None,
    comment: str | None = None,
    trace_id: int | str | None = None,
    span_id: int | str | None = None,
    response_id: str | None = None,
    key: object = None,
    metadata: Mapping[str, Any] | None = None,
    config_id: str | None = None,
    url: str | None = None,
    token: str | None = None,
) -> str:
    """Record feedback (a `score` and/or `thumbs` "up"/"down", optional `comment`) for a model call.

    Name the call by `trace_id`/`span_id` (hex strings or ints) and/or the provider's `response_id`;
    with none of them, the current span is used (and the current config id). `key`: the request key
    (user or session id); `metadata`: string pairs. Sent in the background to the collector at `url`
    (default as for `llmloop.router`); returns the feedback's id. Raises ValueError for bad arguments only.
    """
    body = _body(score, thumbs, comment, trace_id, span_id, response_id, key, metadata, config_id)
    _sender(resolve_url(url), resolve_token(token)).put(body)
    return body["id"]


class _Sender:
    """One collector's feedback queue and its sending thread.

    The oldest feedback is retried (backing off to `RETRY_MAX` s) until delivered, refused, or
    `RETRY_FOR` s old; the rest waits behind it, so a collector restart delays feedback but loses none.
    """

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self._conn = Connection(url, token)
        self._items: deque[tuple[float, dict[str, Any]]] = deque()  # (give-up time, body); the head is in flight
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="llmloop-feedback", daemon=True).start()

    def put(self, body: dict[str, Any]) -> None:
        with self._cond:
            if len(self._items) >= MAX_PENDING:
                log.warning("llmloop feedback: %d waiting for %s, dropping feedback %s", len(self._items),
                            self.url, body["id"])
                return
            self._items.append((time.monotonic() + RETRY_FOR, body))
            self._cond.notify_all()

    def _run(self) -> None:
        delay, problem = 0.0, ""
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                expired = 0
                while self._items and self._items[0][0] <= time.monotonic():
                    self._items.popleft()
                    expired += 1
                if expired:
                    self._cond.notify_all()
                    log.warning("llmloop feedback: %d not delivered to %s within %g s (%s), dropped", expired,
                                self.url, RETRY_FOR, problem)
                if not self._items:
                    continue
                body = self._items[0][1]
            try:
                problem = self._send(body)
            except Exception:
                log.warning("llmloop feedback: sending %s failed", body["id"], exc_info=True)
                problem = ""
            if problem:
                time.sleep(delay)
                delay = min(RETRY_MAX, delay * 2 or 0.25)
                continue
            delay = 0.0
            with self._cond:
                self._items.popleft()
                self._cond.notify_all()

    def _send(self, body: dict[str, Any]) -> str:
        """Deliver `body`; the problem worth retrying, or '' when done (delivered, or refused for good)."""
        try:
            status, _, payload = self._conn.request("POST", "/feedback", body)
        except (OSError, http.client.HTTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
        if status < 300:
            return ""
        problem = f"HTTP {status}: {error_message(status, payload)}"
        if status >= 500 or status in (408, 429):
            return problem
        log.warning("llmloop feedback %s refused by %s: %s", body["id"], self.url, problem)
        return ""

    def flush(self, deadline: float) -> bool:
        with self._cond:
            while self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


_senders: dict[tuple[str, str | None], _Sender] = {}
_senders_lock = threading.Lock()


def _sender(url: str, token: str | None) -> _Sender:
    with _senders_lock:
        sender = _senders.get((url, token))
        if sender is None:
            sender = _senders[(url, token)] = _Sender(url, token)
        return sender


def flush(timeout: float = 5.0) -> bool:
    """Wait until all feedback recorded so far is delivered (or given up); False if `timeout` ran out."""
    deadline = time.monotonic() + timeout
    with _senders_lock:
        senders = list(_senders.values())
    return all([sender.flush(deadline) for sender in senders])


atexit.register(flush, 2.0)


def _after_fork_in_child() -> None:
    global _senders_lock
    _senders_lock = threading.Lock()
    _senders.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
