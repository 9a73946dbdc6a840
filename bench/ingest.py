"""Ingest benchmark: OTLP spans/s through `llmloop serve`, end to end, load generator included.

Run it from the repository's virtualenv (the `collector` extra installed):

    python bench/ingest.py [--spans N] [--clients K] [--protocol http|grpc|both] [--rounds R]
                           [--spans-per-request M] [--collector-args "--batch-spans 100000 ..."]

It starts `llmloop serve` on free ports with a fresh temporary embedded (chDB) store, waits until
the OTLP ports accept and the SQL endpoint answers `SELECT 1`, then, per protocol (`both`: HTTP
first, then gRPC against the same collector, each sending `--spans` spans):

1. K client processes each build and serialize their share of GenAI-shaped
   `ExportTraceServiceRequest`s (~30 attributes per span, like an instrumented chat call) and open
   their connection; none of this is timed.
2. On a common start signal they send the pre-serialized bytes: OTLP/HTTP as keep-alive
   `http.client` POSTs (`application/x-protobuf`), OTLP/gRPC as raw-bytes unary calls to
   `TraceService/Export`. 503 / UNAVAILABLE (backpressure) is retried after Retry-After /
   RetryInfo (1 s when absent) and counted.
3. Once every request is acknowledged (no span can be stored before), the bench polls
   `SELECT count() FROM llmloop.spans` on the SQL endpoint every 0.1 s until every span is queryable.
   (Until session 10 it polled every 0.2 s from the start: ~25 queries per phase, ~0.2 s of the
   collector's CPU, taken while it was receiving.)

Figures per protocol: send-only spans/s (start until the last request is acknowledged),
end-to-end spans/s (start until all spans are queryable; 0.1 s poll resolution), the collector's
peak RSS (VmHWM, reset per phase through /proc/PID/clear_refs when allowed), CPU seconds and minor
page faults per span (/proc/PID/stat) against the clients' CPU seconds and everything else the machine ran meanwhile
(/proc/stat: other work skews the figures), the collector's CPU split by thread name, and
a comparison with the 50,000 spans/s end-to-end target. A bench, so it exits 0 whether or not the
target is met; it exits 2 with the collector's log when the collector does not start.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import queue
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_SPANS_PER_S = 50_000
GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
POLL_S = 0.1
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- load: GenAI-shaped spans ------------------------------------------------------------------

_CONFIGS = [  # (provider, request model, response model, config id, rollout arm, server address)
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "support-triage@2026-06-03.1", "current",
     "api.anthropic.com"),
    ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", "support-triage@2026-06-10.2", "canary",
     "api.anthropic.com"),
    ("openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "summarize@2026-05-28.3", "current", "api.openai.com"),
    ("openai", "gpt-4.1", "gpt-4.1-2025-04-14", "summarize@2026-06-11.1", "canary", "api.openai.com"),
]
_FINISH_REASONS = [["end_turn"], ["end_turn"], ["end_turn"], ["max_tokens"], ["tool_use"], ["stop_sequence"]]


def _set(kv: Any, value: Any) -> None:
    """Set an OTLP AnyValue from a Python value (str, bool, int, float, list of str)."""
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, list):
        for item in value:
            kv.value.array_value.values.add().string_value = item
    else:
        kv.value.string_value = value


def _template(index: int) -> tuple[Any, dict[str, int]]:
    """One span per configuration, plus the attribute positions the builder varies per span."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    provider, model, response_model, config_id, arm, address = _CONFIGS[index]
    span = trace_pb2.Span(name=f"chat {model}", kind=trace_pb2.Span.SPAN_KIND_CLIENT)
    span.status.code = trace_pb2.Status.STATUS_CODE_UNSET
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": response_model,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.top_p": 0.95,
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.response.id": "",
        "gen_ai.response.time_to_first_chunk": 0.0,
        "gen_ai.conversation.id": "",
        "gen_ai.output.type": "text",
        "llmloop.config.id": config_id,
        "llmloop.config.fingerprint": f"sha256:{index:02d}" + "9f86d081884c7d659a2feaa0c55ad015" * 2,
        "llmloop.rollout.name": config_id.split("@")[0] + "-rollout",
        "llmloop.rollout.arm": arm,
        "server.address": address,
        "server.port": 443,
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "url.path": "/v1/messages" if provider == "anthropic" else "/v1/chat/completions",
        "app.feature": config_id.split("@")[0],
        "app.tenant.id": "",
        "app.user.tier": "pro",
        "app.request.streaming": True,
    }
    positions = {}
    for key, value in attributes.items():
        kv = span.attributes.add(key=key)
        _set(kv, value)
        positions[key] = len(span.attributes) - 1
    return span, positions


def _resource(request: Any, client: int) -> Any:
    """A resource + scope like an instrumented app's, returning the scope's span list."""
    resource_spans = request.resource_spans.add()
    for key, value in {
        "service.name": "support-bot",
        "service.version": "2026.06.3",
        "service.instance.id": f"support-bot-{client}",
        "deployment.environment.name": "production",
        "host.name": f"web-{client}.prod.internal",
        "process.pid": 4242 + client,
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.45.2",
    }.items():
        _set(resource_spans.resource.attributes.add(key=key), value)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "llmloop.instrumentation.anthropic"
    scope_spans.scope.version = "0.1.0"
    return scope_spans.spans


def build_requests(sizes: list[int], seed: int, client: int) -> list[tuple[bytes, int]]:
    """Serialized ExportTraceServiceRequests holding `sizes[i]` spans each: (bytes, span count)."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    rng = random.Random(seed)
    templates = [_template(i) for i in range(len(_CONFIGS))]
    now_ns = time.time_ns()
    out = []
    for size in sizes:
        request = trace_service_pb2.ExportTraceServiceRequest()
        spans = _resource(request, client)
        for _ in range(size):
            template, pos = templates[rng.randrange(len(templates))]
            span = spans.add()
            span.CopyFrom(template)
            span.trace_id = rng.randbytes(16)
            span.span_id = rng.randbytes(8)
            duration = rng.randint(300_000_000, 8_000_000_000)
            span.start_time_unix_nano = now_ns - rng.randint(0, 60_000_000_000) - duration
            span.end_time_unix_nano = span.start_time_unix_nano + duration
            attrs = span.attributes
            attrs[pos["gen_ai.usage.input_tokens"]].value.int_value = rng.randint(200, 6000)
            attrs[pos["gen_ai.usage.output_tokens"]].value.int_value = rng.randint(10, 1024)
            attrs[pos["gen_ai.usage.cache_read.input_tokens"]].value.int_value = rng.choice((0, 0, 1024, 2048))
            attrs[pos["gen_ai.response.id"]].value.string_value = f"msg_{rng.randbytes(12).hex()}"
            attrs[pos["gen_ai.response.time_to_first_chunk"]].value.double_value = rng.uniform(0.2, 2.5)
            attrs[pos["gen_ai.conversation.id"]].value.string_value = f"conv_{rng.randbytes(6).hex()}"
            attrs[pos["app.tenant.id"]].value.string_value = f"tenant-{rng.randrange(500)}"
            reasons = attrs[pos["gen_ai.response.finish_reasons"]].value.array_value.values
            reasons[0].string_value = rng.choice(_FINISH_REASONS)[0]
        out.append((request.SerializeToString(), size))
    return out


# --- clients (separate processes) --------------------------------------------------------------


class _HttpSender:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Content-Type": "application/x-protobuf"}
        self.reconnects = 0

    def connect(self) -> None:
        self.conn.connect()

    def send(self, payload: bytes) -> tuple[int, int]:
        """POST until accepted; return (backpressure retries, rejected spans)."""
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        retries = broken = 0
        while True:
            try:
                self.conn.request("POST", "/v1/traces", body=payload, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.HTTPException, ConnectionError) as exc:  # e.g. keep-alive closed
                self.conn.close()
                self.reconnects += 1
                broken += 1
                if broken > 5:
                    raise RuntimeError(f"HTTP connection keeps failing: {exc!r}") from exc
                continue
            if response.status == 200:
                reply = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
                return retries, reply.partial_success.rejected_spans
            if response.status in (429, 503):
                retries += 1
                time.sleep(_seconds(response.getheader("Retry-After")))
                continue
            raise RuntimeError(f"HTTP {response.status}: {body[:300]!r}")

    def close(self) -> None:
        self.conn.close()


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0


class _GrpcSender:
    def __init__(self, port: int) -> None:
        import grpc

        self.grpc = grpc
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self.export = self.channel.unary_unary(GRPC_METHOD, request_serializer=None, response_deserializer=None)
        self.reconnects = 0

    def connect(self) -> None:
        self.grpc.channel_ready_future(self.channel).result(timeout=30)

    def send(self, payload: bytes) -> tuple[int, int]:
        """Export until accepted; return (backpressure retries, rejected spans)."""
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        retries = 0
        while True:
            try:
                body = self.export(payload, timeout=120)
            except self.grpc.RpcError as exc:
                if exc.code() in (self.grpc.StatusCode.UNAVAILABLE, self.grpc.StatusCode.RESOURCE_EXHAUSTED) \
                        and retries < 1000:
                    retries += 1
                    time.sleep(_retry_delay(exc))
                    continue
                raise RuntimeError(f"gRPC {exc.code().name}: {exc.details()}") from None
            reply = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
            return retries, reply.partial_success.rejected_spans

    def close(self) -> None:
        self.channel.close()


def _retry_delay(exc: Any) -> float:
    """google.rpc.RetryInfo from the trailing grpc-status-details-bin, else 1 s."""
    try:
        from google.rpc import error_details_pb2, status_pb2

        for key, value in exc.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                for detail in status_pb2.Status.FromString(value).details:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:  # a malformed detail only loses the hint
        pass
    return 1.0


def client_main(client: int, protocol: str, port: int, sizes: list[int], seed: int,
                go: Any, events: Any) -> None:
    """One load-generator process: build, connect, report ready, wait for `go`, send, report."""
    try:
        started = time.perf_counter()
        payloads = build_requests(sizes, seed, client)
        sender = _HttpSender(port) if protocol == "http" else _GrpcSender(port)
        sender.connect()
        events.put(("ready", client, {"build_s": time.perf_counter() - started,
                                      "bytes": sum(len(p) for p, _ in payloads)}))
        go.wait()
        cpu0 = time.process_time()
        first = time.monotonic()
        retries = rejected = 0
        for payload, _ in payloads:
            r, rej = sender.send(payload)
            retries += r
            rejected += rej
        last = time.monotonic()
        cpu = time.process_time() - cpu0
        sender.close()
        events.put(("done", client, {"first": first, "last": last, "cpu_s": cpu, "retries": retries,
                                     "rejected": rejected, "requests": len(payloads),
                                     "reconnects": sender.reconnects}))
    except BaseException:
        events.put(("error", client, traceback.format_exc()))


# --- the collector -----------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class CollectorFailed(RuntimeError):
    pass


@dataclass
class Collector:
    store: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.grpc_port, self.http_port, self.sql_port = free_ports(3)

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("llmloop")
        exe = [str(script)] if script.exists() else [shutil.which("llmloop") or ""]
        if not exe[0]:
            exe = [sys.executable, "-c", "from llmloop.cli import main; main()"]
        return [*exe, "serve", "--store", f"chdb://{self.store}", "--host", "127.0.0.1",
                "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
                "--sql-port", str(self.sql_port), *self.extra_args]

    def start(self, timeout: float) -> float:
        """Start and wait until ready; return the start-up seconds. CollectorFailed with the log."""
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        last_error = ""
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise CollectorFailed(f"the collector exited with code {self.process.returncode} during start-up")
            try:
                for port in (self.grpc_port, self.http_port):
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pass
                if self.sql("SELECT 1").strip() == "1":
                    return time.monotonic() - started
            except (OSError, urllib.error.URLError) as exc:
                last_error = repr(exc)
            time.sleep(0.2)
        raise CollectorFailed(f"the collector was not ready after {timeout:.0f} s (last probe: {last_error})")

    def sql(self, query: str, timeout: float = 30) -> str:
        url = f"http://127.0.0.1:{self.sql_port}/?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()

    def count(self) -> int:
        return int(self.sql("SELECT count() FROM llmloop.spans").strip())

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_s(self) -> float:
        return _stat_cpu(Path(f"/proc/{self.pid}/stat"))

    def minor_faults(self) -> int:
        return _stat_fields(Path(f"/proc/{self.pid}/stat"))[7]  # minflt, field 10 of stat(5)

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM (Linux: 5 > /proc/PID/clear_refs); False when not allowed."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def memory_mib(self) -> tuple[float, float]:
        """(VmHWM, VmRSS) in MiB."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) / 1024
        return values.get("VmHWM", 0.0), values.get("VmRSS", 0.0)

    def threads_cpu(self) -> dict[int, tuple[str, float]]:
        """tid -> (thread name, CPU seconds) for the collector's live threads."""
        out = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                comm = (task / "comm").read_text().strip()
                out[int(task.name)] = (comm, _stat_cpu(task / "stat"))
            except (OSError, ValueError):
                continue
        return out

    def stop(self, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"collector did not stop {timeout:.0f} s after SIGTERM; killing it", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _stat_fields(path: Path) -> list[int]:
    """The numeric fields of a /proc/.../stat file from field 3 (state) on; state itself reads as 0."""
    return [int(x) if x.lstrip("-").isdigit() else 0 for x in path.read_text().rpartition(")")[2].split()]


def _stat_cpu(path: Path) -> float:
    """utime + stime of a /proc/.../stat file, in seconds."""
    fields = _stat_fields(path)
    return (fields[11] + fields[12]) / CLK_TCK  # fields 14 and 15 of stat(5)


def _machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def _thread_groups(before: dict[int, tuple[str, float]],
                   after: dict[int, tuple[str, float]]) -> list[tuple[str, float]]:
    """CPU seconds per thread-name group (digits stripped) between two snapshots, largest first.

    Python threads (receivers, writers, and chDB calls made from them) keep the process's name; the
    store's native threads have their own (ClickHouse pools, "Unknown" for unnamed ones), as do gRPC's.
    Threads that ended between the snapshots are missing.
    """
    groups: dict[str, float] = {}
    main_comm = after[min(after)][0] if after else ""  # the main thread's; Python threads inherit it
    for tid, (comm, cpu) in after.items():
        used = cpu - before.get(tid, (comm, 0.0))[1]
        name = "python threads" if comm == main_comm else re.sub(r"[\d_\-.]+$", "", comm) or comm
        groups[name] = groups.get(name, 0.0) + used
    return sorted(((n, s) for n, s in groups.items() if s >= 0.005), key=lambda item: -item[1])


# --- one measurement ---------------------------------------------------------------------------


@dataclass
class Result:
    protocol: str
    spans: int
    requests: int = 0
    retries: int = 0
    rejected: int = 0
    reconnects: int = 0
    payload_bytes: int = 0
    build_s: float = 0.0
    send_s: float = float("nan")
    e2e_s: float = float("nan")
    complete: bool = False
    stored: int = 0
    peak_rss_mib: float = float("nan")
    rss_mib: float = float("nan")
    peak_rss_is_phase: bool = True
    collector_cpu_s: float = float("nan")
    minor_faults: int = -1
    clients_cpu_s: float = float("nan")
    machine_busy_s: float = float("nan")
    thread_cpu: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def send_rate(self) -> float:
        return self.spans / self.send_s if self.send_s > 0 else float("nan")

    @property
    def e2e_rate(self) -> float:
        return self.spans / self.e2e_s if self.complete and self.e2e_s > 0 else float("nan")


def split_sizes(spans: int, per_request: int, clients: int) -> list[list[int]]:
    """Request sizes (spans per request) for each client: round-robin over all requests."""
    sizes = [per_request] * (spans // per_request) + ([spans % per_request] if spans % per_request else [])
    return [sizes[i::clients] for i in range(clients)]


def measure(collector: Collector, protocol: str, args: argparse.Namespace, seed: int) -> Result:
    result = Result(protocol, args.spans)
    ctx = mp.get_context("spawn")  # no inherited grpc state, no copied parent heap
    go = ctx.Event()
    events = ctx.Queue()
    port = collector.http_port if protocol == "http" else collector.grpc_port
    shares = [share for share in split_sizes(args.spans, args.spans_per_request, args.clients) if share]
    procs = [ctx.Process(target=client_main, args=(i, protocol, port, share, seed * 1000 + i, go, events),
                         name=f"bench-{protocol}-{i}", daemon=True)
             for i, share in enumerate(shares)]
    for proc in procs:
        proc.start()
    try:
        ready = 0
        deadline = time.monotonic() + args.build_timeout
        while ready < len(procs):
            try:
                kind, client, info = events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                result.errors.append(f"clients not ready after {args.build_timeout:.0f} s")
                return result
            if kind == "error":
                result.errors.append(f"client {client}: {info}")
                return result
            ready += 1
            result.build_s = max(result.build_s, info["build_s"])
            result.payload_bytes += info["bytes"]

        baseline = collector.count()
        expected = baseline + args.spans
        peak_reset = collector.reset_peak_rss()
        cpu0, faults0 = collector.cpu_s(), collector.minor_faults()
        busy0 = _machine_busy_s()
        threads0 = collector.threads_cpu()
        t0 = time.monotonic()
        go.set()

        done: dict[int, dict] = {}
        stored = baseline
        next_poll = t0 + POLL_S
        give_up = None
        while True:
            try:
                kind, client, info = events.get(timeout=max(0.0, next_poll - time.monotonic()))
                if kind == "error":
                    result.errors.append(f"client {client}: {info}")
                    done[client] = {}
                else:
                    done[client] = info
                if len(done) == len(procs):
                    next_poll = time.monotonic()  # poll at once
                    give_up = next_poll + args.timeout
                continue
            except queue.Empty:
                pass
            next_poll = time.monotonic() + POLL_S
            now = time.monotonic()
            if len(done) == len(procs):  # before the last acknowledgement nothing is complete: no queries
                try:
                    stored = collector.count()
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    result.errors.append(f"count query failed: {exc!r}")
                if stored >= expected:
                    result.e2e_s = now - t0  # all spans queryable
                    result.complete = True
                    break
            if collector.process is not None and collector.process.poll() is not None:
                result.errors.append(f"collector exited with code {collector.process.returncode}")
                break
            if give_up is not None and now > give_up:
                result.errors.append(f"only {stored - baseline} of {args.spans} spans queryable "
                                     f"{args.timeout:.0f} s after the last acknowledgement")
                break
            if give_up is None and now - t0 > args.timeout * 4:
                result.errors.append("clients still sending after 4x --timeout; giving up")
                break

        result.stored = stored - baseline
        if collector.process is not None and collector.process.poll() is None:
            result.collector_cpu_s = collector.cpu_s() - cpu0
            result.minor_faults = collector.minor_faults() - faults0
            result.machine_busy_s = _machine_busy_s() - busy0
            result.thread_cpu = _thread_groups(threads0, collector.threads_cpu())
            result.peak_rss_mib, result.rss_mib = collector.memory_mib()
            result.peak_rss_is_phase = peak_reset
        finished = [info for info in done.values() if info]
        if finished and len(finished) == len(procs):
            result.send_s = max(info["last"] for info in finished) - t0
        result.requests = sum(info.get("requests", 0) for info in finished)
        result.retries = sum(info.get("retries", 0) for info in finished)
        result.rejected = sum(info.get("rejected", 0) for info in finished)
        result.reconnects = sum(info.get("reconnects", 0) for info in finished)
        result.clients_cpu_s = sum(info.get("cpu_s", 0.0) for info in finished)
        return result
    finally:
        go.set()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


# --- report ------------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def report(results: list[Result], args: argparse.Namespace) -> None:
    rows: list[tuple[str, list[str]]] = [
        ("spans", [f"{r.spans:,}" for r in results]),
        ("requests", [f"{r.requests:,}" for r in results]),
        ("payload MiB (B/span)", [f"{r.payload_bytes / 2**20:,.1f} ({r.payload_bytes / max(1, r.spans):,.0f})"
                                  for r in results]),
        ("retries (503/UNAVAILABLE)", [f"{r.retries:,}" for r in results]),
        ("rejected spans", [f"{r.rejected:,}" for r in results]),
        ("queryable spans", [f"{r.stored:,}" for r in results]),
        ("send-only s", [_fmt(r.send_s, 2) for r in results]),
        ("end-to-end s", [_fmt(r.e2e_s, 2) for r in results]),
        ("send-only spans/s", [_fmt(r.send_rate) for r in results]),
        ("end-to-end spans/s", [_fmt(r.e2e_rate) for r in results]),
        ("collector peak RSS MiB", [_fmt(r.peak_rss_mib) + ("" if r.peak_rss_is_phase else " (process)")
                                    for r in results]),
        ("collector RSS at end MiB", [_fmt(r.rss_mib) for r in results]),
        ("collector CPU s (cores)", [f"{_fmt(r.collector_cpu_s, 2)} ({_fmt(r.collector_cpu_s / r.e2e_s, 2)})"
                                     if r.complete else _fmt(r.collector_cpu_s, 2) for r in results]),
        ("collector page faults/span", [_fmt(r.minor_faults / r.spans, 2) if r.minor_faults >= 0 else "-"
                                        for r in results]),
        ("clients CPU s", [_fmt(r.clients_cpu_s, 2) for r in results]),
        ("other processes CPU s", [_fmt(r.machine_busy_s - r.collector_cpu_s - r.clients_cpu_s, 2)
                                   for r in results]),
    ]
    width = max(len(name) for name, _ in rows)
    col = max(14, *(len(v) for _, values in rows for v in values)) + 2
    print()
    print(" " * width + "".join(r.protocol.rjust(col) for r in results))
    for name, values in rows:
        print(name.ljust(width) + "".join(v.rjust(col) for v in values))
    print()
    for r in results:
        top = ", ".join(f"{name} {secs:.2f}" for name, secs in r.thread_cpu[:6])
        print(f"{r.protocol}: collector CPU s by thread: {top or '-'}")
        for error in r.errors:
            print(f"{r.protocol}: ERROR {error.strip()}")
    verdicts = []
    for r in results:
        rate = r.e2e_rate
        if rate != rate:
            verdicts.append(f"{r.protocol} incomplete")
        else:
            verdicts.append(f"{r.protocol} {rate:,.0f} = {rate / TARGET_SPANS_PER_S:.2f}x "
                            f"{'MET' if rate >= TARGET_SPANS_PER_S else 'MISSED'}")
    print(f"target {TARGET_SPANS_PER_S:,} spans/s end to end ({os.cpu_count()} CPUs, {args.clients} clients): "
          + "; ".join(verdicts))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000, help="spans per protocol (default 200000)")
    parser.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--protocol", choices=("http", "grpc", "both"), default="both")
    parser.add_argument("--spans-per-request", type=int, default=1000, help="spans per export request")
    parser.add_argument("--collector-args", default="",
                        help='extra `llmloop serve` flags, e.g. "--batch-spans 100000 --insert-workers 1"')
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for spans to become queryable after the last ack (default 60)")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="collector start-up limit in seconds")
    parser.add_argument("--build-timeout", type=float, default=300.0, help="client build/connect limit in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store and collector log")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole bench, each round on a fresh collector and store, and end with each "
                             "protocol's median end-to-end rate (this VM's speed drifts by ±25 %%; default 1)")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):  # "--collector-args --no-fsync": the value starts with a dash
        if arg == "--collector-args":
            argv[i:i + 2] = [f"--collector-args={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    if min(args.spans, args.clients, args.spans_per_request, args.rounds) < 1:
        parser.error("--spans, --clients, --spans-per-request and --rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rates: dict[str, list[float]] = {}
    for n in range(args.rounds):
        if args.rounds > 1:
            print(f"\n=== round {n + 1} of {args.rounds} ===", flush=True)
        try:
            exit_code, results = run_round(args)
        except KeyboardInterrupt:
            return 130
        if exit_code:
            return exit_code
        for result in results:
            rates.setdefault(result.protocol, []).append(result.e2e_rate)
    if args.rounds > 1:
        print(f"\n{args.rounds} rounds, end-to-end spans/s against the {TARGET_SPANS_PER_S:,} target:")
        for protocol, values in rates.items():
            done = [rate for rate in values if rate == rate]  # a run that did not store every span has no rate
            met = sum(rate >= TARGET_SPANS_PER_S for rate in done)
            print(f"{protocol}: median {_fmt(statistics.median(done) if done else float('nan'))} (runs: "
                  f"{', '.join(_fmt(rate) for rate in values)}; {met} of {len(values)} at or above the target)")
    return 0


def run_round(args: argparse.Namespace) -> tuple[int, list[Result]]:
    """One run of the bench on a fresh collector: its exit code and its results, one per protocol."""
    workdir = Path(tempfile.mkdtemp(prefix="llmloop-bench-"))
    collector = Collector(workdir / "store", workdir / "collector.log", shlex.split(args.collector_args))
    protocols = ["http", "grpc"] if args.protocol == "both" else [args.protocol]
    print(f"llmloop ingest bench: {args.spans:,} spans per protocol ({', '.join(protocols)}), "
          f"{args.spans_per_request} spans/request, {args.clients} clients, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    print("collector: " + shlex.join(collector.command()))
    results: list[Result] = []
    exit_code = 0
    try:
        try:
            startup = collector.start(args.start_timeout)
        except CollectorFailed as exc:
            print(f"\nERROR: {exc}\n--- collector log ({collector.log_path}) ---\n{collector.log_tail()}\n---",
                  file=sys.stderr)
            exit_code = 2
            return exit_code, results
        print(f"collector ready in {startup:.1f} s (pid {collector.pid}, store {collector.store})")
        for n, protocol in enumerate(protocols):
            result = measure(collector, protocol, args, seed=n + 1)
            results.append(result)
            print(f"{protocol}: built {result.payload_bytes / 2**20:,.1f} MiB in {result.build_s:.1f} s (untimed); "
                  f"send {_fmt(result.send_s, 2)} s, end to end {_fmt(result.e2e_s, 2)} s"
                  + ("" if not result.errors else f", {len(result.errors)} error(s)"), flush=True)
        report(results, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise  # after the cleanup below: no further rounds
    finally:
        code = collector.stop()
        if code not in (None, 0) and exit_code == 0:
            print(f"collector exited with code {code} at shutdown; log tail:\n{collector.log_tail()}",
                  file=sys.stderr)
        elif exit_code == 0 and results:
            print(f"collector stopped cleanly (exit {code})")
        if args.keep or exit_code:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return exit_code, results


if __name__ == "__main__":
    sys.exit(main())
