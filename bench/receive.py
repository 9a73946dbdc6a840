"""The receive path's CPU alone: OTLP requests received, decoded and spooled, with no store behind them.

    python bench/receive.py [--spans 200000] [--clients 2] [--protocol http|grpc|both] [--rounds 3] [--no-fsync]

This process runs the collector's OTLP/HTTP app (uvicorn, httptools, uvloop, as `llmloop serve` does) and its
gRPC server, each feeding a real `Writer` whose spool makes every request durable before it is acknowledged; no
writer thread is started, so nothing is inserted. ingest.py's client processes send its GenAI spans (built before
the clock starts). Per round and protocol it prints this process's CPU (user and system) per span from the start
signal until every request is acknowledged, and, as the baseline, the CPU of `decode` alone over the same
requests in this process: what is left beyond it is HTTP or gRPC, the hand-off to a worker thread, the spool and
the kernel. `ingest.py` reports the same work inside the live collector as part of "python threads", together
with whatever else runs there. A bench: figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ingest  # the bench folder is not a package: found through sys.path


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _receive(port: int, protocol: str, sizes: list[list[int]], seed: int) -> tuple[float, float]:
    """(user, system) CPU seconds of this process while clients send `sizes` to `port`."""
    ctx = mp.get_context("spawn")
    go, events = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=ingest.client_main, args=(i, protocol, port, share, seed * 1000 + i, go, events),
                         daemon=True) for i, share in enumerate(sizes)]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            kind, client, info = events.get(timeout=300)
            if kind == "error":
                raise RuntimeError(f"client {client}: {info}")
        user0, sys0 = _cpu()
        go.set()
        for _ in procs:
            kind, client, info = events.get(timeout=300)
            if kind == "error":
                raise RuntimeError(f"client {client}: {info}")
        user1, sys1 = _cpu()
        return user1 - user0, sys1 - sys0
    finally:
        go.set()
        for proc in procs:
            proc.join(5)


def _decode_only(sizes: list[list[int]], seed: int) -> float:
    """CPU seconds of `decode` over the same requests the clients send."""
    from llmloop.collector.decode import TRACES, decode

    total = 0.0
    for i, share in enumerate(sizes):
        requests = ingest.build_requests(share, seed * 1000 + i, i)
        started = time.process_time()
        for body, _ in requests:
            decode(TRACES, body, False)
        total += time.process_time() - started
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000, help="spans per protocol and round")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--spans-per-request", type=int, default=1000)
    parser.add_argument("--protocol", choices=("http", "grpc", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="spool without fsync")
    args = parser.parse_args()

    import uvicorn
    import uvloop

    from llmloop.collector.decode import LOGS, TRACES
    from llmloop.collector.limits import InflightBudget
    from llmloop.collector.receivers.grpc import create_grpc_server
    from llmloop.collector.receivers.http import create_otlp_app
    from llmloop.collector.writer import Writer

    spool = Path(tempfile.mkdtemp(prefix="llmloop-receive-"))
    try:
        writers = {signal.name: Writer(signal, lambda: None, spool, spool_bytes=1 << 40, fsync=not args.no_fsync)
                   for signal in (TRACES, LOGS)}
        budget = InflightBudget(1 << 30)
        http_port, grpc_port = ingest.free_ports(2)
        server = uvicorn.Server(uvicorn.Config(create_otlp_app(writers, budget), host="127.0.0.1", port=http_port,
                                               log_level="warning", http="httptools", lifespan="off",
                                               access_log=False))
        threading.Thread(target=uvloop.run, args=(server.serve(),), daemon=True).start()
        grpc_server = create_grpc_server(writers, budget, f"127.0.0.1:{grpc_port}")
        grpc_server.start()
        while not server.started:
            time.sleep(0.05)

        protocols = ("http", "grpc") if args.protocol == "both" else (args.protocol,)
        sizes = ingest.split_sizes(args.spans, args.spans_per_request, args.clients)
        decode_us = _decode_only(sizes, 1) / args.spans * 1e6
        print(f"{args.spans:,} spans per round in requests of {args.spans_per_request}, {args.clients} clients, "
              f"spool {'without' if args.no_fsync else 'with'} fsync; decode alone {decode_us:.2f} µs CPU/span")
        totals: dict[str, list[float]] = {protocol: [] for protocol in protocols}
        for round_ in range(args.rounds):
            for protocol in protocols:
                port = http_port if protocol == "http" else grpc_port
                user, system = _receive(port, protocol, sizes, round_ + 1)
                per_span = (user + system) / args.spans * 1e6
                totals[protocol].append(per_span)
                print(f"round {round_ + 1} {protocol:4s}: {per_span:5.2f} µs CPU/span "
                      f"(user {user / args.spans * 1e6:.2f}, system {system / args.spans * 1e6:.2f}) "
                      f"= {per_span / decode_us:.1f}x decode alone", flush=True)
        for protocol, values in totals.items():
            print(f"{protocol}: median {statistics.median(values):.2f} µs CPU/span over {len(values)} rounds")
        server.should_exit = True
        grpc_server.stop(1).wait()
        for writer in writers.values():
            writer.spool.close()
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
