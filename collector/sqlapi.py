"""Read-only SQL over the store, speaking enough of ClickHouse's HTTP interface for curl and clickhouse-connect.

An embedded chDB store can be opened by one process only, so the collector answers queries for it:
`GET|POST /?query=...` (a POST body is appended to the URL's `query` after a newline), `database`,
`default_format`, `param_<name>` and ClickHouse settings as URL parameters, `GET /ping`, and errors
as `Code: N. DB::Exception: ...` bodies with an `X-ClickHouse-Exception-Code` header.

Read-only without the `readonly` setting (on chDB it sticks to the shared session and breaks the
writer): ClickHouse parses each query and only what it parsed runs.
- `formatQuerySingleLine` turns the text into exactly one canonical statement; the text itself is
  never run, since chDB would run `SELECT 1; DROP TABLE t` as two statements, even under EXPLAIN.
- `EXPLAIN AST` of that statement names it: SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN of those pass.
- Nothing may read or write outside the store: `INTO OUTFILE`, the `file()` function, and every
  table function except those that only read the store or generate rows (numbers, merge, view, ...)
  are refused, so url, s3, remote, mysql, python and any added later are refused too.
- Limits are the app's: `max_execution_time` and `max_memory_usage` are set on every query. URL
  parameters naming a limit or a file (`format_schema`, `output_format_schema`, ...) are ignored, and
  a SETTINGS clause assigning one is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import time
import uuid
from contextlib import suppress

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

# URL parameters of the HTTP protocol itself, never taken as settings.
_PROTOCOL = frozenset({"query", "query_id", "session_id", "session_timeout", "session_check", "compress",
                       "decompress", "user", "password", "database", "default_format", "wait_end_of_query",
                       "buffer_size", "client_protocol_version", "quota_key", "role"})
# Settings a caller may not change: the limits, and those naming local files to read or write.
_PROTECTED = (r"readonly|allow_ddl|allow_introspection_functions|timeout_overflow_mode\w*|"
              r"max_(?:estimated_)?execution_time\w*|max_memory_usage\w*|memory_(?:usage_)?overcommit\w*|"
              r"(?:output_)?format_schema\w*|format_template_(?:resultset|row)|jemalloc\w*")
_PROTECTED_NAME = re.compile(_PROTECTED, re.I)
_PROTECTED_ASSIGNED = re.compile(rf"\b(?:{_PROTECTED}) = ", re.I)
_READ_STATEMENT = re.compile(r"SelectWithUnionQuery|SelectIntersectExceptQuery|Show\w*|SHOW|Describe\w*|Exists\w*")
_LOCAL_TABLE_FUNCTIONS = frozenset({
    "format", "fuzzjson", "fuzzquery", "generaterandom", "generateseries", "generate_series", "loop", "merge",
    "mergetreeanalyzeindexes", "mergetreeanalyzeindexesuuid", "mergetreecodecblockcounts", "mergetreeindex",
    "mergetreeprojection", "mergetreetextindex", "null", "numbers", "numbers_mt", "primes", "sqlstandardvalues",
    "values", "view", "viewexplain", "viewifpermitted", "zeros", "zeros_mt",
})
# A canonical one-line statement ends with its own FORMAT, optionally followed by SETTINGS.
_OWN_FORMAT = re.compile(r"^(.*) FORMAT (\w+)((?: SETTINGS .*)?)$")
_SCOPE_NOISE = re.compile(r" ?: In scope SELECT formatQuerySingleLine\(.*\)\.(?= \(\w+\)$)", re.S)
_STATUS = {516: 401, 164: 403, 497: 403, 60: 404, 81: 404} | dict.fromkeys(
    (6, 26, 27, 36, 38, 41, 42, 43, 46, 47, 50, 53, 62, 73, 456, 457), 400)
_CONTENT_TYPES = (
    (("tabseparated", "tsv"), "text/tab-separated-values; charset=UTF-8"),
    (("csv",), "text/csv; charset=UTF-8"),
    (("json", "ndjson"), "application/json; charset=UTF-8"),
    (("xml",), "application/xml; charset=UTF-8"),
    (("pretty", "vertical", "markdown", "values", "tskv", "lineasstring", "template", "customseparated",
      "sqlinsert", "prometheus", "raw", "null"), "text/plain; charset=UTF-8"),
)


class _Text:
    """A bound parameter already in ClickHouse's text form, passed to the engine unquoted."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _content_type(fmt: str) -> str:
    name = fmt.lower()
    return next((kind for prefixes, kind in _CONTENT_TYPES if name.startswith(prefixes)), "application/octet-stream")


def _exception(code: int, name: str, message: str) -> DatabaseError:
    return DatabaseError(f"Code: {code}. DB::Exception: {message}. ({name})", code=code)


def _refused(code: int, name: str, why: str) -> DatabaseError:
    return _exception(code, name, f"llmloop's query endpoint is read-only: {why}")


def _error_response(exc: ClickHouseError, headers: dict[str, str]) -> Response:
    if exc.code is None:  # the client library's own error, e.g. a parameter it cannot bind
        exc = _exception(36, "BAD_ARGUMENTS", str(exc))
    headers = {**headers, "X-ClickHouse-Exception-Code": str(exc.code)}
    return PlainTextResponse(f"{exc}\n", _STATUS.get(exc.code, 500), headers=headers)


def _session_keeps(client: Client, settings: dict[str, str]) -> bool:
    """Set `settings` on `client`'s session; whether later queries run with them.

    chDB keeps a session per connection, but applies per-query settings with a SET before and after
    the query: ~9 ms of CPU per query for three settings, against ~8 ms for the rest of a query's
    round trip. A ClickHouse server without a session takes them with each query instead, at no cost.
    """
    try:
        for name, value in settings.items():
            client.command(f"SET {name} = {int(value)}")  # names are ours, values integers
        return all(client.command("SELECT toUInt64(getSetting({name:String})) = {value:UInt64}",
                                  parameters={"name": name, "value": int(value)}) for name, value in settings.items())
    except ClickHouseError:
        return False


def create_sql_app(client: Client, token: str | None = None, max_execution_time: int = 60,
                   max_memory_usage: int = 4 * 1024**3) -> Starlette:
    """The read-only ClickHouse HTTP app over `client`, every query under the given limits.

    `client` should be the app's own: on an embedded store the limits are set on its session.

    With `token`, queries need it as a bearer token, as the password (basic auth, `X-ClickHouse-Key`
    or the `password` URL parameter); `/ping` and a bare `GET /` answer without it.
    """
    server = json.loads(client.raw_query(
        "SELECT timezone() AS tz, currentDatabase() AS db, (SELECT groupArray(name) FROM system.settings) AS settings,"
        " (SELECT groupArray(lower(name)) FROM system.table_functions) AS table_functions",
        fmt="JSONEachRow", use_database=False))
    setting_names = frozenset(server["settings"]) - _PROTOCOL
    external = frozenset(server["table_functions"]) - _LOCAL_TABLE_FUNCTIONS | {"file"}
    limits = {"max_execution_time": str(max_execution_time), "max_memory_usage": str(max_memory_usage)}
    # Spans may carry invalid UTF-8 (stored as sent); JSON output replaces it unless asked not to.
    defaults = {"output_format_json_validate_utf8": "1"}
    if _session_keeps(client, defaults | limits):  # an embedded store: set once, not around every query
        defaults, limits = {}, {}
    lock = threading.Lock()  # the engine runs one call per handle anyway; this also guards client.database

    def authorized(request: Request) -> bool:
        if not token:
            return True
        given = [request.headers.get("x-clickhouse-key", ""), request.query_params.get("password", "")]
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given.append(credentials.strip())
        elif scheme.lower() == "basic":
            with suppress(binascii.Error, UnicodeDecodeError):
                given.append(base64.b64decode(credentials).decode().partition(":")[2])
        return any(hmac.compare_digest(candidate.encode(), token.encode()) for candidate in given if candidate)

    def check(statement: str, params: dict[str, _Text] | None) -> None:
        """Refuse `statement` (canonical, without FORMAT) unless it only reads the store."""
        if re.search(r"\bINTO\s+OUTFILE\b", statement, re.I):  # before EXPLAIN, which would write the file
            raise _refused(497, "ACCESS_DENIED", "INTO OUTFILE is not allowed")
        ast = client.raw_query(f"EXPLAIN AST {statement}", params, use_database=False).decode().splitlines()
        nodes = [(len(line) - len(line.lstrip(" ")), line.split()) for line in ast if line.strip()]
        kind = nodes[0][1][0]
        if kind == "Explain":  # what is explained: the first direct child that is not one of EXPLAIN's options
            kind = next((words[0] for depth, words in nodes if depth == 1 and words[0] != "Set"), "")
        if not _READ_STATEMENT.fullmatch(kind):
            raise _refused(164, "READONLY", f"{kind} statements are not allowed")
        for _, words in nodes:
            if words[0] == "Function" and words[1].lower() in external:
                raise _refused(497, "ACCESS_DENIED", f"{words[1]}() reads outside the store")
        if ["Set"] in (words for _, words in nodes) and (assigned := _PROTECTED_ASSIGNED.search(statement)):
            raise _refused(164, "READONLY", f"the setting {assigned.group().split()[0]} cannot be changed")

    def execute(sql: str, args: dict[str, str]) -> tuple[bytes, str]:
        """Parse, check and run `sql`; its result in its format, and the format's name."""
        with lock:
            try:
                statement = client.raw_query("SELECT formatQuerySingleLine({q:String})", parameters={"q": sql},
                                             fmt="TabSeparatedRaw", use_database=False).decode().removesuffix("\n")
            except DatabaseError as exc:
                raise DatabaseError(_SCOPE_NOISE.sub("", str(exc)), code=exc.code) from None
            # An INSERT's FORMAT names its input; left in place, the INSERT is refused by check().
            own = None if statement.startswith("INSERT ") else _OWN_FORMAT.match(statement)
            statement, fmt = (own.group(1) + own.group(3), own.group(2)) if own else (statement, "")
            fmt = fmt or args.get("default_format") or "TabSeparated"
            if not re.fullmatch(r"\w+", fmt):
                raise _exception(73, "UNKNOWN_FORMAT", f"Unknown format {fmt!r}")
            # Without a {name:Type} placeholder the client would %-format the query with the parameters.
            params = {name[6:]: _Text(value) for name, value in args.items() if name.startswith("param_")}
            bound = params if re.search(r"\{\w+:", statement) else None
            check(statement, bound)  # EXPLAIN AST substitutes the parameters, so they are checked too
            settings = defaults | {
                name: value for name, value in args.items()
                if name in setting_names and not _PROTECTED_NAME.fullmatch(name)} | limits
            previous, client.database = client.database, args.get("database") or server["db"]
            try:
                return client.raw_query(statement, parameters=bound, settings=settings, fmt=fmt), fmt
            finally:
                client.database = previous

    async def ping(request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def query(request: Request) -> Response:
        headers = {"X-ClickHouse-Query-Id": request.query_params.get("query_id") or str(uuid.uuid4()),
                   "X-ClickHouse-Timezone": server["tz"]}
        if request.method != "POST" and not request.query_params.get("query"):
            return PlainTextResponse("Ok.\n", headers=headers)  # like ClickHouse's `GET /`, a health check
        if not authorized(request):
            failure = _exception(516, "AUTHENTICATION_FAILED", "missing or wrong token: send it as "
                                 "'Authorization: Bearer <token>' or as the password")
            return _error_response(failure, {**headers, "WWW-Authenticate": "Bearer"})
        if request.headers.get("content-encoding", "identity").lower() != "identity":
            return _error_response(_refused(164, "READONLY", "compressed bodies (clients send them only with "
                                            "inserts) are not accepted"), headers)
        body = (await request.body()).decode(errors="replace") if request.method == "POST" else ""
        sql = "\n".join(part for part in (request.query_params.get("query", ""), body) if part)
        started = time.perf_counter_ns()
        try:
            result, fmt = await run_in_threadpool(execute, sql, dict(request.query_params))
        except ClickHouseError as exc:
            return _error_response(exc, headers)
        summary = dict.fromkeys(("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read",
                                 "result_rows"), "0")
        summary |= {"result_bytes": str(len(result)), "elapsed_ns": str(time.perf_counter_ns() - started)}
        headers |= {"X-ClickHouse-Format": fmt, "X-ClickHouse-Summary": json.dumps(summary)}
        return Response(result, headers=headers, media_type=_content_type(fmt))

    return Starlette(routes=[Route("/", query, methods=["GET", "POST"]), Route("/ping", ping, methods=["GET"])])
