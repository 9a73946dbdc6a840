"""A test double for a ClickHouse server: ClickHouse's HTTP interface over an embedded chDB engine.

Not a mock of results: every statement runs in a real ClickHouse engine (chDB) on `--path`, so a test
can point `llmloop serve --store http://127.0.0.1:PORT` at it, kill it (the store goes away) and start
it again on the same path (the data is still there). It speaks what clickhouse-connect's HTTP client
sends: the statement in the `query` URL parameter and/or the body (for an INSERT, the data follows
`FORMAT <name>\\n`), bodies compressed with lz4 (one frame per block), zstd, gzip or deflate,
`database`, `default_format`, `param_<name>` and settings as URL parameters, `GET /ping`; errors as
`Code: N. DB::Exception: ...` with an `X-ClickHouse-Exception-Code` header.

Fault injection (not ClickHouse's): `POST /_fault?inserts=N&code=C&commit=0|1` makes the next N
INSERTs answer error C (e.g. 252 TOO_MANY_PARTS), after running them when `commit=1` (a response lost
after the data went in). `GET /_fault` answers the INSERTs received so far and the faults left, as JSON.

Each request gets its own chDB connection handle (chDB keeps `SET` and `USE` per handle), so a
request's settings never leak into later ones; requests run one at a time. Inline protobuf schemas
(`format_schema_source = 'string'`) are cached by the engine under the working directory: run it
from a scratch directory.

    python tests/chserver.py --path DIR --port PORT    (or `python -m tests.chserver` from the repo root)
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

import chdb
import lz4.frame
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

try:
    from compression import zstd  # Python 3.14+
except ImportError:
    from backports import zstd  # what clickhouse-connect installs before 3.14

# URL parameters of the HTTP protocol itself, never settings.
PROTOCOL = frozenset({"query", "query_id", "session_id", "session_timeout", "session_check", "compress",
                      "decompress", "user", "password", "database", "default_format", "wait_end_of_query",
                      "buffer_size", "client_protocol_version", "quota_key", "role"})
_INSERT = re.compile(rb"\s*(INSERT\s+INTO\s+.+?)(\s+SETTINGS\s+.+?)?\s+FORMAT\s+(\w+)[ \t\r]*\n?", re.I | re.S)
_OWN_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
_NAME = re.compile(r"[A-Za-z_]\w*")
_HTTP_STATUS = {62: 400, 27: 400, 36: 400, 47: 400, 60: 404, 81: 404, 115: 400, 516: 401}


class ClickHouseError(Exception):
    """An error to answer in ClickHouse's form."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_engine(cls, exc: Exception) -> ClickHouseError:
        text = str(exc)
        text = text[text.find("Code: "):] if "Code: " in text else f"Code: 1000. DB::Exception: {text}"
        code = re.match(r"Code: (\d+)", text)
        return cls(int(code.group(1)) if code else 1000, text.strip())


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def decompress(body: bytes, encoding: str) -> bytes:
    """The body of a request sent with Content-Encoding `encoding` (as clickhouse-connect sends it)."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return body
        if encoding == "lz4":  # one frame per insert block
            parts = []
            while body:
                frame = lz4.frame.LZ4FrameDecompressor()
                parts.append(frame.decompress(body))
                body = frame.unused_data
            return b"".join(parts)
        if encoding == "zstd":
            return zstd.decompress(body)
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except Exception as exc:
        raise ClickHouseError(271, f"Code: 271. DB::Exception: Cannot decompress {encoding} body: {exc}. "
                                   "(CANNOT_DECOMPRESS)") from None
    raise ClickHouseError(271, f"Code: 271. DB::Exception: Unknown Content-Encoding {encoding!r}. "
                               "(CANNOT_DECOMPRESS)")


class Engine:
    """The chDB engine on `path`, running one request at a time on a fresh connection handle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.anchor = chdb.connect(self.path)  # keeps the engine up between requests
        self.lock = threading.Lock()
        self.faults = {"inserts": 0, "code": 252, "commit": 0}
        self.inserts = 0  # INSERT statements with inline data received
        self.timezone = self.anchor.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()

    def execute(self, params: dict[str, str], body: bytes) -> tuple[bytes, str | None, int]:
        """Run one request: (result, its format or None, rows written)."""
        query = params.get("query", "").encode()
        sql = query + b"\n" + body if query and body else query or body
        binds = {name[6:]: value for name, value in params.items() if name.startswith("param_")}
        settings = {name: value for name, value in params.items()
                    if name not in PROTOCOL and not name.startswith("param_")}
        with self.lock:
            handle = chdb.connect(self.path)
            try:
                if database := params.get("database"):
                    self._run(handle, f"USE `{database.replace('`', '')}`")
                for name, value in settings.items():
                    if not _NAME.fullmatch(name):
                        raise ClickHouseError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. "
                                                   "(UNKNOWN_SETTING)")
                    self._run(handle, f"SET {name} = {_quote(value)}")
                insert = _INSERT.match(sql)
                if insert:
                    self.inserts += 1
                    fault, commit, code = self.faults["inserts"] > 0, self.faults["commit"], self.faults["code"]
                    self.faults["inserts"] -= fault
                    rows = self._insert(handle, insert, sql[insert.end():]) if commit or not fault else 0
                    if fault:
                        when = "after" if commit else "instead of"
                        raise ClickHouseError(code, f"Code: {code}. DB::Exception: chserver fault {when} "
                                                    "the insert. (INJECTED_FAULT)")
                    return b"", None, rows
                text = sql.decode()
                own = _OWN_FORMAT.search(text)
                fmt = own.group(1) if own else params.get("default_format", "TabSeparated")
                result = self._run(handle, text, fmt, binds)
                return result.bytes() or b"", fmt, 0
            finally:
                handle.close()

    def _insert(self, handle: chdb.Connection, insert: re.Match[bytes], data: bytes) -> int:
        """INSERT ... FORMAT x with inline data, as INSERT ... FROM INFILE of a temporary file."""
        statement, settings, fmt = (part.decode() if part else "" for part in insert.groups())
        with tempfile.NamedTemporaryFile(suffix=".data") as file:
            file.write(data)
            file.flush()
            result = self._run(handle, f"{statement} FROM INFILE {_quote(file.name)}{settings} FORMAT {fmt}")
        return result.rows_read()

    @staticmethod
    def _run(handle: chdb.Connection, sql: str, fmt: str = "TabSeparated", binds: dict | None = None):
        try:
            return handle.query(sql, fmt, params=binds or {})
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from None


def create_app(engine: Engine) -> Starlette:
    """The ClickHouse HTTP interface app over `engine`."""

    async def ping(request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def fault(request: Request) -> Response:
        engine.faults.update({name: int(value) for name, value in request.query_params.items()})
        return JSONResponse({"inserts": engine.inserts, "faults": engine.faults})

    async def query(request: Request) -> Response:
        headers = {"X-ClickHouse-Query-Id": request.query_params.get("query_id") or str(uuid.uuid4()),
                   "X-ClickHouse-Timezone": engine.timezone}
        params = dict(request.query_params)
        if request.method == "GET" and "query" not in params:
            return PlainTextResponse("Ok.\n", headers=headers)
        started = time.perf_counter_ns()
        try:
            body = decompress(await request.body(), request.headers.get("content-encoding", ""))
            result, fmt, written = await run_in_threadpool(engine.execute, params, body)
        except ClickHouseError as exc:
            headers["X-ClickHouse-Exception-Code"] = str(exc.code)
            return PlainTextResponse(f"{exc}\n", _HTTP_STATUS.get(exc.code, 500), headers=headers)
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": str(written), "written_bytes": "0",
                   "result_bytes": str(len(result)), "elapsed_ns": str(time.perf_counter_ns() - started)}
        headers["X-ClickHouse-Summary"] = json.dumps(summary)
        if fmt and result:
            headers["X-ClickHouse-Format"] = fmt
        return Response(result, headers=headers, media_type="application/octet-stream")

    return Starlette(routes=[Route("/", query, methods=["GET", "POST"]), Route("/ping", ping, methods=["GET"]),
                            Route("/_fault", fault, methods=["GET", "POST"])])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    args.path.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.path.resolve())
    print(f"chserver: {args.path} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(engine), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
