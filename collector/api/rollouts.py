"""Rollouts as a fold of events, and the rules that turn an action into the next event.

Pure: no store, no HTTP. A rollout (named after a config name) has a control config, optionally a
canary with a weight (percent of keys) and planned steps, optionally a shadow, and a paused flag.
Every action appends one `Event`; `fold` replays them into the `State`, so history is never lost.

- start: a new canary (and shadow) against the current control, or `control` for a first rollout.
- promote: the canary moves to its next step (event `step`); past the last step, or on reaching
  100, it becomes the control (event `promote`).
- rollback: canary and shadow cleared, the control serves 100% in one step. A reason is required.
- pause / resume: the `paused` flag; routing is unchanged, automatic promotion must wait.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
"""A config (and rollout) name: the part of a config id before '@'."""

DEFAULT_STEPS = (5.0, 25.0, 50.0, 100.0)
ACTIONS = ("start", "step", "promote", "rollback", "pause", "resume")
"""Event kinds; `step` and `promote` both come from the promote action."""


def iso_ms(time_ms: int) -> str:
    """Milliseconds since the epoch as the API writes times: `2026-06-03T10:00:00.000Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_ms // 1000)) + f".{time_ms % 1000:03d}Z"


class RolloutError(Exception):
    """An action the rules refuse; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Event:
    """One row of `rollout_events`."""

    rollout: str
    seq: int
    time_ms: int
    action: str
    actor: str = ""
    reason: str = ""
    control: str = ""
    canary: str = ""
    shadow: str = ""
    weight: float = 0.0
    steps: tuple[float, ...] = ()


@dataclass(frozen=True)
class State:
    """A rollout after its events; `version` is the seq of the last one (0: never started)."""

    name: str
    version: int = 0
    paused: bool = False
    control: str = ""
    canary: str = ""
    weight: float = 0.0
    steps: tuple[float, ...] = ()
    shadow: str = ""
    updated_ms: int = 0


def apply(state: State, event: Event) -> State:
    """`state` after `event`."""
    state = replace(state, version=event.seq, updated_ms=event.time_ms)
    if event.action == "start":
        return replace(state, control=event.control, canary=event.canary, shadow=event.shadow,
                       weight=event.weight, steps=event.steps, paused=False)
    if event.action == "step":
        return replace(state, weight=event.weight)
    if event.action == "promote":  # a shadow of the new control would only repeat it
        return replace(state, control=event.control, canary="", weight=0.0, steps=(), paused=False,
                       shadow="" if state.shadow == event.control else state.shadow)
    if event.action == "rollback":
        return replace(state, canary="", shadow="", weight=0.0, steps=(), paused=False)
    if event.action in ("pause", "resume"):
        return replace(state, paused=event.action == "pause")
    raise ValueError(f"unknown rollout event {event.action!r} (seq {event.seq} of {event.rollout})")


def fold(name: str, events: Sequence[Event]) -> State:
    """The state of rollout `name` after `events` (in seq order)."""
    state = State(name)
    for event in events:
        state = apply(state, event)
    return state


def _event(state: State, action: str, actor: str, reason: str, time_ms: int, **arguments: object) -> Event:
    return Event(state.name, state.version + 1, time_ms, action, actor, reason, **arguments)


def _require_rollout(state: State) -> None:
    if not state.version:
        raise RolloutError(404, f"no rollout named {state.name!r}: start one with "
                                f"`llmloop rollout start {state.name} --canary ID --control ID`")


def _require_canary(state: State, doing: str) -> None:
    _require_rollout(state)
    if not state.canary:
        raise RolloutError(409, f"rollout {state.name!r} has no canary to {doing}: its control "
                                f"{state.control} serves 100%; start one with `llmloop rollout start`")


def start(state: State, canary: str, published: Mapping[str, str], control: str | None = None,
          shadow: str | None = None, weight: float | None = None, steps: Sequence[float] | None = None,
          actor: str = "", reason: str = "", time_ms: int = 0) -> Event:
    """The `start` event; `published` maps each referenced config id that exists to its name."""
    if state.canary:
        raise RolloutError(409, f"rollout {state.name!r} already has canary {state.canary} at {state.weight:g}%: "
                                "promote it or roll it back before starting another")
    control = control or state.control
    if not control:
        raise RolloutError(422, f"rollout {state.name!r} has no control yet: pass the config serving now "
                                "as control (`--control ID`)")
    for role, config in (("control", control), ("canary", canary), ("shadow", shadow)):
        if not config:
            continue
        if config not in published:
            raise RolloutError(422, f"{role} config {config!r} is not published: "
                                    "publish it first with `llmloop config publish FILE`")
        if published[config] != state.name:
            raise RolloutError(422, f"{role} config {config!r} is a version of {published[config]!r}, not of "
                                    f"{state.name!r}: a rollout routes between versions of one config name")
    if canary == control:
        raise RolloutError(422, f"canary {canary} is already the control of rollout {state.name!r}")
    if shadow in (control, canary):
        role = "control" if shadow == control else "canary"
        raise RolloutError(422, f"shadow {shadow} is the {role} of rollout {state.name!r}: it would run twice on "
                                "the same input; shadow another version")
    plan = tuple(float(step) for step in (steps or DEFAULT_STEPS))
    if any(not 0 < step <= 100 for step in plan) or any(a >= b for a, b in pairwise(plan)):
        raise RolloutError(422, f"steps must increase strictly, each above 0 and at most 100; got {list(plan)}")
    weight = plan[0] if weight is None else float(weight)
    if not 0 <= weight < 100:
        raise RolloutError(422, f"the canary's weight must be at least 0 and below 100, got {weight:g}; "
                                "it reaches 100% by promotion")
    return _event(state, "start", actor, reason, time_ms, control=control, canary=canary, shadow=shadow or "",
                  weight=weight, steps=plan)


def promote(state: State, actor: str = "", reason: str = "", time_ms: int = 0) -> Event:
    """The canary's next step (`step`), or the canary as the new control (`promote`) past the last one."""
    _require_canary(state, "promote")
    following = [step for step in state.steps if step > state.weight]
    if following and following[0] < 100:
        return _event(state, "step", actor, reason, time_ms, canary=state.canary, weight=following[0])
    return _event(state, "promote", actor, reason, time_ms, control=state.canary)


def rollback(state: State, actor: str = "", reason: str = "", time_ms: int = 0) -> Event:
    """Canary and shadow cleared: the control serves 100%."""
    _require_rollout(state)
    if not reason.strip():
        raise RolloutError(422, "a rollback needs a reason (`--reason`): it is kept in the rollout's history")
    if not state.canary and not state.shadow:
        raise RolloutError(409, f"rollout {state.name!r} has nothing to roll back: its control {state.control} "
                                "already serves 100% with no shadow")
    return _event(state, "rollback", actor, reason, time_ms, canary=state.canary, shadow=state.shadow)


def pause(state: State, actor: str = "", reason: str = "", time_ms: int = 0) -> Event:
    """Hold automatic promotion of the canary."""
    _require_canary(state, "pause")
    if state.paused:
        raise RolloutError(409, f"rollout {state.name!r} is already paused; resume it with `llmloop rollout resume`")
    return _event(state, "pause", actor, reason, time_ms)


def resume(state: State, actor: str = "", reason: str = "", time_ms: int = 0) -> Event:
    """Allow automatic promotion again."""
    _require_canary(state, "resume")
    if not state.paused:
        raise RolloutError(409, f"rollout {state.name!r} is not paused")
    return _event(state, "resume", actor, reason, time_ms)


SIMPLE_ACTIONS = {"promote": promote, "rollback": rollback, "pause": pause, "resume": resume}
"""The actions that take only actor and reason, by URL name."""
