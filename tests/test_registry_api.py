"""The registry API (/api/v1) of a running collector: configs, rollouts, long poll, auth, feedback."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.conftest import Collector
from tests.test_otlp_e2e import new_span, post, span_request
from tests.test_store_outage import ChServer

MODEL = "claude-sonnet-4-5-20250929"


def call(collector: Collector, method: str, path: str, body: Any = None, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded JSON body or None) of an API request."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"{collector.http_url}/api/v1{path}", data=data, method=method,
                                     headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            status, headers_, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers_, payload = exc.code, dict(exc.headers), exc.read()
    return status, {k.lower(): v for k, v in headers_.items()}, json.loads(payload) if payload else None


def unique_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def document(config_id: str, system: str = "You triage support tickets.", **extra: Any) -> dict[str, Any]:
    return {"id": config_id, "provider": "anthropic", "model": MODEL, "prompt": {"system": system},
            "params": {"temperature": 0.2, "max_tokens": 512}, **extra}


def publish(collector: Collector, *config_ids: str, token: str | None = None) -> None:
    for config_id in config_ids:
        status, _, body = call(collector, "POST", "/configs", document(config_id, system=f"prompt of {config_id}"),
                               token=token)
        assert status in (200, 201), body


def rollout_with_canary(collector: Collector, **start: Any) -> str:
    """A new rollout with control NAME@1 and canary NAME@2 started; its name."""
    name = unique_name()
    publish(collector, f"{name}@1", f"{name}@2", f"{name}@3")
    status, _, body = call(collector, "POST", f"/rollouts/{name}/start",
                           {"canary": f"{name}@2", "control": f"{name}@1", "actor": "alice", **start})
    assert status == 200, body
    return name


# Configs


def test_publish_creates_then_same_content_is_a_noop_and_other_content_is_refused(collector: Collector) -> None:
    config_id = f"{unique_name()}@2026-06-03.1"
    status, _, created = call(collector, "POST", "/configs?publisher=alice", document(config_id))
    assert status == 201
    assert created["name"] == config_id.split("@")[0] and created["version"] == "2026-06-03.1"
    assert len(created["content_hash"]) == 64 and created["publisher"] == "alice"
    assert created["published"].endswith("Z") and len(created["fingerprint"]) == 16
    assert created["prompt"] == {"system": "You triage support tickets."}

    status, _, again = call(collector, "POST", "/configs", document(config_id))
    assert status == 200 and again == created  # the first publication stands, publisher included

    status, _, refused = call(collector, "POST", "/configs", document(config_id, system="Be terse."))
    assert status == 409
    assert config_id in refused["error"] and "new version" in refused["error"]
    assert call(collector, "GET", f"/configs/{config_id}")[2]["prompt"]["system"] == "You triage support tickets."


@pytest.mark.parametrize(("raw", "status", "message"), [
    (b"{not json", 400, "JSON object"),
    (b'["a list"]', 400, "JSON object"),
    (json.dumps({k: v for k, v in document("x@1").items() if k != "model"}).encode(), 422, "model: Field required"),
    (json.dumps(document("Support Triage@1")).encode(), 422, "id: must look like name@version"),
    (json.dumps(document("no-version")).encode(), 422, "id: must look like name@version"),
    (json.dumps(document("x@1", promt={})).encode(), 422, "promt: unknown field"),
    (json.dumps({**document("x@1"), "prompt": {"system": 3}}).encode(), 422, "prompt.system"),
])
def test_bad_config_documents_get_clear_errors(collector: Collector, raw: bytes, status: int, message: str) -> None:
    got, _, body = call(collector, "POST", "/configs", raw=raw)
    assert got == status and message in body["error"], body


def test_configs_list_newest_first_and_read_one(collector: Collector) -> None:
    name = unique_name()
    publish(collector, f"{name}@1", f"{name}@2")
    templated = document(f"{name}@3", system="You help {customer}.", tools=[{"name": "lookup"}],
                         metadata={"owner": "support"}, description="third")
    assert call(collector, "POST", "/configs", templated)[0] == 201

    status, _, listed = call(collector, "GET", f"/configs?name={name}")
    assert status == 200 and [c["id"] for c in listed] == [f"{name}@3", f"{name}@2", f"{name}@1"]
    assert {c["id"] for c in call(collector, "GET", "/configs")[2]} >= {c["id"] for c in listed}

    status, _, one = call(collector, "GET", f"/configs/{urllib.parse.quote(name + '@3')}")
    assert status == 200 and one["tools"] == [{"name": "lookup"}] and one["description"] == "third"
    assert one["fingerprint"] is None  # the system prompt is a template: what is sent is not known
    status, _, missing = call(collector, "GET", f"/configs/{name}@9")
    assert status == 404 and "llmloop config publish" in missing["error"]


# Rollouts


def test_rollout_start_promote_through_steps_to_control_then_rollback(collector: Collector) -> None:
    name = rollout_with_canary(collector, steps=[5, 25, 100])
    status, headers, state = call(collector, "GET", f"/rollouts/{name}")
    assert status == 200 and headers["etag"] == f'"{name}:1"'
    assert state["version"] == 1 and state["weight"] == 5 and state["steps"] == [5, 25, 100]
    assert state["control"]["id"] == f"{name}@1" and state["canary"]["id"] == f"{name}@2"
    assert state["control"]["prompt"] == {"system": f"prompt of {name}@1"} and state["shadow"] is None

    state = call(collector, "POST", f"/rollouts/{name}/promote", {"actor": "bob"})[2]
    assert (state["version"], state["weight"], state["canary"]["id"]) == (2, 25, f"{name}@2")
    state = call(collector, "POST", f"/rollouts/{name}/promote", {})[2]  # 25 -> 100: the canary is the control
    assert state["control"]["id"] == f"{name}@2" and state["canary"] is None and state["weight"] == 0

    # The next start needs no --control: the rollout has one.
    status, _, state = call(collector, "POST", f"/rollouts/{name}/start",
                            {"canary": f"{name}@3", "shadow": f"{name}@1", "weight": 10})
    assert status == 200, state
    assert (state["control"]["id"], state["canary"]["id"], state["shadow"]["id"]) == (
        f"{name}@2", f"{name}@3", f"{name}@1")
    assert state["weight"] == 10 and state["steps"] == [5, 25, 50, 100]
    assert call(collector, "POST", f"/rollouts/{name}/pause", {})[2]["paused"] is True
    assert call(collector, "POST", f"/rollouts/{name}/resume", {})[2]["paused"] is False

    state = call(collector, "POST", f"/rollouts/{name}/rollback", {"actor": "gate", "reason": "judge score fell"})[2]
    assert state["control"]["id"] == f"{name}@2" and state["canary"] is None and state["shadow"] is None
    assert state["weight"] == 0 and state["version"] == 7

    status, _, events = call(collector, "GET", f"/rollouts/{name}/history")
    assert status == 200
    assert [e["action"] for e in events] == ["start", "step", "promote", "start", "pause", "resume", "rollback"]
    assert [e["seq"] for e in events] == list(range(1, 8))
    assert events[0]["actor"] == "alice" and events[1]["actor"] == "bob" and events[1]["weight"] == 25
    assert events[2]["control"] == f"{name}@2"
    assert events[6]["reason"] == "judge score fell" and events[6]["canary"] == f"{name}@3"
    assert name in [s["name"] for s in call(collector, "GET", "/rollouts")[2]]


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("start", {"canary": "{n}@2"}, 422, "has no control yet"),
    ("start", {"canary": "{n}@2", "control": "other@1"}, 422, "not published"),
    ("start", {"canary": "{n}@9", "control": "{n}@1"}, 422, "'{n}@9' is not published"),
    ("start", {"canary": "{n}@2", "control": "{n}@1", "steps": [25, 5]}, 422, "steps must increase"),
    ("start", {"canary": "{n}@2", "control": "{n}@1", "weight": 100}, 422, "below 100"),
    ("start", {"canary": "{n}@1", "control": "{n}@1"}, 422, "already the control"),
    ("promote", {}, 404, "no rollout named"),
    ("rollback", {"reason": "x"}, 404, "no rollout named"),
])
def test_refused_actions_on_a_new_rollout(collector: Collector, path: str, body: dict, status: int,
                                          message: str) -> None:
    name = unique_name()
    publish(collector, f"{name}@1", f"{name}@2")
    body = {key: value.format(n=name) if isinstance(value, str) else value for key, value in body.items()}
    got, _, answer = call(collector, "POST", f"/rollouts/{name}/{path}", body)
    assert got == status and message.format(n=name) in answer["error"], answer
    assert call(collector, "GET", f"/rollouts/{name}")[0] == 404  # nothing was appended


def test_config_of_another_name_is_refused(collector: Collector) -> None:
    name, other = unique_name(), unique_name()
    publish(collector, f"{name}@1", f"{other}@1")
    status, _, answer = call(collector, "POST", f"/rollouts/{name}/start", {"canary": f"{other}@1",
                                                                          "control": f"{name}@1"})
    assert status == 422 and f"a version of '{other}', not of '{name}'" in answer["error"]


def test_refused_actions_on_a_running_rollout(collector: Collector) -> None:
    name = rollout_with_canary(collector)
    again = call(collector, "POST", f"/rollouts/{name}/start", {"canary": f"{name}@3"})
    assert again[0] == 409 and "already has canary" in again[2]["error"]
    no_reason = call(collector, "POST", f"/rollouts/{name}/rollback", {"reason": "  "})
    assert no_reason[0] == 422 and "needs a reason" in no_reason[2]["error"]
    assert call(collector, "POST", f"/rollouts/{name}/resume", {})[0] == 409  # not paused
    call(collector, "POST", f"/rollouts/{name}/pause", {})
    assert call(collector, "POST", f"/rollouts/{name}/pause", {})[0] == 409
    call(collector, "POST", f"/rollouts/{name}/rollback", {"reason": "r"})
    for action in ("promote", "pause", "rollback"):
        status, _, answer = call(collector, "POST", f"/rollouts/{name}/{action}", {"reason": "r"})
        assert status == 409, (action, answer)
    assert "no canary to promote" in call(collector, "POST", f"/rollouts/{name}/promote", {})[2]["error"]
    assert call(collector, "GET", f"/rollouts/{name}")[2]["version"] == 3


# Long poll


def waiter(collector: Collector, name: str, etag: str, wait: float) -> tuple[threading.Thread, dict]:
    """A thread long-polling rollout `name`; its result dict gets status, etag, state and the time it returned."""
    result: dict = {}

    def run() -> None:
        status, headers, state = call(collector, "GET", f"/rollouts/{name}?wait={wait}",
                                      headers={"If-None-Match": etag})
        result.update(status=status, etag=headers.get("etag"), state=state, returned=time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)  # the request is held by now
    return thread, result


def test_long_poll_is_woken_by_an_action_at_once_and_answers_304_when_nothing_changes(collector: Collector) -> None:
    name = rollout_with_canary(collector)
    thread, result = waiter(collector, name, f'"{name}:1"', 30)
    assert thread.is_alive()
    acted = time.monotonic()
    call(collector, "POST", f"/rollouts/{name}/rollback", {"reason": "errors"})
    thread.join(10)
    assert result["status"] == 200 and result["etag"] == f'"{name}:2"' and result["state"]["canary"] is None
    assert result["returned"] - acted < 0.5

    started = time.monotonic()
    status, headers, body = call(collector, "GET", f"/rollouts/{name}?wait=1", headers={"If-None-Match": f'"{name}:2"'})
    assert status == 304 and body is None and headers["etag"] == f'"{name}:2"'
    assert 0.9 < time.monotonic() - started < 3
    # Without wait, a matching ETag is answered at once; a stale one gets the state.
    assert call(collector, "GET", f"/rollouts/{name}", headers={"If-None-Match": f'"{name}:2"'})[0] == 304
    assert call(collector, "GET", f"/rollouts/{name}", headers={"If-None-Match": f'"{name}:1"'})[0] == 200


def test_long_poll_on_a_rollout_not_started_yet(collector: Collector) -> None:
    name = unique_name()
    publish(collector, f"{name}@1", f"{name}@2")
    status, headers, _ = call(collector, "GET", f"/rollouts/{name}")
    assert status == 404 and headers["etag"] == f'"{name}:0"'
    thread, result = waiter(collector, name, headers["etag"], 30)
    call(collector, "POST", f"/rollouts/{name}/start", {"canary": f"{name}@2", "control": f"{name}@1"})
    thread.join(10)
    assert result["status"] == 200 and result["state"]["canary"]["id"] == f"{name}@2"
    assert call(collector, "GET", f"/rollouts/{name}?wait=61")[0] == 422  # at most 60 s


def test_state_is_the_same_after_a_restart(new_collector: Callable[..., Collector], tmp_path: Path) -> None:
    first = new_collector(store=tmp_path / "store")
    name = rollout_with_canary(first, shadow=None)
    call(first, "POST", f"/rollouts/{name}/promote", {})
    call(first, "POST", f"/rollouts/{name}/pause", {"reason": "weekend"})
    before = [call(first, "GET", path)[1:] for path in (f"/rollouts/{name}", f"/rollouts/{name}/history")]
    thread, result = waiter(first, name, f'"{name}:3"', 60)
    stopping = time.monotonic()
    assert first.stop() == 0
    thread.join(5)
    assert result["status"] == 304 and time.monotonic() - stopping < 15  # long polls are answered at shutdown
    second = new_collector(store=tmp_path / "store")
    after = [call(second, "GET", path)[1:] for path in (f"/rollouts/{name}", f"/rollouts/{name}/history")]
    assert after[0][0]["etag"] == before[0][0]["etag"] == f'"{name}:3"'
    assert after[0][1] == before[0][1] and after[1][1] == before[1][1]
    assert after[0][1]["paused"] is True and after[0][1]["weight"] == 25


def test_events_appended_by_another_collector_reach_waiters(new_collector: Callable[..., Collector],
                                                            tmp_path: Path) -> None:
    store = ChServer(tmp_path / "chserver").start()
    try:
        one = new_collector("--store", store.dsn, "--spool-dir", str(tmp_path / "spool1"))
        two = new_collector("--store", store.dsn, "--spool-dir", str(tmp_path / "spool2"))
        name = rollout_with_canary(one)
        deadline = time.monotonic() + 5
        while call(two, "GET", f"/rollouts/{name}")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        thread, result = waiter(two, name, f'"{name}:1"', 30)
        acted = time.monotonic()
        call(one, "POST", f"/rollouts/{name}/promote", {})
        thread.join(10)
        assert result["status"] == 200 and result["state"]["weight"] == 25
        assert result["returned"] - acted < 3  # the ~1 s poll of the events table
        # An action on the other collector folds the events it has not seen yet.
        state = call(two, "POST", f"/rollouts/{name}/promote", {})[2]
        assert state["version"] == 3 and state["weight"] == 50
    finally:
        store.kill()


# Auth


def test_reads_need_the_token_and_writes_the_admin_token(new_collector: Callable[..., Collector]) -> None:
    running = new_collector("--admin-token", "admin-secret", token="read-secret")
    name = unique_name()
    for token in (None, "wrong", "read-secret"):
        status, headers, body = call(running, "POST", "/configs", document(f"{name}@1"), token=token)
        assert status == 401 and headers["www-authenticate"] == "Bearer" and "admin token" in body["error"]
    publish(running, f"{name}@1", f"{name}@2", token="admin-secret")
    start = {"canary": f"{name}@2", "control": f"{name}@1"}
    assert call(running, "POST", f"/rollouts/{name}/start", start, token="read-secret")[0] == 401
    assert call(running, "POST", f"/rollouts/{name}/start", start, token="admin-secret")[0] == 200

    for path in (f"/rollouts/{name}", "/rollouts", f"/configs/{name}@1", "/configs", "/openapi.json"):
        assert call(running, "GET", path)[0] == 401, path
        assert call(running, "GET", path, token="read-secret")[0] == 200, path
        assert call(running, "GET", path, token="admin-secret")[0] == 200, path
    feedback = {"response_id": "msg_1", "thumbs": "up"}
    assert call(running, "POST", "/feedback", feedback)[0] == 401
    assert call(running, "POST", "/feedback", feedback, token="read-secret")[0] == 202
    # OTLP keeps its own token check.
    assert post(f"{running.http_url}/v1/traces", span_request(new_span()).SerializeToString())[0] == 401


# Feedback


def test_feedback_is_joinable_to_its_span_and_a_retry_counts_once(collector: Collector) -> None:
    response_id = f"msg_{uuid.uuid4().hex}"
    fields = new_span(name="chat feedback",
                      attributes=[KeyValue(key="gen_ai.response.id", value=AnyValue(string_value=response_id))])
    assert post(f"{collector.http_url}/v1/traces", span_request(fields).SerializeToString())[0] == 200
    trace_id, span_id = fields["trace_id"].hex(), fields["span_id"].hex()

    by_span = {"id": str(uuid.uuid4()), "trace_id": trace_id.upper(), "span_id": span_id, "thumbs": "down",
               "comment": "wrong queue", "key": "user-7", "config_id": "support@1", "metadata": {"screen": "inbox"}}
    for _ in range(2):  # a retried delivery
        status, _, answer = call(collector, "POST", "/feedback", by_span)
        assert status == 202 and answer == {"id": by_span["id"]}
    assert call(collector, "POST", "/feedback", {"response_id": response_id, "score": 0.25})[0] == 202

    rows = collector.wait_rows(
        "SELECT f.thumbs AS thumbs, f.comment AS comment, f.request_key AS key, f.metadata['screen'] AS screen, "
        "s.SpanName AS span FROM llmloop.feedback AS f FINAL "
        "JOIN llmloop.spans AS s FINAL ON f.trace_id = s.TraceId AND f.span_id = s.SpanId "
        f"WHERE s.TraceId = '{trace_id}'", 1)
    assert rows == [{"thumbs": "down", "comment": "wrong queue", "key": "user-7", "screen": "inbox",
                     "span": "chat feedback"}]
    by_response = collector.sql(
        "SELECT f.score AS score, s.SpanId AS span_id FROM llmloop.feedback AS f FINAL "
        "JOIN llmloop.spans AS s FINAL ON f.response_id = s.SpanAttributes['gen_ai.response.id'] "
        f"WHERE f.response_id = '{response_id}'")
    assert by_response == [{"score": 0.25, "span_id": span_id}]


@pytest.mark.parametrize(("body", "message"), [
    ({"thumbs": "up"}, "trace_id (and span_id) or response_id"),
    ({"response_id": "r"}, "needs a score or thumbs"),
    ({"response_id": "r", "thumbs": "sideways"}, "thumbs: Input should be 'up' or 'down'"),
    ({"trace_id": "xyz", "score": 1}, "trace_id: must be 32 hex digits"),
    ({"trace_id": "0" * 32, "score": 1}, "not all zero"),
    ({"response_id": "r", "score": 1, "stars": 5}, "stars: unknown field"),
])
def test_bad_feedback_is_refused(collector: Collector, body: dict, message: str) -> None:
    status, _, answer = call(collector, "POST", "/feedback", body)
    assert status == 422 and message in answer["error"], answer


def test_openapi_description_and_json_errors_for_unknown_paths(collector: Collector) -> None:
    status, _, spec = call(collector, "GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert {"/configs", "/configs/{config_id}", "/rollouts", "/rollouts/{name}", "/rollouts/{name}/history",
            "/rollouts/{name}/start", "/rollouts/{name}/promote", "/rollouts/{name}/rollback",
            "/rollouts/{name}/pause", "/rollouts/{name}/resume", "/feedback"} <= spec["paths"].keys()
    assert spec["servers"] == [{"url": "/api/v1"}]
    status, _, answer = call(collector, "GET", "/nothing-here")
    assert status == 404 and "no such endpoint" in answer["error"]
