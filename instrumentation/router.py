"""The rollout router: which config serves a request, kept current from the collector.

    router = llmloop.router("support-triage", default="configs/support-triage.toml")
    with router.use(user_id) as cfg:            # GenAI spans inside carry the config id, rollout and arm
        client.messages.create(model=cfg.model, system=cfg.prompt["system"], **cfg.params, ...)

`choose(key)` buckets the key by hashing (rollout name, key) into 10,000 buckets; a key is on the
canary iff its bucket is below weight x 100, so a key keeps its arm while the weight stays, and a
higher weight only moves keys from control to canary. The state (control, canary and weight,
shadow) comes from `GET /api/v1/rollouts/{name}` and is kept current by one daemon thread per
router that long-polls with the state's ETag, so a rollback arrives as soon as it is written. While
the collector is unreachable the last known state keeps serving (retries back off to `retry_max`);
before any state is known the `default` config serves as control. `choose` reads one immutable state
reference and hashes the key: no lock, no I/O, one or two microseconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import http.client
import logging
import os
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

from llmloop.instrumentation.config import use_config
from llmloop.instrumentation.registry import Connection, error_message, resolve_token, resolve_url

log = logging.getLogger("llmloop.instrumentation.router")

P = ParamSpec("P")
R = TypeVar("R")

BUCKETS = 10_000
"""Keys hash into this many buckets; the canary takes buckets below weight x 100 (0.01% steps)."""

MAX_POLL_WAIT = 60.0
"""The longest hold the collector grants a long poll (`wait` above it is refused)."""

NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
"""A config (and rollout) name: the part of a config id before '@'."""


# --- bucketing -------------------------------------------------------------------------------------

def _salt(rollout: str) -> bytes:
    return rollout.encode() + b"\x00"


def _bucket(salt: bytes, key: object) -> int:
    if type(key) is str:
        try:
            data = key.encode()
        except UnicodeEncodeError:
            data = key.encode("utf-8", "surrogatepass")
    elif type(key) is bytes:
        data = key
    else:
        data = str(key).encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(salt + data, digest_size=8).digest(), "big") % BUCKETS


def bucket(rollout: str, key: object) -> int:
    """The bucket (0..9999) of `key` in `rollout`: blake2b-64 of `rollout + NUL + key` (UTF-8), mod 10,000.

    `key` is a str, bytes, or anything else by its `str()` (so 42 and "42" share a bucket).
    """
    return _bucket(_salt(rollout), key)


# --- config documents --------------------------------------------------------------------------------

def _read_only(*_: object, **__: object) -> NoReturn:
    raise TypeError("llmloop configs are shared and read-only: copy first, e.g. dict(cfg.params)")


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes (JSON-serializable, `**`-unpackable); copies are plain dicts."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[dict[Any, Any]]]:
        return dict, (dict(self),)


class FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses changes; copies are plain lists."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only  # type: ignore[assignment]
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[list[Any]]]:
        return list, (list(self),)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenDict((str(k), _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return FrozenList(_freeze(v) for v in value)
    return value


def _mapping(document: Mapping[str, Any], key: str) -> FrozenDict:
    value = document.get(key)
    if value is None:
        return FrozenDict()
    if not isinstance(value, Mapping):
        raise ValueError(f"config {document.get('id')!r}: {key!r} must be an object, not {type(value).__name__}")
    return value  # type: ignore[return-value]  # already frozen by the caller


@dataclass(frozen=True, slots=True)
class Config:
    """The config serving a request: the document's fields, the whole `document`, and the rollout arm.

    Values are read-only (shared by every request on this state); `dict(cfg.params)` or
    `copy.deepcopy(cfg.document)` give mutable copies. Equal when id, arm and rollout are equal.
    """

    id: str
    arm: str
    """control | canary | shadow."""
    rollout: str
    model: str | None = field(default=None, compare=False)
    provider: str | None = field(default=None, compare=False, repr=False)
    prompt: Mapping[str, Any] = field(default_factory=FrozenDict, compare=False, repr=False)
    params: Mapping[str, Any] = field(default_factory=FrozenDict, compare=False, repr=False)
    tools: Sequence[Any] = field(default_factory=FrozenList, compare=False, repr=False)
    retrieval: Mapping[str, Any] = field(default_factory=FrozenDict, compare=False, repr=False)
    metadata: Mapping[str, Any] = field(default_factory=FrozenDict, compare=False, repr=False)
    description: str | None = field(default=None, compare=False, repr=False)
    document: Mapping[str, Any] = field(default_factory=FrozenDict, compare=False, repr=False)

    @classmethod
    def from_document(cls, document: Any, rollout: str, arm: str) -> Config:
        """Build from a config document (a mapping with at least a non-empty string `id`). ValueError if malformed."""
        if not isinstance(document, Mapping):
            raise ValueError(f"a config document must be an object, not {type(document).__name__}")
        doc = _freeze(document)
        config_id = doc.get("id")
        if not isinstance(config_id, str) or not config_id.strip():
            raise ValueError("a config document needs an 'id' such as 'support-triage@2026-06-03.1'")
        tools = doc.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise ValueError(f"config {config_id!r}: 'tools' must be a list")
        text = {key: doc.get(key) for key in ("model", "provider", "description")}
        for key, value in text.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"config {config_id!r}: {key!r} must be a string")
        return cls(
            id=config_id.strip(), arm=arm, rollout=rollout, model=text["model"], provider=text["provider"],
            prompt=_mapping(doc, "prompt"), params=_mapping(doc, "params"), tools=tools or FrozenList(),
            retrieval=_mapping(doc, "retrieval"), metadata=_mapping(doc, "metadata"),
            description=text["description"], document=doc,
        )


# --- state -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _State:
    """One rollout state as routed: replaced whole, never changed."""

    control: Config
    canary: Config  # the control when there is no canary (threshold 0)
    shadow: Config | None
    threshold: int  # buckets below this serve the canary
    version: int | None  # the rollout's event count; None for the local default

    @classmethod
    def parse(cls, doc: Any, rollout: str) -> _State:
        """From the API's state JSON. ValueError if malformed."""
        if not isinstance(doc, Mapping) or doc.get("control") is None:
            raise ValueError("rollout state without a control config")
        control = Config.from_document(doc["control"], rollout, "control")
        canary = Config.from_document(doc["canary"], rollout, "canary") if doc.get("canary") else None
        shadow = Config.from_document(doc["shadow"], rollout, "shadow") if doc.get("shadow") else None
        weight = float(doc.get("weight") or 0.0)
        threshold = min(BUCKETS, max(0, round(weight * BUCKETS / 100))) if canary else 0
        version = doc.get("version")
        return cls(control, canary or control, shadow, threshold, version if isinstance(version, int) else None)


class RouterError(RuntimeError):
    """No config can be served: no rollout state from the collector and no `default`."""


class _Routed(use_config):
    """`router.use(key)`: the config context of the chosen config; entering returns the `Config`."""

    def __init__(self, config: Config) -> None:
        super().__init__(config.id, rollout=config.rollout, arm=config.arm)
        self.chosen = config

    def __enter__(self) -> Config:  # type: ignore[override]
        super().__enter__()
        return self.chosen


# --- the router --------------------------------------------------------------------------------------

class Router:
    """Routes request keys to the configs of one rollout; see the module docstring. Prefer `router(...)`."""

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        token: str | None = None,
        default: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        initial_timeout: float = 2.0,
        poll_wait: float = 30.0,
        retry_max: float = 2.0,
        shadow_workers: int = 4,
        shadow_pending: int = 64,
    ) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"a router takes a rollout name (a config name such as 'support-triage', without "
                             f"'@version'), not {name!r}")
        self.name = name
        self.url = resolve_url(url)
        self.poll_wait = min(poll_wait, MAX_POLL_WAIT)
        self.retry_max = retry_max
        self.shadow_workers = shadow_workers
        self.shadow_pending = shadow_pending
        self._token = resolve_token(token)
        self._conn = Connection(self.url, self._token)
        self._salt = _salt(name)
        self._default = self._default_state(default) if default is not None else None
        self._state: _State | None = self._default
        self._etag: str | None = None  # the poller's; the ETag of the last state received
        self._deadline = time.monotonic() + initial_timeout
        self._problem = "no answer yet"
        self._failures = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._init_threading()
        _live.add(self)

    def _default_state(self, default: Mapping[str, Any] | str | os.PathLike[str]) -> _State:
        if isinstance(default, Mapping):
            document: Mapping[str, Any] = default
        else:
            from llmloop import configfile  # the parser `llmloop config publish` uses

            try:
                document = configfile.load(Path(default))
            except configfile.ConfigFileError as exc:
                raise ValueError(f"default config file {default} {exc}") from None
        control = Config.from_document(document, self.name, "control")
        if control.id.partition("@")[0] != self.name:
            raise ValueError(f"default config {control.id!r} is not a config of rollout {self.name!r} "
                             f"(its id must look like '{self.name}@<version>')")
        return _State(control, control, None, 0, None)

    def _init_threading(self) -> None:
        self._closed = threading.Event()
        self._ready = threading.Event()  # a state (or a definite "unknown rollout") arrived
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._shadow_slots = threading.BoundedSemaphore(self.shadow_pending)
        self._thread = threading.Thread(target=self._poll_loop, name=f"llmloop-router-{self.name}", daemon=True)
        self._thread.start()

    # --- routing (the hot path) ------------------------------------------------------------------

    def choose(self, key: object) -> Config:
        """The config serving `key` (a user or session id: str, bytes, or anything by its `str()`).

        Raises RouterError only when there is neither a rollout state nor a `default` (after waiting up
        to `initial_timeout` from the router's creation for the first state).
        """
        state = self._state
        if state is None:
            state = self._first_state()
        threshold = state.threshold
        if threshold and (threshold >= BUCKETS or _bucket(self._salt, key) < threshold):
            return state.canary
        return state.control

    def use(self, key: object) -> _Routed:
        """`with router.use(key) as cfg:` (or `async with`): `choose(key)` plus its config context."""
        return _Routed(self.choose(key))

    def shadow(self, fn: Callable[Concatenate[Config, P], R], key: object, /,
               *args: P.args, **kwargs: P.kwargs) -> R:
        """`fn(cfg, *args, **kwargs)` with the chosen config, its result served; with a shadow config in the
        state, `fn(shadow_cfg, *args, **kwargs)` also runs in a background thread (arm "shadow"), never
        delaying or failing the served call (dropped when `shadow_pending` calls are already waiting).
        The arguments are shared by both calls: `fn` must not change them.
        """
        state = self._state
        config = self.choose(key)
        if state is not None and state.shadow is not None:
            self._submit_shadow(fn, state.shadow, args, kwargs)
        with _Routed(config):
            return fn(config, *args, **kwargs)

    async def ashadow(self, fn: Callable[Concatenate[Config, P], Awaitable[R]], key: object, /,
                      *args: P.args, **kwargs: P.kwargs) -> R:
        """The async `shadow`: awaits `fn(cfg, ...)`; the shadow call is a background task on the same loop."""
        state = self._state
        config = self.choose(key)
        if state is not None and state.shadow is not None:
            if len(self._tasks) >= self.shadow_pending:
                log.debug("llmloop router %r: shadow call dropped, %d pending", self.name, len(self._tasks))
            else:
                task = asyncio.get_running_loop().create_task(self._run_ashadow(fn, state.shadow, args, kwargs))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        with _Routed(config):
            return await fn(config, *args, **kwargs)

    def _submit_shadow(self, fn: Callable[..., Any], config: Config, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> None:
        if self._closed.is_set():
            return
        if not self._shadow_slots.acquire(blocking=False):
            log.debug("llmloop router %r: shadow call dropped, %d pending", self.name, self.shadow_pending)
            return
        try:
            executor = self._executor
            if executor is None:
                with self._lock:
                    if self._executor is None:
                        self._executor = ThreadPoolExecutor(self.shadow_workers, f"llmloop-shadow-{self.name}")
                    executor = self._executor
            executor.submit(contextvars.copy_context().run, self._run_shadow, fn, config, args, kwargs)
        except RuntimeError:  # executor shut down: router closed or interpreter exiting
            self._shadow_slots.release()

    def _run_shadow(self, fn: Callable[..., Any], config: Config, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> None:
        try:
            with _Routed(config):
                fn(config, *args, **kwargs)
        except Exception:
            log.debug("llmloop router %r: shadow call with %s failed", self.name, config.id, exc_info=True)
        finally:
            self._shadow_slots.release()

    async def _run_ashadow(self, fn: Callable[..., Awaitable[Any]], config: Config, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> None:
        try:
            with _Routed(config):
                await fn(config, *args, **kwargs)
        except Exception:
            log.debug("llmloop router %r: shadow call with %s failed", self.name, config.id, exc_info=True)

    def _first_state(self) -> _State:
        remaining = self._deadline - time.monotonic()
        if remaining > 0:
            self._ready.wait(remaining)
        state = self._state
        if state is not None:
            return state
        raise RouterError(
            f"llmloop router {self.name!r}: no rollout state from {self.url} ({self._problem}) and no default "
            f"config. Pass default= (a config document or a .toml/.yaml file) to serve before the collector "
            f"answers, check that the collector runs at that URL (LLMLOOP_URL), or start the rollout "
            f"(llmloop rollout start {self.name} ...).")

    # --- state -------------------------------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The rollout version (event count) being served; None while serving the default or nothing."""
        state = self._state
        return state.version if state is not None else None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the collector has answered with a state (or that the rollout is unknown)."""
        return self._ready.wait(timeout)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            try:
                delay = self._poll_once()
            except Exception:  # a bug here must not kill routing updates
                log.warning("llmloop router %r: poll failed", self.name, exc_info=True)
                delay = self.retry_max
            if delay and self._closed.wait(delay):
                break
        self._conn.close()

    def _poll_once(self) -> float:
        """One GET of the state (a long poll once an ETag is known); returns the delay before the next."""
        path = f"/rollouts/{urllib.parse.quote(self.name, safe='')}"
        headers = {}
        if self._etag:
            path += f"?wait={self.poll_wait:g}"
            headers["If-None-Match"] = self._etag
        started = time.monotonic()
        try:
            status, resp_headers, payload = self._conn.request(
                "GET", path, headers=headers, timeout=self.poll_wait + 10 if self._etag else 10)
        except (OSError, http.client.HTTPException) as exc:
            return self._failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        quick = time.monotonic() - started < 1.0
        if status == 304:
            self._recovered()
            return self.retry_max / 2 if quick else 0.0  # a quick 304: the server did not hold the poll
        if status == 200:
            self._recovered()
            etag = resp_headers.get("etag")
            changed = etag != self._etag
            try:
                self._state = _State.parse(payload, self.name)
                self._etag = etag  # only once parsed: a malformed state is fetched again, not waited past
            except (TypeError, ValueError) as exc:  # keep serving what we have; ask again after a backoff
                return self._failed(f"malformed rollout state: {exc}")
            self._ready.set()
            # Without an ETag, or when the server answers at once with the same one, it does not long-poll.
            return 0.0 if etag and (changed or not quick) else self.retry_max / 2
        if status == 404:  # unknown rollout; its ETag (if given) lets the next poll wait for the start
            self._recovered()
            etag = resp_headers.get("etag")
            changed = etag != self._etag
            self._etag = etag
            self._problem = f"rollout {self.name!r} not found (404)"
            if self._default is not None:
                self._state = self._default
            self._ready.set()
            return 0.0 if etag and changed else self.retry_max
        return self._failed(f"HTTP {status}: {error_message(status, payload)}")

    def _failed(self, problem: str) -> float:
        self._failures += 1
        self._problem = problem
        level = logging.WARNING if self._failures == 1 and not self._closed.is_set() else logging.DEBUG
        log.log(level, "llmloop router %r: collector at %s unavailable (%s); serving %s, retrying", self.name,
                self.url, problem, "the last known state" if self._state is not self._default else
                ("the default config" if self._default else "nothing yet"))
        return min(self.retry_max, 0.05 * 2 ** min(self._failures, 16)) * random.uniform(0.5, 1.0)

    def _recovered(self) -> None:
        if self._failures:
            log.info("llmloop router %r: collector at %s reachable again", self.name, self.url)
            self._failures = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop polling and the shadow pool; `choose` keeps serving the last state."""
        self._closed.set()
        self._conn.interrupt()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        with _cache_lock:
            if _cache.get((self.name, self.url)) is self:
                del _cache[(self.name, self.url)]

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        """Threads do not survive fork: give the child its own connection, poller and shadow pool."""
        if self._closed.is_set():
            return
        ready = self._ready.is_set()
        self._conn = Connection(self.url, self._token)
        self._tasks = set()
        self._init_threading()
        if ready:
            self._ready.set()

    def __repr__(self) -> str:
        return f"<Router {self.name!r} {self.url} version={self.version}>"


_live: weakref.WeakSet[Router] = weakref.WeakSet()
_cache: dict[tuple[str, str], Router] = {}
_cache_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()
    for live in list(_live):
        live._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def router(name: str, *, url: str | None = None, **options: Any) -> Router:
    """The router of rollout `name` at the collector `url` (one per name and URL: later calls return it).

    `url`: the collector's HTTP base URL; default `LLMLOOP_URL`, else the host of
    `OTEL_EXPORTER_OTLP_ENDPOINT` on port 4318, else `http://127.0.0.1:4318`. `token`: default
    `LLMLOOP_TOKEN`. `default`: a config document (mapping) or a `.toml`/`.yaml` config file, served as
    control until the collector answers. `initial_timeout`: how long `choose` may wait for the first
    state when there is no default. `poll_wait`: the long-poll's hold time (at most 60 s); `retry_max`: the cap of
    the retry backoff while the collector is unreachable. `shadow_workers` threads run shadow calls,
    with at most `shadow_pending` waiting or running (more are dropped). `options` are `Router`'s.
    """
    resolved = resolve_url(url)
    with _cache_lock:
        existing = _cache.get((name, resolved))
        if existing is not None and not existing.closed:
            return existing
        created = _cache[(name, resolved)] = Router(name, url=resolved, **options)
        return created
