"""The `llmloop` command line against a running collector."""

from __future__ import annotations

import json
import subprocess
import sys

from llmloop import queries
from tests.conftest import Collector
from tests.test_otlp_e2e import new_span, post, span_request

LLMLOOP = [sys.executable, "-c", "from llmloop.cli import main; main()"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LLMLOOP, *args], capture_output=True, text=True, timeout=60)


def test_sql_prints_a_table_and_json(collector: Collector) -> None:
    fields = new_span(name="cli-span")
    assert post(f"{collector.http_url}/v1/traces", span_request(fields).SerializeToString())[0] == 200
    trace_id = fields["trace_id"].hex()
    collector.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{trace_id}'", 1)
    url = f"http://127.0.0.1:{collector.sql_port}"
    query = f"SELECT SpanName, TraceId FROM llmloop.spans WHERE TraceId = '{trace_id}'"
    table = run("sql", "--url", url, query)
    assert table.returncode == 0, table.stderr
    assert "SpanName" in table.stdout and "cli-span" in table.stdout and "│" in table.stdout
    as_json = run("sql", "--url", url, "--format", "json", query)
    assert json.loads(as_json.stdout) == {"SpanName": "cli-span", "TraceId": trace_id}


def test_sql_refuses_writes_and_explains_unreachable_collector(collector: Collector) -> None:
    refused = run("sql", "--url", f"http://127.0.0.1:{collector.sql_port}", "DROP TABLE llmloop.spans")
    assert refused.returncode != 0 and "read-only" in refused.stderr
    down = run("sql", "--url", "http://127.0.0.1:9", "SELECT 1")
    assert down.returncode != 0 and "llmloop serve" in down.stderr


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "sql"):
        assert command in result.stdout
    serve_help = run("serve", "--help").stdout
    for option in ("--store", "--grpc-port", "--http-port", "--sql-port", "--token", "--cluster", "--spool-dir"):
        assert option in serve_help


def test_migrate_is_idempotent(tmp_path) -> None:
    store = f"chdb://{tmp_path / 'store'}"
    first = run("migrate", "--store", store)
    expected = len(queries.migrations()) - 1  # 0000 is the runner's own table
    assert first.returncode == 0 and f"applied {expected} migration(s)" in first.stdout, first.stderr
    second = run("migrate", "--store", store)
    assert second.returncode == 0 and "applied 0 migration(s)" in second.stdout
