"""The `llmloop` command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from llmloop.collector.store import DEFAULT_STORE
from llmloop.prices_cli import prices
from llmloop.registry_cli import config, rollout

_STORE = click.option("--store", envvar="LLMLOOP_STORE", default=DEFAULT_STORE, show_default=True,
                      help="Store DSN: chdb://PATH (embedded) or http(s)://user:pass@host:port/db. "
                           "Env: LLMLOOP_STORE.")
_CLUSTER = click.option("--cluster", default=None, help="ClickHouse cluster name: ON CLUSTER DDL, "
                        "Replicated engines and Distributed tables.")


def _layout(cluster: str | None, ttl_days: int = 0, payload_ttl_days: int = 30):
    from llmloop.queries import Layout

    return Layout(cluster=cluster, ttl_days=ttl_days, payload_ttl_days=payload_ttl_days)


@click.group()
@click.version_option(package_name="llmloop")
def main() -> None:
    """llmloop: version, roll out, observe and evaluate LLM features on OpenTelemetry + ClickHouse."""


@main.command()
@_STORE
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--grpc-port", default=4317, show_default=True, help="OTLP/gRPC port.")
@click.option("--http-port", default=4318, show_default=True, help="OTLP/HTTP port.")
@click.option("--sql-port", default=8123, show_default=True,
              help="Read-only SQL endpoint (ClickHouse HTTP interface subset).")
@click.option("--token", envvar="LLMLOOP_TOKEN", default=None,
              help="Bearer token required on every endpoint. Env: LLMLOOP_TOKEN.")
@click.option("--admin-token", envvar="LLMLOOP_ADMIN_TOKEN", default=None,
              help="Bearer token required to publish configs, act on rollouts and load prices "
                   "(without one, --token guards them). Env: LLMLOOP_ADMIN_TOKEN.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="PEM certificate (chain); with --tls-key, all ports serve TLS.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="PEM private key for --tls-cert.")
@_CLUSTER
@click.option("--ttl-days", default=0, show_default=True, help="Row TTL for spans and logs (0 = keep).")
@click.option("--payload-ttl-days", default=30, show_default=True,
              help="TTL of message-content columns (0 = as long as the row).")
@click.option("--max-body-bytes", default=64 * 1024 * 1024, show_default=True,
              help="Largest accepted request after decompression (413 / RESOURCE_EXHAUSTED past it).")
@click.option("--inflight-mb", default=256, show_default=True,
              help="Memory budget for request bodies being received at once; past it, retryable 503 / UNAVAILABLE.")
@click.option("--max-attributes", default=128, show_default=True,
              help="Attributes kept per span, event, link, log record and resource; the rest are dropped "
                   "and counted in llmloop.dropped_attributes_count.")
@click.option("--max-attribute-length", default=0, show_default=True,
              help="Characters kept per string attribute value, also inside arrays and maps (0: no limit, as "
                   "in the OTel SDK); longer strings are cut and counted in llmloop.truncated_values_count.")
@click.option("--batch-spans", default=20_000, show_default=True, help="Items per insert.")
@click.option("--flush-interval", default=1.0, show_default=True,
              help="Seconds before a partial batch is written (a quarter batch or more: 0.1 s after requests pause).")
@click.option("--insert-workers", default=2, show_default=True, help="Parallel span inserts.")
@click.option("--spool-dir", type=click.Path(path_type=Path), envvar="LLMLOOP_SPOOL", default=None,
              help="Write-ahead spool directory [default: STORE.spool beside an embedded store, "
                   "else ./.llmloop/spool]. Env: LLMLOOP_SPOOL.")
@click.option("--spool-max-mb", default=1024, show_default=True,
              help="Disk budget of the spool; past it exports get 503 / UNAVAILABLE with a retry delay.")
@click.option("--fsync/--no-fsync", default=True, show_default=True,
              help="fsync the spool before acknowledging (--no-fsync trades crash safety for speed).")
@click.option("--prices", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="LLMLOOP_PRICES",
              default=None, help="Price override file (same format as the shipped prices.toml); its rows replace "
                                 "or add to the shipped prices. Env: LLMLOOP_PRICES.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(cluster, ttl_days, payload_ttl_days, inflight_mb, batch_spans, spool_max_mb, **options) -> None:
    """Run the OTLP collector (gRPC + HTTP) writing into the store, the registry API (/api/v1 on the
    HTTP port) and the SQL endpoint. A store server that is not reachable yet is waited for."""
    from llmloop.collector.config import Config
    from llmloop.collector.errors import StoreRefused
    from llmloop.collector.server import serve as run

    if bool(options["tls_cert"]) != bool(options["tls_key"]):
        raise click.UsageError("--tls-cert and --tls-key go together")
    _logging(options["log_level"])
    try:
        run(Config(layout=_layout(cluster, ttl_days, payload_ttl_days), inflight_bytes=inflight_mb * 1024 * 1024,
                   batch_items=batch_spans, spool_bytes=spool_max_mb * 1024 * 1024, **options))
    except StoreRefused as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@_STORE
@_CLUSTER
@click.option("--ttl-days", default=0, show_default=True, help="Row TTL for spans and logs (0 = keep).")
@click.option("--payload-ttl-days", default=30, show_default=True, help="TTL of message-content columns.")
def migrate(store, cluster, ttl_days, payload_ttl_days) -> None:
    """Apply the schema migrations the store lacks (serve does this at start-up too)."""
    from llmloop.collector.store import connect
    from llmloop.collector.store import migrate as run

    _logging("info")
    applied = run(connect(store), _layout(cluster, ttl_days, payload_ttl_days))
    click.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


_FORMATS = {"table": "PrettyCompactMonoBlock", "csv": "CSVWithNames", "tsv": "TabSeparatedWithNames",
            "json": "JSONEachRow"}


@main.command()
@click.argument("query")
@click.option("--url", envvar="LLMLOOP_SQL_URL", default="http://127.0.0.1:8123", show_default=True,
              help="The running collector's SQL endpoint. Env: LLMLOOP_SQL_URL.")
@click.option("--token", envvar="LLMLOOP_TOKEN", default=None, help="Bearer token. Env: LLMLOOP_TOKEN.")
@click.option("--format", "fmt", type=click.Choice(sorted(_FORMATS)), default="table", show_default=True)
def sql(query, url, token, fmt) -> None:
    """Run a read-only QUERY through the running collector's SQL endpoint and print the result."""
    import urllib.error
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(
        url.rstrip("/") + "/?" + urllib.parse.urlencode({"default_format": _FORMATS[fmt]}),
        data=query.encode(), method="POST",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            sys.stdout.write(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise click.ClickException(exc.read().decode().strip()) from None
    except urllib.error.URLError as exc:
        raise click.ClickException(
            f"cannot reach the collector's SQL endpoint at {url} ({exc.reason}); start `llmloop serve` "
            "or pass --url") from None


main.add_command(config)
main.add_command(rollout)
main.add_command(prices)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # store retries are logged once, by the writer
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
