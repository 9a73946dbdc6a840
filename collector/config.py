"""The collector's one Config; the `llmloop serve` flags mirror its fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmloop.collector.store import DEFAULT_STORE
from llmloop.queries import Layout


@dataclass
class Config:
    """Everything `serve` needs; defaults are what `llmloop serve` runs with."""

    store: str = DEFAULT_STORE
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    sql_port: int = 8123
    token: str | None = None
    admin_token: str | None = None  # needed for registry writes (configs, rollout actions); default: token
    tls_cert: Path | None = None  # PEM certificate chain; with tls_key, every port speaks TLS
    tls_key: Path | None = None
    layout: Layout = field(default_factory=Layout)
    max_body_bytes: int = 64 * 1024 * 1024
    inflight_bytes: int = 256 * 1024 * 1024  # request bodies in memory at once, both receivers
    max_attributes: int = 128  # per span/event/link/log record/resource, like OTEL_ATTRIBUTE_COUNT_LIMIT
    max_attribute_length: int = 0  # characters per string value; 0: no limit (the OTel SDK default)
    batch_items: int = 20_000
    flush_interval: float = 1.0
    insert_workers: int = 2
    spool_dir: Path | None = None  # default: beside an embedded store, else ./.llmloop/spool
    spool_bytes: int = 1024**3
    fsync: bool = True
    log_level: str = "info"
    prices: Path | None = None  # a price override file (the user layer over the shipped table)

    def spool_path(self, dsn: str) -> Path:
        """Where acknowledged requests wait for the store (see `collector/spool.py`)."""
        if self.spool_dir is not None:
            return self.spool_dir
        if dsn.startswith("chdb://"):
            store = Path(dsn[len("chdb://"):])
            return store.with_name(store.name + ".spool")
        return Path(".llmloop/spool").resolve()
