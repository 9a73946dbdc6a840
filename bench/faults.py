"""Collector reliability figures: the cost of durability, kill -9 losses, duplicates, backpressure.

    python bench/faults.py [--spans 200000] [--clients 2]

Prints, per scenario: spans sent / acknowledged / stored / lost (must be 0), duplicates visible to
queries that count once (`FROM llmloop.spans FINAL`; must be 0), the collector's peak RSS, and the
end-to-end ingest rate with the fsync'd spool (the default) against `--no-fsync`, as a ratio.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import Collector, build_requests, measure
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def trace_ids(payload: bytes) -> list[str]:
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(payload)
    return [s.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def post(port: int, payload: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/traces", body=payload, headers={"Content-Type": "application/x-protobuf"})
        return conn.getresponse().status
    finally:
        conn.close()


def present(collector: Collector, ids: list[str], final: bool = True) -> int:
    """How many of `ids` are stored (FINAL: each span once); rows, not distinct ids, without it."""
    total = 0
    for start in range(0, len(ids), 400):
        chunk = ",".join(f"'{i}'" for i in ids[start:start + 400])
        table = "llmloop.spans FINAL" if final else "llmloop.spans"
        total += int(collector.sql(f"SELECT count() FROM {table} WHERE TraceId IN ({chunk})").strip())
    return total


def fresh(root: Path, name: str, *args: str) -> Collector:
    collector = Collector(root / name, root / f"{name}.log", list(args))
    collector.start(60)
    return collector


def wait_stable(collector: Collector, ids: list[str], timeout: float = 120) -> int:
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        now = present(collector, ids)
        if now == last:
            return now
        last = now
        time.sleep(1.5)
    return last


def durability_cost(root: Path, args: argparse.Namespace) -> None:
    rates, rss = {}, {}
    for name, extra in (("durable (fsync)", []), ("plain (--no-fsync)", ["--no-fsync"])):
        collector = fresh(root, name.split()[0], *extra)
        result = measure(collector, "http", args, seed=7)
        collector.stop()
        rates[name], rss[name] = result.e2e_rate, result.peak_rss_mib
        print(f"  {name:20s} {result.stored:>9,} stored  {result.e2e_rate:>9,.0f} spans/s end to end  "
              f"peak RSS {result.peak_rss_mib:,.0f} MiB  retries {result.retries}")
    durable, plain = rates["durable (fsync)"], rates["plain (--no-fsync)"]
    print(f"  cost of safety: durable / plain = {durable / plain:.2f}")


def kill_and_duplicates(root: Path, requests: int) -> None:
    payloads = [payload for payload, _ in build_requests([1000] * requests, seed=11, client=0)]
    collector = fresh(root, "kill9", "--flush-interval", "5")
    acked: list[str] = []
    sent = 0
    stop = threading.Event()

    def sender() -> None:
        nonlocal sent
        for payload in payloads:
            if stop.is_set():
                return
            sent += 1
            try:
                if post(collector.http_port, payload) == 200:
                    acked.extend(trace_ids(payload))
            except OSError:
                return

    thread = threading.Thread(target=sender)
    thread.start()
    while len(acked) < len(payloads) * 1000 // 3 and thread.is_alive():
        time.sleep(0.05)  # kill once about a third is acknowledged: mid-load
    collector.process.send_signal(signal.SIGKILL)
    collector.process.wait(30)
    stop.set()
    thread.join(30)
    replayed = Collector(root / "kill9", root / "kill9-restart.log")
    replayed.start(60)
    stored = wait_stable(replayed, acked)
    # Re-deliver every acknowledged request twice (a client retrying after lost answers).
    for payload in payloads[:len(acked) // 1000]:
        for _ in range(2):
            post(replayed.http_port, payload)
    time.sleep(3)
    rows = present(replayed, acked, final=False)
    once = present(replayed, acked)
    _, peak = replayed.memory_mib()
    replayed.stop()
    print(f"  sent {sent * 1000:,} spans ({sent} requests, the last cut by the kill), acknowledged {len(acked):,}, "
          f"stored after kill -9 + replay {stored:,}, lost {len(acked) - stored:,}")
    print(f"  after 2 more deliveries of each: {rows:,} rows, {once:,} counted once (FINAL), "
          f"duplicates visible to FINAL queries {once - len(acked):,}; restarted collector peak RSS {peak:,.0f} MiB")


def backpressure(root: Path, args: argparse.Namespace) -> None:
    collector = fresh(root, "tight", "--spool-max-mb", "40")
    result = measure(collector, "http", args, seed=13)
    collector.stop()
    print(f"  spool budget 40 MiB: {result.retries} answers 503 + Retry-After (client retried), errors "
          f"{result.errors or 'none'}, {result.stored:,} of {result.spans:,} stored, "
          f"{result.e2e_rate:,.0f} spans/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--kill-requests", type=int, default=200, help="1000-span requests in the kill -9 run")
    args = parser.parse_args()
    args.spans_per_request, args.timeout, args.build_timeout = 1000, 120.0, 120.0
    with tempfile.TemporaryDirectory(prefix="llmloop-faults-") as tmp:
        root = Path(tmp)
        print("durability cost (OTLP/HTTP, same load):")
        durability_cost(root, args)
        print("kill -9 under load, restart, duplicate deliveries:")
        kill_and_duplicates(root, args.kill_requests)
        print("backpressure:")
        backpressure(root, args)


if __name__ == "__main__":
    main()
