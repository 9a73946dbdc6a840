"""The read-only SQL endpoint: curl-style HTTP and clickhouse-connect's HTTP client against a real uvicorn."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import Message
from pathlib import Path

import clickhouse_connect
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from starlette.applications import Starlette

from llmloop.collector.sqlapi import create_sql_app
from llmloop.collector.store import connect, migrate
from llmloop.queries import Layout

TOKEN = "s3cret"
ROWS = "SELECT SpanName, InputTokens FROM llmloop.spans ORDER BY SpanName"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One embedded store for the module (a process can open only one chDB path), with two spans."""
    client = connect(f"chdb://{tmp_path_factory.mktemp('sqlapi')}/store")
    migrate(client, Layout())
    client.command(
        "INSERT INTO llmloop.spans (Timestamp, TraceId, SpanId, SpanName, ServiceName, SpanAttributes, InputTokens,"
        " FinishReasons) VALUES ('2026-06-03 12:00:00.123456789', 't1', 's1', 'chat', 'svc',"
        " {'gen_ai.request.model': 'claude'}, 812, ['end_turn', 'tool_use']),"
        " ('2026-06-03 12:00:01', 't2', 's2', 'embed', 'svc', {}, NULL, [])")
    yield client
    client.close()


@contextmanager
def serve(app: Starlette) -> Iterator[int]:
    """Run `app` on a free port in a background thread; yield the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def port(store: Client) -> Iterator[int]:
    with serve(create_sql_app(store)) as bound:
        yield bound


@pytest.fixture(scope="module")
def secured_port(store: Client) -> Iterator[int]:
    with serve(create_sql_app(store, token=TOKEN)) as bound:
        yield bound


def call(port: int, query: str | None = None, body: str | None = None, path: str = "/",
         headers: dict | None = None, **params: str) -> tuple[int, Message, str]:
    """(status, headers, body) of a request; `query` goes in the URL, `body` makes it a POST."""
    args = {"query": query, **params} if query is not None else params
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(args)}"
    request = urllib.request.Request(url, data=body.encode() if body is not None else None, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def count(port: int) -> str:
    return call(port, "SELECT count() FROM llmloop.spans")[2]


def test_json_each_row_keeps_every_type(port: int) -> None:
    status, headers, body = call(port, "SELECT Timestamp, SpanAttributes, InputTokens, FinishReasons "
                                       "FROM llmloop.spans ORDER BY SpanName FORMAT JSONEachRow;")
    assert status == 200
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert headers["Content-Type"].startswith("application/json")
    assert [json.loads(line) for line in body.splitlines()] == [
        {"Timestamp": "2026-06-03 12:00:00.123456789", "SpanAttributes": {"gen_ai.request.model": "claude"},
         "InputTokens": 812, "FinishReasons": ["end_turn", "tool_use"]},
        {"Timestamp": "2026-06-03 12:00:01.000000000", "SpanAttributes": {}, "InputTokens": None,
         "FinishReasons": []},
    ]


def test_tab_separated_by_default_and_url_database_and_format(port: int) -> None:
    status, headers, body = call(port, ROWS)
    assert (status, body) == (200, "chat\t812\nembed\t\\N\n")
    assert headers["Content-Type"] == "text/tab-separated-values; charset=UTF-8"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Query-Id"] and headers["X-ClickHouse-Timezone"]
    assert json.loads(headers["X-ClickHouse-Summary"])["result_bytes"] == str(len(body))
    status, headers, body = call(port, "SELECT count() AS n FROM spans", database="llmloop",
                                 default_format="JSONEachRow", query_id="q-1")
    assert (status, json.loads(body), headers["X-ClickHouse-Query-Id"]) == (200, {"n": 2}, "q-1")
    assert call(port, "SELECT 1", default_format="JSON; DROP TABLE x")[0] == 400


def test_bound_parameters_are_clickhouse_text(port: int) -> None:
    assert call(port, "SELECT {x:UInt32} + 1", param_x="41")[2] == "42\n"
    assert call(port, "SELECT length({s:String}), {a:Array(String)}, {n:Nullable(UInt8)}",
                param_s="a\\tb", param_a="['x','y']", param_n="\\N")[2] == "3\t['x','y']\t\\N\n"
    assert call(port, "SELECT SpanName FROM llmloop.spans WHERE InputTokens > {n:UInt64}", param_n="100")[2] == "chat\n"
    assert call(port, "SELECT 'a%'", param_unused="1")[2] == "a%\n"


def test_post_body_follows_the_url_query(port: int) -> None:
    assert call(port, body="SELECT 1 AS one FORMAT JSONEachRow")[2] == '{"one":1}\n'
    assert call(port, "SELECT 41 +", body="1")[2] == "42\n"


def test_ping_and_bare_get(port: int) -> None:
    assert call(port, path="/ping")[::2] == (200, "Ok.\n")
    assert call(port)[::2] == (200, "Ok.\n")


def test_url_settings_apply_to_one_query_but_limits_stay(port: int) -> None:
    probe = ("SELECT getSetting('max_threads'), getSetting('max_execution_time'), getSetting('max_memory_usage'),"
             " getSetting('output_format_json_validate_utf8')")
    default_threads = call(port, probe)[2].split("\t")[0]
    assert call(port, probe, max_threads="3", max_execution_time="0", max_memory_usage="0", readonly="0",
                output_format_json_validate_utf8="0", no_such_setting="1")[2] == f"3\t60\t{4 * 1024**3}\tfalse\n"
    assert call(port, probe)[2] == f"{default_threads}\t60\t{4 * 1024**3}\ttrue\n"
    assert call(port, "SELECT getSetting('output_format_schema')", output_format_schema="/tmp/x")[2] == "\n"


@pytest.mark.parametrize(("statement", "code"), [
    ("INSERT INTO llmloop.spans (SpanName) VALUES ('x')", "164"),
    ("INSERT INTO llmloop.spans (SpanName) SELECT 'x'", "164"),
    ("CREATE TABLE llmloop.x (a UInt8) ENGINE = Memory", "164"),
    ("DROP TABLE llmloop.spans", "164"),
    ("ALTER TABLE llmloop.spans DELETE WHERE 1", "164"),
    ("TRUNCATE TABLE llmloop.spans", "164"),
    ("SET max_threads = 1", "164"),
    ("OPTIMIZE TABLE llmloop.spans FINAL", "164"),
    ("SYSTEM DROP MARK CACHE", "164"),
    ("EXPLAIN AST DROP TABLE llmloop.spans", "164"),
    ("SELECT count() FROM llmloop.spans SETTINGS max_memory_usage = 0", "164"),
    ("SELECT 1 FORMAT Protobuf SETTINGS output_format_schema = '{out}'", "164"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "497"),
    ("SELECT file('/etc/hostname')", "497"),
    ("SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')", "497"),
    ("DESCRIBE TABLE s3('http://127.0.0.1:9/x.csv')", "497"),
    ("EXPLAIN SELECT * FROM remote('127.0.0.1', system.one)", "497"),
    ("SELECT 1 INTO OUTFILE '{out}'", "497"),
    ("SELECT 1; DROP TABLE llmloop.spans", "62"),
])
def test_writes_and_reads_outside_the_store_are_refused(port: int, tmp_path: Path, statement: str, code: str) -> None:
    outfile = tmp_path / "out.tsv"
    status, headers, body = call(port, statement.replace("{out}", str(outfile)))
    assert (status, headers["X-ClickHouse-Exception-Code"]) == ({"62": 400}.get(code, 403), code)
    assert body.startswith(f"Code: {code}. DB::Exception: ")
    assert count(port) == "2\n"
    assert not outfile.exists()


def test_errors_read_like_clickhouse(port: int) -> None:
    status, headers, body = call(port, "SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert body.startswith("Code: 62. DB::Exception: Syntax error") and body.endswith("(SYNTAX_ERROR)\n")
    status, headers, body = call(port, "SELECT * FROM llmloop.nope")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")


def test_clickhouse_connect_http_client_gets_typed_values(port: int) -> None:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
    result = client.query("SELECT Timestamp, SpanAttributes, InputTokens, FinishReasons FROM llmloop.spans "
                          "WHERE ServiceName = {svc:String} ORDER BY SpanName", parameters={"svc": "svc"})
    assert result.result_rows == [
        (datetime(2026, 6, 3, 12, 0, 0, 123456), {"gen_ai.request.model": "claude"}, 812, ["end_turn", "tool_use"]),
        (datetime(2026, 6, 3, 12, 0, 1), {}, None, []),
    ]
    assert client.command("SELECT count() FROM llmloop.spans") == 2
    assert client.query("SHOW TABLES FROM llmloop").result_rows.count(("spans",)) == 1
    with pytest.raises(DatabaseError, match="Syntax error") as err:
        client.query("SELEC 1")
    assert err.value.code == 62
    with pytest.raises(DatabaseError, match="read-only") as err:
        client.command("DROP TABLE llmloop.spans")
    assert err.value.code == 164
    with pytest.raises(DatabaseError, match="read-only"):
        client.insert("llmloop.spans", [["x"]], column_names=["SpanName"])
    assert client.command("SELECT count() FROM llmloop.spans") == 2
    client.close()


def test_token_is_required_as_bearer_key_or_password(secured_port: int) -> None:
    status, headers, body = call(secured_port, "SELECT 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (401, "516")
    assert body.endswith("(AUTHENTICATION_FAILED)\n")
    assert call(secured_port, "SELECT 1", headers={"Authorization": "Bearer nope"})[0] == 401
    assert call(secured_port, "SELECT 1", headers={"Authorization": f"Bearer {TOKEN}"})[::2] == (200, "1\n")
    assert call(secured_port, "SELECT 1", headers={"X-ClickHouse-Key": TOKEN})[::2] == (200, "1\n")
    assert call(secured_port, "SELECT 1", password=TOKEN)[::2] == (200, "1\n")
    assert call(secured_port, path="/ping")[0] == 200
    client = clickhouse_connect.get_client(host="127.0.0.1", port=secured_port, password=TOKEN)
    assert client.command("SELECT 1") == 1
    client.close()
    with pytest.raises(DatabaseError) as err:
        clickhouse_connect.get_client(host="127.0.0.1", port=secured_port, password="wrong")
    assert err.value.code == 516
