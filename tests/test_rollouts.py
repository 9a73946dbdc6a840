"""The rollout rules and the fold (collector/api/rollouts.py), without a collector."""

from __future__ import annotations

import pytest

from llmloop.collector.api import rollouts
from llmloop.collector.api.rollouts import RolloutError, State, fold

PUBLISHED = {"st@1": "st", "st@2": "st", "st@3": "st", "other@1": "other"}


def run(*actions: tuple) -> State:
    """Fold the events the rules make of `actions` ((rule, kwargs) pairs), checking seq as it goes."""
    events: list[rollouts.Event] = []
    for rule, kwargs in actions:
        state = fold("st", events)
        event = rule(state, **kwargs)
        assert event.seq == state.version + 1
        events.append(event)
    return fold("st", events)


START = (rollouts.start, {"canary": "st@2", "control": "st@1", "published": PUBLISHED})


def test_promote_walks_the_steps_then_makes_the_canary_the_control() -> None:
    state = run(START)
    assert (state.control, state.canary, state.weight, state.steps) == ("st@1", "st@2", 5, (5, 25, 50, 100))
    assert rollouts.promote(state).action == "step"
    state = run(START, (rollouts.promote, {}), (rollouts.promote, {}))
    assert state.weight == 50
    assert rollouts.promote(state).action == "promote"  # 50 -> 100
    state = run(START, *[(rollouts.promote, {})] * 3)
    assert (state.control, state.canary, state.weight, state.steps) == ("st@2", "", 0, ())


@pytest.mark.parametrize(("steps", "weight", "next_weight"), [
    ((5, 25), 25, None),          # past the last step: control
    ((5, 25, 100), 25, None),     # reaching 100: control
    ((5, 25, 50), 10, 25),        # a weight between steps moves to the next one above it
    ((5, 25, 50), 0, 5),
])
def test_next_step(steps: tuple, weight: float, next_weight: float | None) -> None:
    state = run((rollouts.start, {**START[1], "steps": steps, "weight": weight}))
    event = rollouts.promote(state)
    assert (event.weight if event.action == "step" else None) == next_weight


def test_rollback_clears_canary_and_shadow_and_keeps_history() -> None:
    state = run((rollouts.start, {**START[1], "shadow": "st@3"}), (rollouts.pause, {}),
                (rollouts.rollback, {"reason": "errors", "actor": "gate"}))
    assert (state.control, state.canary, state.shadow, state.weight, state.paused, state.version) == (
        "st@1", "", "", 0, False, 3)


def test_a_second_start_keeps_the_control_and_promotion_keeps_the_shadow() -> None:
    state = run((rollouts.start, {**START[1], "shadow": "st@3", "steps": (50,)}), (rollouts.promote, {}))
    assert (state.control, state.shadow) == ("st@2", "st@3")
    state = run((rollouts.start, {**START[1], "steps": (50,)}), (rollouts.promote, {}),
                (rollouts.start, {"canary": "st@3", "published": PUBLISHED}))
    assert (state.control, state.canary, state.shadow) == ("st@2", "st@3", "")


@pytest.mark.parametrize(("rule", "kwargs", "status", "message"), [
    (rollouts.start, {"canary": "st@2", "published": PUBLISHED}, 422, "no control yet"),
    (rollouts.start, {"canary": "other@1", "control": "st@1", "published": PUBLISHED}, 422, "version of 'other'"),
    (rollouts.start, {"canary": "st@9", "control": "st@1", "published": PUBLISHED}, 422, "not published"),
    (rollouts.start, {**START[1], "shadow": "st@1"}, 422, "shadow st@1 is the control"),
    (rollouts.start, {**START[1], "shadow": "st@2"}, 422, "shadow st@2 is the canary"),
    (rollouts.start, {**START[1], "steps": (5, 5)}, 422, "increase strictly"),
    (rollouts.start, {**START[1], "steps": (0, 5)}, 422, "above 0"),
    (rollouts.start, {**START[1], "weight": -1}, 422, "at least 0"),
    (rollouts.promote, {}, 404, "no rollout named 'st'"),
    (rollouts.pause, {}, 404, "no rollout named 'st'"),
])
def test_refused_on_a_new_rollout(rule, kwargs: dict, status: int, message: str) -> None:
    with pytest.raises(RolloutError) as refused:
        rule(State("st"), **kwargs)
    assert refused.value.status == status and message in str(refused.value)


def test_a_shadow_that_becomes_the_control_by_promotion_is_dropped() -> None:
    state = run((rollouts.start, {**START[1], "shadow": "st@3", "steps": (50,)}), (rollouts.promote, {}),
                (rollouts.start, {"canary": "st@3", "shadow": "st@1", "published": PUBLISHED, "steps": (50,)}))
    assert (state.control, state.canary, state.shadow) == ("st@2", "st@3", "st@1")
    state = run((rollouts.start, {**START[1], "shadow": "st@3", "steps": (50,)}), (rollouts.promote, {}),
                (rollouts.start, {"canary": "st@3", "published": PUBLISHED, "steps": (50,)}), (rollouts.promote, {}))
    assert (state.control, state.shadow) == ("st@3", "")


def test_unknown_events_are_not_skipped_silently() -> None:
    with pytest.raises(ValueError, match="unknown rollout event 'bump'"):
        fold("st", [rollouts.Event("st", 1, 0, "bump")])


def test_two_collectors_racing_for_one_seq_cannot_both_succeed(tmp_path) -> None:
    """Collectors sharing a store: of two actions decided on the same state, one is stored, the other refused."""
    import threading

    from llmloop.collector.api.configs import ConfigDocument, ConfigStore
    from llmloop.collector.api.hub import RolloutHub
    from llmloop.collector.store import connect, migrate
    from llmloop.queries import Layout

    layout = Layout()
    client = connect(f"chdb://{tmp_path}/store")
    migrate(client, layout)
    for version in (1, 2):
        ConfigStore(client, layout).publish(
            ConfigDocument(id=f"race@{version}", provider="anthropic", model="claude-x-20250101",
                           prompt={"system": "x"}), "")
    first, second = (RolloutHub(client, layout, ConfigStore(client, layout)) for _ in range(2))
    first._act("race", lambda state, now: rollouts.start(state, "race@2", {"race@1": "race", "race@2": "race"},
                                                         "race@1", None, 10, [10, 50, 100], "t", "", now))
    second._poll()  # both know seq 1
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def act(hub: RolloutHub, label: str, rule) -> None:
        def decide(state, now):
            barrier.wait()
            return rule(state, label, "reason", now)
        try:
            outcomes[label] = hub._act("race", decide).events[-1].action
        except RolloutError as exc:
            outcomes[label] = exc.status

    threads = [threading.Thread(target=act, args=(first, "alice", rollouts.rollback)),
               threading.Thread(target=act, args=(second, "bob", rollouts.promote))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(map(str, outcomes.values())) in (["409", "rollback"], ["409", "step"]), outcomes
    stored = client.query("SELECT action FROM llmloop.rollout_events FINAL WHERE rollout = 'race' AND seq = 2")
    assert [row[0] for row in stored.result_rows] == [next(v for v in outcomes.values() if v != 409)]
