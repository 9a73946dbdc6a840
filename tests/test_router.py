"""The router without a collector: bucketing, states, defaults, config context, shadow calls, feedback arguments.

Routers here point at a port nobody listens on (the collector is "down"); rollout states are applied the
way the poller applies them. End-to-end behaviour against a real collector is in test_router_e2e.py.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import llmloop
from llmloop.instrumentation import ConfigRef, current_config
from llmloop.instrumentation.feedback import _body
from llmloop.instrumentation.registry import resolve_url
from llmloop.instrumentation.router import BUCKETS, Config, Router, RouterError, _State, bucket
from tests.conftest import free_port

NAME = "support-triage"
CONTROL = {"id": f"{NAME}@1", "provider": "anthropic", "model": "claude-sonnet-4-5-20250929",
           "prompt": {"system": "You triage."}, "params": {"temperature": 0.2, "max_tokens": 512},
           "tools": [{"name": "route", "input_schema": {"type": "object"}}]}
CANARY = {"id": f"{NAME}@2", "model": "claude-haiku-4-5-20251001", "params": {"temperature": 0.0}}
SHADOW = {"id": f"{NAME}@3", "model": "claude-opus-4-1-20250805"}
KEYS = [f"user-{i}" for i in range(100_000)]
feedback_api = importlib.import_module("llmloop.instrumentation.feedback")  # the package's `feedback` is the function


def state(weight: float = 0.0, canary: bool = True, shadow: bool = False, version: int = 1) -> dict[str, Any]:
    return {"name": NAME, "version": version, "paused": False, "control": CONTROL,
            "canary": CANARY if canary else None, "weight": weight, "steps": [5, 25, 50, 100],
            "shadow": SHADOW if shadow else None}


def apply(router: Router, doc: dict[str, Any]) -> None:
    """Serve `doc` as if the poller had received it."""
    router._state = _State.parse(doc, router.name)


@pytest.fixture
def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def make(down_url: str) -> Iterator[Any]:
    """Routers against a collector that is down; closed afterwards."""
    made: list[Router] = []

    def factory(default: Any = CONTROL, **options: Any) -> Router:
        made.append(Router(NAME, url=down_url, default=default, **options))
        return made[-1]

    yield factory
    for router in made:
        router.close()


# --- bucketing -----------------------------------------------------------------------------------------

def test_bucket_is_a_stable_hash_of_rollout_and_key() -> None:
    # Pinned: changing the hash would move users between arms on upgrade.
    assert [bucket(NAME, key) for key in ("user-1", "user-2", 42)] == [5518, 78, 8120]
    assert bucket(NAME, 42) == bucket(NAME, "42") and bucket(NAME, b"user-1") == bucket(NAME, "user-1")
    assert bucket("other-rollout", "user-1") != bucket(NAME, "user-1")
    assert 0 <= bucket(NAME, "\udcff lone surrogate") < BUCKETS


def test_canary_share_within_tolerance_over_100k_keys(make: Any) -> None:
    router = make()
    for weight in (1, 5, 25, 50):
        apply(router, state(weight))
        share = sum(router.choose(key).arm == "canary" for key in KEYS) / len(KEYS)
        assert abs(share - weight / 100) < 0.003, (weight, share)


def test_keys_are_sticky_and_rising_weight_only_moves_control_to_canary(make: Any) -> None:
    router = make()
    previous: set[str] = set()
    for weight in (0, 0.5, 5, 25, 50, 99.99, 100):
        apply(router, state(weight))
        canary = {key for key in KEYS if router.choose(key).arm == "canary"}
        assert canary == {key for key in KEYS if router.choose(key).arm == "canary"}  # sticky
        assert previous <= canary  # monotonic
        previous = canary
    assert len(previous) == len(KEYS)
    again = make()
    apply(again, state(5))
    apply(router, state(5))
    assert all(again.choose(key) == router.choose(key) for key in KEYS[:5000])  # same in every router


def test_weight_edges_and_no_canary(make: Any) -> None:
    router = make()
    apply(router, state(100))
    assert {router.choose(key).id for key in KEYS[:1000]} == {CANARY["id"]}
    apply(router, state(0))
    assert {router.choose(key).id for key in KEYS[:1000]} == {CONTROL["id"]}
    apply(router, state(50, canary=False))
    assert {router.choose(key).arm for key in KEYS[:1000]} == {"control"}
    assert router.version == 1


# --- defaults and errors -------------------------------------------------------------------------------

def test_default_serves_as_control_while_the_collector_is_down(make: Any) -> None:
    router = make(initial_timeout=5)
    started = time.monotonic()
    cfg = router.choose("user-1")
    assert time.monotonic() - started < 0.05  # a default never waits for the collector
    assert (cfg.id, cfg.arm, cfg.rollout, cfg.model) == (CONTROL["id"], "control", NAME, CONTROL["model"])
    assert cfg.params == {"temperature": 0.2, "max_tokens": 512} and cfg.prompt["system"] == "You triage."
    assert router.version is None
    time.sleep(0.3)  # failed polls meanwhile change nothing
    assert router.choose("user-1") is cfg


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_default_from_a_config_file(make: Any, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"triage{suffix}"
    if suffix == ".toml":
        path.write_text(f'id = "{NAME}@1"\nmodel = "m-20250101"\n\n[params]\ntemperature = 0.5\n\n'
                        '[prompt]\nsystem = "hi"\n')
    else:
        path.write_text(f"id: {NAME}@1\nmodel: m-20250101\nparams: {{temperature: 0.5}}\nprompt:\n  system: hi\n")
    cfg = make(default=path).choose("k")
    assert (cfg.id, cfg.model, cfg.params["temperature"], cfg.prompt["system"]) == (f"{NAME}@1", "m-20250101",
                                                                                     0.5, "hi")
    assert make(default=str(path)).choose("k") == cfg


def test_without_state_or_default_choose_waits_briefly_then_names_rollout_and_url(make: Any,
                                                                                  down_url: str) -> None:
    router = make(default=None, initial_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(RouterError, match=rf"'{NAME}'.*{down_url}.*default="):
        router.choose("k")
    assert 0.4 < time.monotonic() - started < 2
    started = time.monotonic()
    with pytest.raises(RouterError, match="ConnectionRefusedError"):
        router.choose("k")
    assert time.monotonic() - started < 0.05  # waits once per router, not per call
    apply(router, state(0))
    assert router.choose("k").id == CONTROL["id"]


def test_bad_arguments_are_refused_at_construction(down_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rollout name"):
        Router(f"{NAME}@1", url=down_url)
    with pytest.raises(ValueError, match="not a config of rollout"):
        Router(NAME, url=down_url, default={"id": "other@1"})
    with pytest.raises(ValueError, match="'id'"):
        Router(NAME, url=down_url, default={"model": "m"})
    (tmp_path / "c.ini").write_text("")
    with pytest.raises(ValueError, match=r"c\.ini is neither \.toml nor \.yaml"):
        Router(NAME, url=down_url, default=tmp_path / "c.ini")
    with pytest.raises(ValueError, match="cannot be read"):
        Router(NAME, url=down_url, default=tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="http://host:4318"):
        Router(NAME, url="collector:4318")


def test_malformed_state_keeps_the_last_good_one(make: Any) -> None:
    router = make()
    apply(router, state(100))
    with pytest.raises(ValueError):
        _State.parse({"control": {"model": "no id"}}, NAME)
    with pytest.raises(ValueError):
        _State.parse({"control": CONTROL, "canary": CANARY, "weight": "lots"}, NAME)
    assert router.choose("k").arm == "canary"


def test_long_poll_hold_is_capped_at_what_the_collector_grants(make: Any) -> None:
    assert make(poll_wait=90).poll_wait == 60  # a longer wait would be refused (422) and updates stop


def test_config_values_are_read_only_but_usable_as_plain_data(make: Any) -> None:
    cfg = make().choose("k")
    with pytest.raises(TypeError, match="read-only"):
        cfg.params["temperature"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.tools.append({})  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        cfg.document["prompt"]["system"] |= {}  # type: ignore[index]
    with pytest.raises(AttributeError):
        cfg.model = "x"  # type: ignore[misc]
    assert json.loads(json.dumps(cfg.document)) == CONTROL
    mutable = copy.deepcopy(cfg.document)
    mutable["tools"][0]["name"] = "changed"
    mutable["params"]["temperature"] = 1.0
    assert dict(cfg.params) | {"x": 1} == {**cfg.params, "x": 1}
    assert cfg.tools[0]["name"] == "route" and cfg.params["temperature"] == 0.2
    assert repr(cfg) == f"Config(id='{NAME}@1', arm='control', rollout='{NAME}', model='{CONTROL['model']}')"


# --- config context, threads, asyncio --------------------------------------------------------------------

def test_use_sets_the_config_context(make: Any) -> None:
    router = make()
    apply(router, state(100))
    with router.use("k") as cfg:
        assert isinstance(cfg, Config) and cfg.arm == "canary"
        assert current_config() == ConfigRef(CANARY["id"], NAME, "canary")
    assert current_config() is None

    async def main() -> ConfigRef | None:
        async with router.use("k") as acfg:
            assert acfg.id == CANARY["id"]
            await asyncio.sleep(0)
            return current_config()

    assert asyncio.run(main()) == ConfigRef(CANARY["id"], NAME, "canary")


def test_threads_route_while_states_change(make: Any) -> None:
    router = make()
    apply(router, state(50))
    expected = {key: router.choose(key).arm for key in KEYS[:2000]}
    stop, errors = threading.Event(), []

    def worker() -> None:
        while not stop.is_set():
            for key in KEYS[:2000]:
                with router.use(key) as cfg:
                    ref = current_config()
                    if ref is None or ref.id != cfg.id or cfg.arm not in ("control", expected[key]):
                        errors.append((key, cfg, ref))
                if current_config() is not None:
                    errors.append(("leaked", key))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(40):  # flip between a rollback and the 50% canary under the workers
        apply(router, state(50 if i % 2 else 0, version=i))
        time.sleep(0.005)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]


def test_asyncio_tasks_keep_their_own_config_context(make: Any) -> None:
    router = make()
    apply(router, state(50))

    async def request(key: str) -> bool:
        async with router.use(key) as cfg:
            for _ in range(3):
                await asyncio.sleep(0)
                if current_config() != ConfigRef(cfg.id, NAME, cfg.arm):
                    return False
        return current_config() is None

    async def main() -> list[bool]:
        return await asyncio.gather(*(request(key) for key in KEYS[:500]))

    assert all(asyncio.run(main()))


# --- shadow ---------------------------------------------------------------------------------------------

def test_shadow_serves_the_chosen_config_and_runs_the_shadow_in_the_background(make: Any) -> None:
    router = make()
    apply(router, state(0, shadow=True))
    seen: list[tuple[str, ConfigRef | None, str]] = []
    done = threading.Event()

    def call(cfg: Config, text: str, *, suffix: str) -> str:
        if cfg.arm == "shadow":
            time.sleep(0.3)
            seen.append((cfg.id, current_config(), threading.current_thread().name))
            done.set()
            raise RuntimeError("shadow failures stay in the background")
        seen.append((cfg.id, current_config(), threading.current_thread().name))
        return f"{cfg.model}:{text}{suffix}"

    started = time.monotonic()
    assert router.shadow(call, "user-1", "hi", suffix="!") == f"{CONTROL['model']}:hi!"
    assert time.monotonic() - started < 0.2
    assert done.wait(5)
    assert seen[0][:2] == (CONTROL["id"], ConfigRef(CONTROL["id"], NAME, "control"))
    assert seen[1][:2] == (SHADOW["id"], ConfigRef(SHADOW["id"], NAME, "shadow"))
    assert seen[1][2].startswith("llmloop-shadow")
    apply(router, state(0))  # no shadow in the state: one call
    seen.clear()
    router.shadow(call, "user-1", "hi", suffix="")
    time.sleep(0.1)
    assert len(seen) == 1


def test_shadow_errors_of_the_served_call_reach_the_caller(make: Any) -> None:
    router = make()
    apply(router, state(0, shadow=True))

    def call(cfg: Config) -> None:
        if cfg.arm != "shadow":
            raise KeyError("served")

    with pytest.raises(KeyError, match="served"):
        router.shadow(call, "k")


def test_shadow_calls_beyond_the_pending_limit_are_dropped(make: Any) -> None:
    router = make(shadow_workers=1, shadow_pending=2)
    apply(router, state(0, shadow=True))
    release, shadows = threading.Event(), []

    def call(cfg: Config) -> str:
        if cfg.arm == "shadow":
            shadows.append(cfg.id)
            release.wait(5)
        return cfg.arm

    assert [router.shadow(call, f"k{i}") for i in range(10)] == ["control"] * 10
    release.set()
    time.sleep(0.2)
    assert len(shadows) == 2
    assert router.shadow(call, "again") == "control"  # slots are free again
    time.sleep(0.2)
    assert len(shadows) == 3


def test_ashadow_runs_the_shadow_as_a_background_task(make: Any) -> None:
    router = make()
    apply(router, state(100, shadow=True))
    seen: list[ConfigRef | None] = []

    async def call(cfg: Config, text: str) -> str:
        if cfg.arm == "shadow":
            await asyncio.sleep(0.2)
            seen.append(current_config())
            raise RuntimeError("never reaches the caller")
        seen.append(current_config())
        return text.upper()

    async def main() -> tuple[str, float]:
        started = time.monotonic()
        result = await router.ashadow(call, "k", "hi")
        elapsed = time.monotonic() - started
        while router._tasks:
            await asyncio.sleep(0.05)
        return result, elapsed

    result, elapsed = asyncio.run(main())
    assert result == "HI" and elapsed < 0.15
    assert seen == [ConfigRef(CANARY["id"], NAME, "canary"), ConfigRef(SHADOW["id"], NAME, "shadow")]


# --- lifecycle and environment -----------------------------------------------------------------------

def test_router_factory_returns_one_router_per_name_and_url(down_url: str) -> None:
    first = llmloop.router(NAME, url=down_url, default=CONTROL)
    try:
        assert llmloop.router(NAME, url=down_url + "/") is first
        assert llmloop.router("other", url=down_url) is not first
    finally:
        first.close()
        llmloop.router("other", url=down_url).close()
    with llmloop.router(NAME, url=down_url, default=CONTROL) as second:
        assert second is not first and not second.closed
        assert first.choose("k").id == CONTROL["id"]  # a closed router keeps serving its last state
    assert second.closed and not second._thread.is_alive()


def test_collector_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LLMLOOP_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_url() == "http://127.0.0.1:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example:4317/base")
    assert resolve_url() == "https://otel.example:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
    assert resolve_url() == "http://collector:4318"
    monkeypatch.setenv("LLMLOOP_URL", "http://llmloop:9000/")
    assert resolve_url() == "http://llmloop:9000"
    assert resolve_url("http://given:1") == "http://given:1"


# --- feedback arguments ----------------------------------------------------------------------------------

def test_feedback_arguments_are_checked_in_the_caller() -> None:
    ids = {"trace_id": "ab" * 16}
    with pytest.raises(ValueError, match="score or thumbs"):
        llmloop.feedback(**ids)
    with pytest.raises(ValueError, match="'up' or 'down'"):
        llmloop.feedback(thumbs="sideways", **ids)
    for score in (float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="finite number"):
            llmloop.feedback(score, **ids)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32-digit hex"):
        llmloop.feedback(1, trace_id="xyz")
    with pytest.raises(ValueError, match="16-digit hex"):
        llmloop.feedback(1, span_id="0" * 16)
    with pytest.raises(ValueError, match="when no span is current"):
        llmloop.feedback(1)


def test_feedback_defaults_to_the_current_span_and_config() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span, llmloop.use_config(f"{NAME}@1"):
        body = _body(None, "down", "wrong queue", None, None, None, 42, {"tier": 1}, None)
    context = span.get_span_context()
    assert body.pop("id") != _body(1, None, None, 1, None, None, None, None, None)["id"]
    assert body == {"thumbs": "down", "comment": "wrong queue", "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"), "key": "42", "config_id": f"{NAME}@1",
                    "metadata": {"tier": "1"}}
    by_response = _body(0.5, None, None, None, None, "msg_1", None, None, None)
    assert by_response.keys() == {"id", "score", "response_id"}  # explicit ids: nothing from the context


def test_feedback_never_raises_when_the_collector_is_down(down_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback_api, "RETRY_FOR", 0.5)
    feedback_id = llmloop.feedback(0.9, trace_id="ab" * 16, url=down_url)
    assert len(feedback_id) == 36
    assert not feedback_api.flush(0.1)  # still retrying
    assert feedback_api.flush(5)  # given up (with a warning) after RETRY_FOR
