"""The store: a clickhouse-connect client from a DSN, and the schema migration runner."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from llmloop import queries
from llmloop.queries import Layout
from llmloop.semconv import mapping

log = logging.getLogger("llmloop.store")

DEFAULT_STORE = "chdb://.llmloop/store"  # embedded; a relative path is taken from the working dir
# The embedded engine runs its background merges at nice 19: they take the CPU that ingest leaves idle, so a
# burst's merges wait until it ends instead of taking a core from it (at nice 0 the HTTP phase's merges cost the
# default bench's gRPC phase ~20 % of its rate, at nice 10 still ~10 %; bench/README.md). Under sustained
# overload parts then pile up until 0017's insert delay idles the writers and the merges catch up. A ClickHouse
# server keeps its own configuration (os_threads_nice_value_merge_mutate).
_EMBEDDED_ENGINE = {"os_threads_nice_value_merge_mutate": 19}


def resolve_dsn(dsn: str) -> str:
    """Check a store DSN; an embedded store's path is made absolute and its directory created."""
    scheme = urlsplit(dsn).scheme
    if scheme == "chdb":
        path = Path(dsn[len("chdb://"):] or ".llmloop/store").resolve()
        path.mkdir(parents=True, exist_ok=True)
        return f"chdb://{path}"
    if scheme in ("http", "https"):
        return dsn
    raise ValueError(
        f"unsupported store DSN {dsn!r}: use chdb://PATH (embedded) or http(s)://user:pass@host:port/db"
    )


def retry_delays(first: float, cap: float = 30.0) -> Iterator[float]:
    """Seconds to wait before each retry of a store operation: `first`, doubling, at most `cap`."""
    return (min(first * 2**attempt, cap) for attempt in itertools.count())


def redacted(dsn: str) -> str:
    """`dsn` with its password replaced by `***`, for logs and messages."""
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def connect(dsn: str) -> Client:
    """A client for the store named by `dsn` (see `resolve_dsn`)."""
    dsn = resolve_dsn(dsn)
    scheme = urlsplit(dsn).scheme
    if scheme == "chdb":
        return clickhouse_connect.get_client(dsn=dsn, chdb_options=_EMBEDDED_ENGINE)
    # The scheme picks TLS: clickhouse-connect itself ignores it and guesses from the port (443/8443).
    return clickhouse_connect.get_client(dsn=dsn, interface=scheme, autogenerate_session_id=False)


def migrate(client: Client, layout: Layout) -> list[str]:
    """Apply the schema migrations not yet recorded in `<db>.schema_migrations`; return their names."""
    db = layout.database
    for statement in queries.render(queries.load("schema/0000_migrations.sql"), layout):
        client.command(statement)
    done = {
        row[0]
        for row in client.query(
            f"SELECT version FROM {db}.schema_migrations"  # db is a validated identifier
        ).result_rows
    }
    applied = []
    for version, name in queries.migrations():
        if version == 0 or version in done:
            continue
        for statement in queries.render(queries.load(f"schema/{name}"), layout):
            client.command(statement)
        client.insert(f"{db}.schema_migrations", [[version, name]], column_names=["version", "name"])
        log.info("applied migration %s", name)
        applied.append(name)
    return applied


def write_settings(layout: Layout) -> dict[str, int]:
    """Settings for the collector's own small writes: on a cluster, through a Distributed table, the
    row is on its shard before the insert returns, so the next read sees it."""
    return {"distributed_foreground_insert": 1} if layout.cluster else {}


def load_conventions(client: Client, database: str) -> None:
    """Load the foreign-convention tables of `llmloop.semconv.mapping` as a new generation (see 0006)."""
    generation = time.time_ns()
    client.insert(f"{database}.conventions",
                  [[table, key, targets, generation] for table, key, targets in mapping.tables()],
                  column_names=["mapping", "key", "targets", "generation"])
