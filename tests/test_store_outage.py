"""Fault injection: the ClickHouse store dies under load and comes back.

The collector runs with `--store http://...` against `tests/chserver.py` (ClickHouse's HTTP interface
over chDB, in its own process). While the store is down, exports are acknowledged from the spool until
its disk budget; past it the answers are retryable (HTTP 503 + Retry-After, gRPC UNAVAILABLE +
RetryInfo), never 500. When the store is back, the writers' retries drain the spool and every
acknowledged span is stored exactly once, and nothing that was refused is. The last tests make the
store fail inserts on purpose (chserver's `/_fault`) to exercise the writer's retry path.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import clickhouse_connect
import grpc
import pytest
import requests
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from tests.conftest import Collector, free_port
from tests.test_otlp_e2e import new_span, post, span_request

CHSERVER = Path(__file__).with_name("chserver.py")
SPOOL_MB = 1
SPANS_PER_EXPORT = 50  # ~13 KB per export: the 1 MB spool fills after ~80 of them
RETRIED = re.compile(r"insert of \S+ into \S+ failed.*retrying")  # the writer's log of a failed insert


@dataclass
class ChServer:
    """`tests/chserver.py` as a subprocess: a ClickHouse HTTP server over the chDB directory `root/data`."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChServer:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "chserver.log", "a") as log:  # the engine caches inline schemas in its cwd
            self.process = subprocess.Popen(
                [sys.executable, str(CHSERVER), "--path", str(self.root / "data"), "--port", str(self.port)],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chserver exited: {(self.root / 'chserver.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.dsn}/ping", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("chserver did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def fail_inserts(self, count: int, code: int, commit: bool = False) -> None:
        """Make the next `count` INSERTs answer error `code`, after running them when `commit`."""
        query = urllib.parse.urlencode({"inserts": count, "code": code, "commit": int(commit)})
        with urllib.request.urlopen(urllib.request.Request(f"{self.dsn}/_fault?{query}", b""), timeout=10):
            pass

    def inserts(self) -> int:
        """INSERT statements this server process has received."""
        with urllib.request.urlopen(f"{self.dsn}/_fault", timeout=10) as response:
            return json.load(response)["inserts"]

    def query(self, sql: str) -> list[tuple]:
        """Rows of `sql`, through a clickhouse-connect HTTP client of this server."""
        client = clickhouse_connect.get_client(dsn=self.dsn, autogenerate_session_id=False)
        try:
            return client.query(sql).result_rows
        finally:
            client.close()

    def stored(self) -> dict[str, int]:
        """Rows per TraceId in llmloop.spans after FINAL (every test span has its own trace id)."""
        return dict(self.query("SELECT TraceId, count() FROM llmloop.spans FINAL GROUP BY TraceId"))

    def wait_stored(self, expected: set[str], timeout: float = 40) -> dict[str, int]:
        """Poll until at least the `expected` trace ids are stored; the rows per trace id then."""
        deadline = time.monotonic() + timeout
        while not expected <= (stored := self.stored()).keys() and time.monotonic() < deadline:
            time.sleep(0.2)
        return stored


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChServer]:
    server = ChServer(tmp_path / "chserver").start()
    yield server
    if server.process and server.process.poll() is None:
        server.kill()


def outage_collector(new_collector: Callable[..., Collector], store: ChServer, spool: Path) -> Collector:
    """A collector on the HTTP store (the later --store wins) with a small spool of its own."""
    return new_collector("--store", store.dsn, "--spool-dir", str(spool), "--spool-max-mb", str(SPOOL_MB))


def export(collector: Collector, count: int = SPANS_PER_EXPORT) -> tuple[int, dict, bytes, list[str]]:
    """One OTLP/HTTP export of `count` fresh spans: status, headers, body, and the spans' trace ids."""
    spans = [new_span(name="x" * 200) for _ in range(count)]
    status, headers, body = post(f"{collector.http_url}/v1/traces", span_request(*spans).SerializeToString())
    return status, headers, body, [span["trace_id"].hex() for span in spans]


def grpc_export(collector: Collector) -> tuple[grpc.RpcError | None, list[str]]:
    """One OTLP/gRPC export: the error (None on success) and the spans' trace ids."""
    spans = [new_span(name="x" * 200) for _ in range(SPANS_PER_EXPORT)]
    ids = [span["trace_id"].hex() for span in spans]
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                   request_serializer=trace_service_pb2.ExportTraceServiceRequest.SerializeToString,
                                   response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        try:
            call(span_request(*spans), timeout=10)
        except grpc.RpcError as exc:
            return exc, ids
    return None, ids


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def writer_log(collector: Collector) -> str:
    """The writer's log lines, without the error details (which carry the whole insert URL)."""
    return "\n".join(line[:200] for line in collector.logs().splitlines() if "llmloop.writer" in line)


def spool_bytes(spool: Path) -> int:
    return sum(path.stat().st_size for path in spool.glob("*/*") if path.suffix in (".otlp", ".open"))


def fill_spool(collector: Collector, acked: list[str], count: int = SPANS_PER_EXPORT) -> list[int]:
    """Export until the spool is full (503); statuses seen, trace ids of acknowledged spans into `acked`."""
    statuses: list[int] = []
    while 503 not in statuses:
        assert len(statuses) < 500, f"spool never filled: {statuses[-5:]}"
        status, _, _, ids = export(collector, count)
        statuses.append(status)
        if status == 200:
            acked.extend(ids)
    return statuses


class Sender(threading.Thread):
    """Exports back to back until stopped, recording every status and the acknowledged trace ids."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(daemon=True)
        self.collector = collector
        self.statuses: list[int] = []
        self.acked: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            status, _, _, ids = export(self.collector)
            self.statuses.append(status)
            if status == 200:
                self.acked.extend(ids)
            self.stopped.wait(0.02 if status == 200 else 0.1)  # a steady load: the spool fills in ~2 s


def assert_stored_once(stored: dict[str, int], acked: list[str]) -> None:
    """Every acknowledged span is stored once; nothing else (a refused export) is."""
    missing = set(acked) - stored.keys()
    assert not missing, f"{len(missing)} of {len(set(acked))} acknowledged spans lost"
    assert stored.keys() == set(acked), f"{len(stored.keys() - set(acked))} spans stored that were refused"
    assert set(stored.values()) == {1}, "spans stored more than once (after FINAL)"


def test_store_killed_under_load_spools_refuses_retryably_and_drains(
        store: ChServer, new_collector: Callable[..., Collector], tmp_path: Path) -> None:
    """SIGKILL the store mid-load: 200s from the spool, then 503 / UNAVAILABLE with a delay, then a drain."""
    spool = tmp_path / "spool"
    collector = outage_collector(new_collector, store, spool)
    acked: list[str] = []
    for _ in range(3):
        status, _, _, ids = export(collector)
        assert status == 200
        acked += ids
    error, ids = grpc_export(collector)
    assert error is None
    acked += ids
    assert_stored_once(store.wait_stored(set(acked)), acked)

    # Kill the store while a client keeps exporting: the spool takes the load, then refuses retryably.
    sender = Sender(collector)
    sender.start()
    wait_for(lambda: len(sender.acked) >= 10 * SPANS_PER_EXPORT, 20, "exports before the kill")
    store.kill()
    killed_at = len(sender.statuses)
    wait_for(lambda: 503 in sender.statuses, 30, "the spool to fill")
    sender.stopped.set()
    sender.join(30)
    assert set(sender.statuses) == {200, 503}, f"unexpected statuses: {set(sender.statuses)}"
    assert sender.statuses[killed_at:].count(200) >= 10, "exports not acknowledged while the store was down"
    wait_for(lambda: RETRIED.search(collector.logs()), 10, "the writers to retry")
    assert collector.process.poll() is None
    assert spool_bytes(spool) <= SPOOL_MB * 1024 * 1024

    status, headers, body, _ = export(collector)
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert status_pb2.Status.FromString(body).code == code_pb2.UNAVAILABLE
    error, _ = grpc_export(collector)
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    retry_info = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(retry_info)
    assert retry_info.retry_delay.seconds >= 1

    # The store returns: the spool drains into it, nothing acknowledged is lost or doubled.
    store.start()
    acked += sender.acked
    assert_stored_once(store.wait_stored(set(acked)), acked)
    wait_for(lambda: spool_bytes(spool) == 0, 20, "the spool to drain")
    status, _, _, ids = export(collector)
    assert status == 200
    assert collector.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{ids[0]}'", 1)
    assert collector.process.poll() is None


def test_shutdown_while_store_down_keeps_the_spool_for_the_next_start(
        store: ChServer, new_collector: Callable[..., Collector], tmp_path: Path) -> None:
    """SIGTERM with the store down: the collector exits promptly; the next one replays the spool."""
    spool = tmp_path / "spool"
    first = outage_collector(new_collector, store, spool)
    store.kill()
    acked: list[str] = []
    for _ in range(3):
        status, _, _, ids = export(first)
        assert status == 200
        acked += ids
    wait_for(lambda: RETRIED.search(first.logs()), 10, "the writers to retry")
    started = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - started < 10, first.logs()
    assert spool_bytes(spool) > 0
    store.start()
    outage_collector(new_collector, store, spool)
    assert_stored_once(store.wait_stored(set(acked)), acked)
    wait_for(lambda: spool_bytes(spool) == 0, 20, "the spool to drain")


class RecordingExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP exporter, recording what each export call returned."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.results: list[SpanExportResult] = []

    def export(self, spans: list[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.results.append(result)
        return result


def test_sdk_exporter_retries_through_full_spool_until_store_returns(
        store: ChServer, new_collector: Callable[..., Collector], tmp_path: Path) -> None:
    """The OTel SDK's own retry loop (honouring Retry-After) rides out a full spool; nothing is lost.

    Exports of 500 spans (~130 KB), one per segment: the drain frees room after a few inserts whatever
    the writer's strategy for segments held through the outage (see the whole-segment test below).
    """
    collector = new_collector("--store", store.dsn, "--spool-dir", str(tmp_path / "spool"),
                              "--spool-max-mb", str(SPOOL_MB), "--batch-spans", "500")
    store.kill()
    acked: list[str] = []
    assert set(fill_spool(collector, acked, count=500)) == {200, 503}

    statuses: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: statuses.append(response.status_code))
    exporter = RecordingExporter(endpoint=f"{collector.http_url}/v1/traces", timeout=40, session=session)
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-outage"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = provider.get_tracer("llmloop.tests")
    sdk_ids = []
    for i in range(20):  # ~150 KB in one export: more than the full spool has room for
        with tracer.start_as_current_span(f"chat {i}", attributes={"gen_ai.input.messages": "m" * 7500}) as span:
            sdk_ids.append(f"{span.get_span_context().trace_id:032x}")
    flusher = threading.Thread(target=provider.force_flush, daemon=True)
    flusher.start()
    wait_for(lambda: statuses, 10, "the exporter's first attempt")
    assert statuses[0] == 503
    store.start()  # within the exporter's retries (Retry-After: 2 s, 6 attempts, 40 s timeout)
    flusher.join(45)
    assert exporter.results == [SpanExportResult.SUCCESS], f"exporter saw {statuses}\n{writer_log(collector)}"
    assert statuses[-1] == 200 and set(statuses) == {200, 503}
    provider.shutdown()
    assert_stored_once(store.wait_stored(set(acked + sdk_ids)), acked + sdk_ids)


def test_store_back_after_outage_gets_whole_segment_inserts(
        store: ChServer, new_collector: Callable[..., Collector], tmp_path: Path) -> None:
    """A segment held through an outage goes into the returning store as one INSERT, not one per request.

    One INSERT per request means one part per request in every target table and a drain taking as
    many round trips as the segment holds requests, while the segments queued behind it wait.
    """
    spool = tmp_path / "spool"
    collector = new_collector("--store", store.dsn, "--spool-dir", str(spool), "--flush-interval", "10",
                              "--batch-spans", str(5 * SPANS_PER_EXPORT))
    store.kill()
    acked: list[str] = []
    for _ in range(5):  # one segment of five requests
        status, _, _, ids = export(collector)
        assert status == 200
        acked += ids
    wait_for(lambda: len(RETRIED.findall(collector.logs())) >= 4, 10, "an outage of four failed inserts")
    store.start()
    wait_for(lambda: spool_bytes(spool) == 0, 30, "the segment to leave the spool")
    assert_stored_once(store.stored(), acked)
    assert store.inserts() == 1, f"{store.inserts()} INSERTs for one segment\n{writer_log(collector)}"


def test_transient_store_errors_do_not_quarantine_acknowledged_requests(
        store: ChServer, new_collector: Callable[..., Collector], tmp_path: Path) -> None:
    """A store refusing inserts for a while (TOO_MANY_PARTS) is not rejecting the data: keep retrying.

    Four exports make one segment; the store refuses the next four INSERTs, i.e. the segment three
    times (after which the writer tries it request by request) and then its first request.
    """
    spool = tmp_path / "spool"
    collector = new_collector("--store", store.dsn, "--spool-dir", str(spool), "--flush-interval", "10",
                              "--batch-spans", str(4 * SPANS_PER_EXPORT))
    store.fail_inserts(4, code=252)
    acked: list[str] = []
    for _ in range(4):
        status, _, _, ids = export(collector)
        assert status == 200
        acked += ids
    wait_for(lambda: spool_bytes(spool) == 0, 30, "the segment to leave the spool")
    rejected = spool / "traces" / "rejected"
    assert not rejected.exists(), f"quarantined: {sorted(p.name for p in rejected.iterdir())}\n{writer_log(collector)}"
    assert_stored_once(store.stored(), acked)


@pytest.mark.parametrize("lost_answers", [2, 3])
def test_insert_committed_but_unanswered_is_stored_once(
        store: ChServer, new_collector: Callable[..., Collector], tmp_path: Path, lost_answers: int) -> None:
    """The store runs an insert but its answer is lost, `lost_answers` times: the retries must deduplicate.

    Logs land in a plain MergeTree, where a second copy stays visible (no FINAL to hide it).
    """
    spool = tmp_path / "spool"
    collector = new_collector("--store", store.dsn, "--spool-dir", str(spool))
    store.fail_inserts(lost_answers, code=209, commit=True)  # SOCKET_TIMEOUT, after the data went in
    request = logs_service_pb2.ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for _ in range(5):
        scope.log_records.add(time_unix_nano=1_790_000_000_000_000_000, trace_id=os.urandom(16),
                              span_id=os.urandom(8), body={"string_value": "hello"})
    assert post(f"{collector.http_url}/v1/logs", request.SerializeToString())[0] == 200
    wait_for(lambda: spool_bytes(spool) == 0, 30, "the segment to leave the spool")
    count, unique = store.query("SELECT count(), uniqExact(TraceId) FROM llmloop.logs")[0]
    assert (count, unique) == (5, 5), writer_log(collector)
