"""The router, shadow calls and feedback against a real collector: configs and rollouts go through its /api/v1.

Model calls use the real anthropic SDK against the fake provider, instrumented by llmloop, with spans exported
over OTLP to the same collector (and kept in memory to look at directly).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmloop
from llmloop.instrumentation import instrument, uninstrument
from llmloop.instrumentation.feedback import flush
from llmloop.instrumentation.router import Config, Router, RouterError, bucket
from tests import fakeprovider
from tests.conftest import Collector
from tests.fakeprovider import FakeProvider

KEYS = [f"user-{i}" for i in range(100_000)]
CLAUDE = "claude-haiku-4-5-20251001"
fake_provider = fakeprovider.fake_provider  # the fixture, under its own name so that pytest finds it


def api(collector: Collector, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON) of one API call."""
    headers = {"Content-Type": "application/json"}
    if collector.token:
        headers["Authorization"] = f"Bearer {collector.token}"
    request = urllib.request.Request(f"{collector.http_url}/api/v1{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def ok(collector: Collector, method: str, path: str, body: Any = None) -> Any:
    status, payload = api(collector, method, path, body)
    assert status < 300, (method, path, status, payload)
    return payload


def config(name: str, version: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"{name}@{version}", "provider": "anthropic", "model": CLAUDE,
            "prompt": {"system": f"You are version {version}."}, "params": {"max_tokens": 64}, **fields}


def published(collector: Collector, name: str, versions: int = 3) -> list[dict[str, Any]]:
    docs = [config(name, v) for v in range(1, versions + 1)]
    for doc in docs:
        ok(collector, "POST", "/configs", doc)
    return docs


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until `predicate()` holds (polled every 5 ms); fails after `timeout`."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(0.005)
    return time.monotonic() - started


def keys_on(name: str, arm: str, weight: float, count: int) -> list[str]:
    """The first `count` keys that rollout `name` serves from `arm` at canary `weight` (a start stays below 100%)."""
    return [key for key in KEYS if (bucket(name, key) < weight * 100) == (arm == "canary")][:count]


def canary_keys(router: Router) -> set[str]:
    return {key for key in KEYS if router.choose(key).arm == "canary"}


@pytest.fixture
def name() -> str:
    return f"triage-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def routers() -> Iterator[Callable[..., Router]]:
    made: list[Router] = []

    def make(name: str, collector: Collector, **options: Any) -> Router:
        made.append(Router(name, url=collector.http_url, token=collector.token, **options))
        return made[-1]

    yield make
    for router in made:
        router.close()


# --- routing -----------------------------------------------------------------------------------------------

def test_canary_share_stickiness_promotion_and_rollback(collector: Collector, name: str,
                                                        routers: Callable[..., Router]) -> None:
    control, canary, _ = published(collector, name)
    ok(collector, "POST", f"/rollouts/{name}/start",
       {"control": control["id"], "canary": canary["id"], "weight": 5, "steps": [5, 25, 100], "actor": "test"})
    first = routers(name, collector)  # no default: the first choose waits for the state
    at_5 = canary_keys(first)
    assert abs(len(at_5) / len(KEYS) - 0.05) < 0.003
    assert first.choose(next(iter(at_5))).id == canary["id"]
    others = [routers(name, collector) for _ in range(3)]
    for other in others:
        assert other.wait_ready(10)
        assert canary_keys(other) == at_5  # sticky across routers (processes would agree: a stable hash)
    assert canary_keys(first) == at_5

    version = first.version
    ok(collector, "POST", f"/rollouts/{name}/promote", {"actor": "test"})
    wait_for(lambda: all(r.version != version for r in (first, *others)), 5)
    at_25 = canary_keys(first)
    assert at_5 < at_25 and abs(len(at_25) / len(KEYS) - 0.25) < 0.005  # only control keys moved

    version = first.version
    ok(collector, "POST", f"/rollouts/{name}/rollback", {"reason": "test rollback", "actor": "test"})
    took = wait_for(lambda: all(r.version != version for r in (first, *others)), 5)
    assert took < 2
    for router in (first, *others):
        assert {router.choose(key).id for key in KEYS} == {control["id"]}
    started = time.monotonic()
    first.close()  # interrupts the long poll in flight
    assert time.monotonic() - started < 1 and not first._thread.is_alive()


def test_routers_in_threads_and_asyncio_follow_a_rollback(collector: Collector, name: str,
                                                          routers: Callable[..., Router]) -> None:
    control, canary, _ = published(collector, name)
    ok(collector, "POST", f"/rollouts/{name}/start", {"control": control["id"], "canary": canary["id"],
                                                      "weight": 50, "steps": [50, 100]})
    router = routers(name, collector)
    keys = keys_on(name, "canary", 50, 200)
    assert {router.choose(key).arm for key in keys} == {"canary"}
    rolled_back = threading.Event()
    bad: list[Any] = []

    def thread_requests() -> None:
        while not rolled_back.is_set():
            for key in keys:
                with router.use(key) as cfg:
                    if llmloop.current_config().id != cfg.id:
                        bad.append(cfg)

    async def task_requests(key: str) -> str:
        while True:
            async with router.use(key) as cfg:
                await asyncio.sleep(0.001)
                if llmloop.current_config().id != cfg.id:
                    bad.append(cfg)
                if cfg.arm == "control":
                    return cfg.id

    async def tasks() -> list[str]:
        return await asyncio.gather(*(task_requests(key) for key in keys[:100]))

    threads = [threading.Thread(target=thread_requests) for _ in range(3)]
    for thread in threads:
        thread.start()
    runner = threading.Thread(target=lambda: bad.extend(i for i in asyncio.run(tasks()) if i != control["id"]))
    runner.start()
    time.sleep(0.2)
    ok(collector, "POST", f"/rollouts/{name}/rollback", {"reason": "threads and tasks"})
    runner.join(5)
    assert not runner.is_alive()  # every task saw the control within seconds
    rolled_back.set()
    for thread in threads:
        thread.join()
    assert not bad


def test_unknown_rollout_serves_the_default_until_it_starts(collector: Collector, name: str,
                                                            routers: Callable[..., Router]) -> None:
    control, canary, _ = published(collector, name)
    router = routers(name, collector, default=control)
    assert router.wait_ready(5)  # the collector said 404
    assert (router.choose("k").id, router.choose("k").arm, router.version) == (control["id"], "control", None)
    ok(collector, "POST", f"/rollouts/{name}/start", {"control": control["id"], "canary": canary["id"],
                                                      "weight": 50, "steps": [50, 100]})
    took = wait_for(lambda: router.version is not None, 5)
    assert took < 1  # the poll after the 404 waits on the rollout's ETag "<name>:0"
    assert router.choose(keys_on(name, "canary", 50, 1)[0]).id == canary["id"]


def test_a_collector_restart_keeps_routers_serving(new_collector: Callable[..., Collector], name: str,
                                                   routers: Callable[..., Router]) -> None:
    running = new_collector(token="s3cret")
    control, canary, _ = published(running, name)
    ok(running, "POST", f"/rollouts/{name}/start", {"control": control["id"], "canary": canary["id"],
                                                    "weight": 50, "steps": [50, 100]})
    router = routers(name, running)  # with the collector's token
    before = canary_keys(router)
    assert abs(len(before) / len(KEYS) - 0.5) < 0.01
    version = router.version
    with Router(name, url=running.http_url, token="wrong", initial_timeout=0.5) as intruder, \
            pytest.raises(RouterError, match="HTTP 401: missing or wrong bearer token"):
        intruder.choose("k")

    running.stop()
    late = routers(name, running, default=control)  # a router born during the outage serves its default
    for _ in range(3):
        time.sleep(0.5)
        assert canary_keys(router) == before and router.version == version
        assert late.choose("k").id == control["id"]
    during = llmloop.feedback(0.5, trace_id="cd" * 16, url=running.http_url, token=running.token)

    running.start()  # same store, same ports
    wait_for(lambda: late.version == version, 10)
    assert flush(30)  # the feedback waited for the collector
    assert running.wait_rows(f"SELECT score FROM llmloop.feedback WHERE id = '{during}'", 1) == [{"score": 0.5}]
    assert canary_keys(late) == before and canary_keys(router) == before
    ok(running, "POST", f"/rollouts/{name}/rollback", {"reason": "after the restart"})
    took = wait_for(lambda: router.version != version and late.version != version, 10)
    assert took < 2  # both long-poll again
    assert not canary_keys(router) and not canary_keys(late)


# --- shadow calls and feedback, traced into the collector ---------------------------------------------------

@dataclass
class Traced:
    provider: TracerProvider
    memory: InMemorySpanExporter

    def genai(self, rollout: str) -> list[ReadableSpan]:
        return [s for s in self.memory.get_finished_spans()
                if (s.attributes or {}).get("llmloop.rollout.name") == rollout]


@pytest.fixture(scope="module")
def traced(collector: Collector) -> Iterator[Traced]:
    """llmloop instrumentation onto a provider exporting to the shared collector (and to memory)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_url}/v1/traces")))
    instrument(tracer_provider=provider)
    yield Traced(provider, memory)
    uninstrument()
    provider.shutdown()


def ask(client: anthropic.Anthropic, cfg: Config, question: str) -> str:
    message = client.messages.create(model=cfg.model, system=cfg.prompt["system"], **cfg.params,
                                     messages=[{"role": "user", "content": question}])
    return message.content[0].text


async def aask(client: anthropic.AsyncAnthropic, cfg: Config, question: str) -> str:
    message = await client.messages.create(model=cfg.model, system=cfg.prompt["system"], **cfg.params,
                                           messages=[{"role": "user", "content": question}])
    return message.content[0].text


def test_shadow_calls_are_traced_with_arm_shadow(collector: Collector, traced: Traced, fake_provider: FakeProvider,
                                                 name: str, routers: Callable[..., Router]) -> None:
    control, canary, shadow = published(collector, name)
    ok(collector, "POST", f"/rollouts/{name}/start", {"control": control["id"], "canary": canary["id"],
                                                      "weight": 5, "steps": [5, 100], "shadow": shadow["id"]})
    router = routers(name, collector)
    key = next(key for key in KEYS if router.choose(key).arm == "control")
    client = fake_provider.anthropic_client(open_telemetry=False)
    aclient = fake_provider.async_anthropic_client(open_telemetry=False)
    tracer = traced.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        assert router.shadow(lambda cfg, q: ask(client, cfg, q), key, "sync question") == "echo: sync question"

    async def main() -> str:
        with tracer.start_as_current_span("arequest"):
            result = await router.ashadow(lambda cfg, q: aask(aclient, cfg, q), key, "async question")
        while router._tasks:
            await asyncio.sleep(0.01)
        return result

    assert asyncio.run(main()) == "echo: async question"
    wait_for(lambda: len(traced.genai(name)) == 4, 5)
    spans = {(s.attributes["llmloop.config.id"], s.attributes["llmloop.rollout.arm"],
              s.attributes["gen_ai.request.model"]) for s in traced.genai(name)}
    assert spans == {(control["id"], "control", CLAUDE), (shadow["id"], "shadow", CLAUDE)}
    same_trace = [s for s in traced.genai(name) if s.context.trace_id == request.get_span_context().trace_id]
    assert {s.attributes["llmloop.rollout.arm"] for s in same_trace} == {"control", "shadow"}
    rows = collector.wait_rows(f"SELECT ConfigId, RolloutArm FROM llmloop.spans WHERE RolloutName = '{name}'", 4)
    assert sorted((r["ConfigId"], r["RolloutArm"]) for r in rows) == sorted(
        [(control["id"], "control")] * 2 + [(shadow["id"], "shadow")] * 2)


def test_feedback_is_stored_and_joins_the_spans(collector: Collector, traced: Traced, fake_provider: FakeProvider,
                                                name: str, routers: Callable[..., Router]) -> None:
    control, canary, _ = published(collector, name)
    ok(collector, "POST", f"/rollouts/{name}/start", {"control": control["id"], "canary": canary["id"],
                                                      "weight": 50, "steps": [50, 100]})
    router = routers(name, collector)
    client = fake_provider.anthropic_client(open_telemetry=False)
    key = keys_on(name, "canary", 50, 1)[0]
    with traced.provider.get_tracer("test").start_as_current_span("request"), router.use(key) as cfg:
        message = client.messages.create(model=cfg.model, max_tokens=32, messages=[{"role": "user", "content": "hi"}])
        by_span = llmloop.feedback(thumbs="down", comment="wrong queue", key=key, metadata={"page": "inbox"},
                                   url=collector.http_url)
    by_response = llmloop.feedback(0.25, response_id=message.id, url=collector.http_url)
    assert flush(10)
    span = traced.genai(name)[0]
    assert span.attributes["llmloop.rollout.arm"] == "canary"

    rows = collector.wait_rows(
        "SELECT f.id AS id, f.thumbs AS thumbs, f.score AS score, f.comment AS comment, f.request_key AS key,"
        " f.config_id AS feedback_config, s.ConfigId AS config, s.RolloutArm AS arm"
        " FROM llmloop.feedback AS f INNER JOIN llmloop.spans AS s"
        " ON s.TraceId = f.trace_id OR s.SpanAttributes['gen_ai.response.id'] = f.response_id"
        f" WHERE f.id IN ('{by_span}', '{by_response}') AND s.RolloutName = '{name}' ORDER BY comment DESC", 2)
    assert [(r["id"], r["thumbs"], r["comment"], r["key"], r["feedback_config"], r["config"], r["arm"])
            for r in rows][:1] == [(by_span, "down", "wrong queue", key, canary["id"], canary["id"], "canary")]
    assert {(r["id"], r["config"]) for r in rows} == {(by_span, canary["id"]), (by_response, canary["id"])}
