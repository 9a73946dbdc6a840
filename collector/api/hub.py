"""Live rollout states: events from the store folded in memory, actions appended, waiters woken.

Every rollout's events are loaded at start-up. An action reads the rollout's newest events, applies
the rules of `rollouts.py`, appends one event (all under one lock) and wakes the long-poll waiters
at once. A poll of the events table every second picks up events appended by another collector on
a shared server. The API's state reads and waits touch memory only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client
from starlette.concurrency import run_in_threadpool

from llmloop import queries
from llmloop.collector.api.configs import ConfigStore
from llmloop.collector.api.rollouts import Event, RolloutError, State, fold, iso_ms
from llmloop.collector.store import write_settings
from llmloop.queries import Layout

log = logging.getLogger("llmloop.rollouts")

POLL_INTERVAL = 1.0
"""Seconds between looks at the events table for other collectors' events."""

_COLUMNS = ["rollout", "seq", "time", "action", "actor", "reason", "control", "canary", "shadow", "weight", "steps",
            "writer"]


def event_json(event: Event) -> dict[str, Any]:
    """An event as the history endpoint returns it."""
    return {"seq": event.seq, "time": iso_ms(event.time_ms), "action": event.action, "actor": event.actor,
            "reason": event.reason, "control": event.control or None, "canary": event.canary or None,
            "shadow": event.shadow or None, "weight": event.weight, "steps": list(event.steps)}


class Rollout:
    """One rollout as served: its events, and its state rendered once per version."""

    __slots__ = ("body", "etag", "events", "state")

    def __init__(self, events: list[Event], state: dict[str, Any]) -> None:
        self.events = events
        self.state = state
        self.body = json.dumps(state, separators=(",", ":")).encode()
        self.etag = etag(state["name"], state["version"])


def etag(name: str, version: int) -> str:
    """The ETag of a rollout at `version` (0: not started)."""
    return f'"{name}:{version}"'


class RolloutHub:
    """Rollout states for the API; create it before serving, run `watch()` on the serving loop."""

    def __init__(self, client: Client, layout: Layout, configs: ConfigStore) -> None:
        self._client = client
        self._configs = configs
        self._table = f"{layout.database}.rollout_events"
        self._insert_settings = write_settings(layout)
        self._events_sql = queries.render(queries.load("registry/rollout_events.sql"), layout)[0]
        self._versions_sql = queries.render(queries.load("registry/rollout_versions.sql"), layout)[0]
        self._writer_sql = queries.render(queries.load("registry/rollout_writer.sql"), layout)[0]
        self._lock = threading.Lock()  # an action reads, decides and appends as one step
        self._rollouts: dict[str, Rollout] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        loaded: dict[str, list[Event]] = {}
        for event in self._read_events("", 0):
            loaded.setdefault(event.rollout, []).append(event)
        for name, events in loaded.items():
            self._rollouts[name] = self._rollout(name, events)
        log.info("%d rollout(s) loaded", len(self._rollouts))

    # Reads (event loop, memory only)

    def get(self, name: str) -> Rollout | None:
        """The rollout `name` as last seen, or None if it never started."""
        return self._rollouts.get(name)

    def current_etag(self, name: str) -> str:
        """The ETag of rollout `name` now (`"<name>:0"` if it never started)."""
        rollout = self._rollouts.get(name)
        return rollout.etag if rollout else etag(name, 0)

    def names(self) -> list[str]:
        """Names of the rollouts that exist, sorted."""
        return sorted(self._rollouts)

    async def wait(self, name: str, seen: str, timeout: float) -> None:
        """Return once rollout `name` no longer has ETag `seen`, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self._closing and self.current_etag(name) == seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            changed = self._changed.setdefault(name, asyncio.Event())
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                return

    # Actions (event loop; the store work runs in a thread)

    async def act(self, name: str, decide: Callable[[State, int], Event]) -> Rollout:
        """Append the event `decide(state, now_ms)` makes of the rollout's current state; the new state.

        `decide` raises `RolloutError` to refuse. It runs under the lock, in a thread, so it may read
        the store (e.g. look configs up).
        """
        rollout = await run_in_threadpool(self._act, name, decide)
        self._update(rollout)
        return rollout

    def _act(self, name: str, decide: Callable[[State, int], Event]) -> Rollout:
        with self._lock:
            events = self._newest_events(name)
            event = decide(fold(name, events), time.time_ns() // 1_000_000)
            writer = uuid.uuid4().hex
            row = [event.rollout, event.seq, datetime.fromtimestamp(event.time_ms / 1000, timezone.utc),
                   event.action, event.actor, event.reason, event.control, event.canary, event.shadow,
                   event.weight, list(event.steps), writer]
            self._client.insert(self._table, [row], column_names=_COLUMNS, settings={
                **self._insert_settings, "insert_deduplication_token": f"{event.rollout}:{event.seq}"})
            stored = self._client.query(self._writer_sql, parameters={"rollout": name, "seq": event.seq})
            if [row[0] for row in stored.result_rows] != [writer]:  # another collector appended this seq first
                raise RolloutError(409, f"rollout {name!r} changed at the same moment through another collector; "
                                        "read its state (`llmloop rollout status`) and try again")
            return self._rollout(name, [*events, event])

    # Other collectors' events

    async def watch(self, interval: float = POLL_INTERVAL) -> None:
        """Poll the events table for events appended elsewhere, until cancelled."""
        self._loop = asyncio.get_running_loop()
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                updates = await run_in_threadpool(self._poll)
            except Exception as exc:  # the store is away: keep serving what is in memory
                if not failing:
                    log.warning("cannot read rollout events, serving the states in memory: %.300s", exc)
                failing = True
                continue
            if failing:
                log.info("rollout events readable again")
                failing = False
            for rollout in updates:
                self._update(rollout)

    def close(self) -> None:
        """Answer every waiting long poll now (shutdown); safe from any thread."""
        self._closing = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_all)

    def _poll(self) -> list[Rollout]:
        return [self._rollout(name, self._newest_events(name))
                for name, version in self._client.query(self._versions_sql).result_rows
                if name not in self._rollouts or version > self._rollouts[name].events[-1].seq]

    # Helpers

    def _newest_events(self, name: str) -> list[Event]:
        known = self._rollouts.get(name)
        events = list(known.events) if known else []
        return events + self._read_events(name, events[-1].seq if events else 0)

    def _read_events(self, name: str, after: int) -> list[Event]:
        result = self._client.query(self._events_sql, parameters={"rollout": name, "after": after})
        return [Event(rollout, seq, time_ms, action, actor, reason, control, canary, shadow, weight, tuple(steps))
                for rollout, seq, time_ms, action, actor, reason, control, canary, shadow, weight, steps
                in result.result_rows]

    def _rollout(self, name: str, events: list[Event]) -> Rollout:
        """Rollout `name` after `events`, its state rendered with the config documents filled in."""
        def config(config_id: str) -> dict[str, Any] | None:
            return (self._configs.get(config_id) or {"id": config_id}) if config_id else None

        state = fold(name, events)
        return Rollout(events, {
            "name": state.name, "version": state.version, "paused": state.paused, "control": config(state.control),
            "canary": config(state.canary), "weight": state.weight, "steps": list(state.steps),
            "shadow": config(state.shadow), "updated": iso_ms(state.updated_ms)})

    def _update(self, rollout: Rollout) -> None:
        """Keep the newer of what is in memory and `rollout` (updates can arrive out of order); wake waiters."""
        name = rollout.state["name"]
        known = self._rollouts.get(name)
        if known is not None and known.events[-1].seq >= rollout.events[-1].seq:
            return
        self._rollouts[name] = rollout
        changed = self._changed.pop(name, None)
        if changed is not None:
            changed.set()

    def _wake_all(self) -> None:
        for changed in self._changed.values():
            changed.set()
        self._changed.clear()
