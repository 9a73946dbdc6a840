"""Rollout propagation bench: time from a rollout action to every router serving it; `choose` cost.

    python bench/propagation.py [--routers 50] [--processes 4] [--rounds 20] [--poll-wait 30]

Starts `llmloop serve` on free ports with a fresh temporary embedded store, publishes two configs
of one name through `/api/v1/configs`, then starts `--processes` worker processes holding
`--routers` routers between them (each router its own long-poll thread and connection, as in N app
processes). Per round the bench starts a canary at 50% (`POST .../start`; a start stays below 100%),
waits until every router serves it to a key in the canary's half, then rolls back (`POST .../rollback`)
and records, per router, the time from just before the rollback request to the first `choose(key)`
answering "control". Workers check their routers
every millisecond (`time.monotonic`, one system-wide clock on Linux), so figures are within ~1 ms.

Prints the rollback → control latency over all rounds and routers (p50/p95/p99/max against the
p99 ≤ 5 s target; Langfuse's SDK prompt cache refreshes after 60 s), the same for start → canary,
the collector's CPU seconds while the routers only held long polls, and `choose`/`use` cost per
call in one thread (no canary: a state lookup; 5% canary: plus the key hash). A bench: exits 0
whether or not the target is met, 2 with the collector's log when it does not start.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import Collector, CollectorFailed

from llmloop.instrumentation.router import Router, bucket

NAME = "bench-rollout"
CONTROL = {"id": f"{NAME}@1", "provider": "anthropic", "model": "claude-sonnet-4-5-20250929",
           "prompt": {"system": "You triage support tickets."}, "params": {"temperature": 0.2, "max_tokens": 512}}
CANARY = {**CONTROL, "id": f"{NAME}@2", "model": "claude-haiku-4-5-20251001"}
TARGET_P99_S = 5.0
ROUND_TIMEOUT_S = 60.0
START_WEIGHT = 50.0
"""A start stays below 100%; the watched key is one the canary serves at this weight."""
KEY = next(f"user-{i}" for i in range(1000) if bucket(NAME, f"user-{i}") < START_WEIGHT * 100)


def api(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/v1{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def must(result: tuple[int, Any], what: str) -> Any:
    status, payload = result
    if status >= 300:
        raise RuntimeError(f"{what}: HTTP {status} {payload}")
    return payload


# --- worker processes ------------------------------------------------------------------------------

def worker(index: int, url: str, count: int, poll_wait: float, commands: Any, results: Any) -> None:
    """Hold `count` routers; per command ("canary" | "control") report when each first serves that arm."""
    routers = [Router(NAME, url=url, poll_wait=poll_wait, initial_timeout=30) for _ in range(count)]
    for router in routers:
        router.wait_ready(30)
    results.put(("ready", index, None))
    while True:
        want = commands.get()
        if want == "stop":
            break
        results.put(("watching", index, None))
        seen: dict[int, float] = {}
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while len(seen) < count and time.monotonic() < deadline:
            now = time.monotonic()
            for i, router in enumerate(routers):
                if i not in seen and router.choose(KEY).arm == want:
                    seen[i] = now
            time.sleep(0.001)
        results.put(("seen", index, list(seen.values())))
    for router in routers:
        router.close()


class Workers:
    def __init__(self, url: str, routers: int, processes: int, poll_wait: float) -> None:
        ctx = mp.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(processes)]
        shares = [routers // processes + (i < routers % processes) for i in range(processes)]
        self.procs = [ctx.Process(target=worker, args=(i, url, n, poll_wait, self.commands[i], self.results),
                                  daemon=True) for i, n in enumerate(shares)]
        for proc in self.procs:
            proc.start()
        self.collect("ready")

    def collect(self, kind: str) -> list[float]:
        out: list[float] = []
        for _ in self.procs:
            got, _index, values = self.results.get(timeout=ROUND_TIMEOUT_S + 30)
            assert got == kind, (got, kind)
            out += values or []
        return out

    def measure(self, want: str, action: Any) -> tuple[list[float], float]:
        """(seconds from the action's start to each router serving `want`, the action's own seconds)."""
        for queue in self.commands:
            queue.put(want)
        self.collect("watching")
        started = time.monotonic()
        action()
        took = time.monotonic() - started
        return [seen - started for seen in self.collect("seen")], took

    def stop(self) -> None:
        for queue in self.commands:
            queue.put("stop")
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


# --- figures ---------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float], expected: int) -> str:
    if not values:
        return "no router switched"
    ms = [v * 1000 for v in values]
    missing = expected - len(values)
    return (f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
            f"max {max(ms):.1f} ms over {len(values)} router-rounds"
            + (f"; {missing} did not switch within {ROUND_TIMEOUT_S:.0f} s" if missing else ""))


def choose_cost(url: str) -> dict[str, float]:
    """µs per call in one thread for `choose` (no canary, 5% canary) and `use` (5% canary)."""
    router = Router(NAME, url=url)
    router.wait_ready(10)
    keys = [f"user-{i}" for i in range(1000)]
    choose = router.choose

    def per_call(fn: Any) -> float:
        return min(timeit.repeat(fn, number=50, repeat=5)) / 50 / len(keys) * 1e6

    def use() -> None:
        for key in keys:
            with router.use(key):
                pass

    baseline = per_call(lambda: [key for key in keys])
    out = {"choose, no canary": per_call(lambda: [choose(key) for key in keys]) - baseline}
    version = router.version
    must(api(url, "POST", f"/rollouts/{NAME}/start", {"canary": CANARY["id"], "weight": 5}), "start 5%")
    deadline = time.monotonic() + 10
    while router.version == version:
        if time.monotonic() > deadline:
            raise RuntimeError("the router did not see the 5% canary")
        time.sleep(0.01)
    out["choose, 5% canary"] = per_call(lambda: [choose(key) for key in keys]) - baseline
    out["use (enter + exit), 5% canary"] = per_call(use)
    must(api(url, "POST", f"/rollouts/{NAME}/rollback", {"reason": "bench"}), "rollback")
    router.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routers", type=int, default=50)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--poll-wait", type=float, default=30.0, help="long-poll hold time (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store and log")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="llmloop-bench-"))
    collector = Collector(workdir / "store", workdir / "collector.log")
    print(f"llmloop propagation bench: {args.routers} routers in {args.processes} processes, {args.rounds} rounds, "
          f"long poll {args.poll_wait:g} s, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    try:
        try:
            print(f"collector ready in {collector.start(60):.1f} s (pid {collector.pid})")
        except CollectorFailed as exc:
            print(f"\nERROR: {exc}\n--- collector log ---\n{collector.log_tail()}\n---", file=sys.stderr)
            return 2
        url = f"http://127.0.0.1:{collector.http_port}"
        for doc in (CONTROL, CANARY):
            must(api(url, "POST", "/configs", doc), f"publish {doc['id']}")
        start = {"canary": CANARY["id"], "weight": START_WEIGHT, "steps": [START_WEIGHT, 100], "reason": "bench"}
        must(api(url, "POST", f"/rollouts/{NAME}/start", {**start, "control": CONTROL["id"]}), "first start")
        must(api(url, "POST", f"/rollouts/{NAME}/rollback", {"reason": "bench set-up"}), "first rollback")
        workers = Workers(url, args.routers, args.processes, args.poll_wait)
        cpu_before, idle_started = collector.cpu_s(), time.monotonic()
        time.sleep(5)
        idle_cpu = (collector.cpu_s() - cpu_before) / (time.monotonic() - idle_started)
        starts: list[float] = []
        rollbacks: list[float] = []
        action_s: list[float] = []
        try:
            for round_no in range(1, args.rounds + 1):
                seen, _ = workers.measure("canary", lambda: must(api(url, "POST", f"/rollouts/{NAME}/start", start),
                                                                  "start"))
                starts += seen
                seen, took = workers.measure("control", lambda: must(api(url, "POST", f"/rollouts/{NAME}/rollback",
                                                                         {"reason": "bench"}), "rollback"))
                rollbacks += seen
                action_s.append(took)
                print(f"round {round_no:2d}: rollback request {took * 1000:.0f} ms; every router on control after "
                      f"{max(seen, default=float('nan')) * 1000:.0f} ms ({len(seen)}/{args.routers})", flush=True)
        finally:
            workers.stop()
        expected = args.routers * args.rounds
        print(f"\nrollback -> router serves control: {summary(rollbacks, expected)}")
        print(f"start -> router serves canary:     {summary(starts, expected)}")
        print(f"the rollback request itself: p50 {percentile(action_s, 50) * 1000:.0f} ms, "
              f"max {max(action_s) * 1000:.0f} ms")
        p99 = percentile(rollbacks, 99) if len(rollbacks) == expected else float("inf")
        print(f"target p99 <= {TARGET_P99_S:g} s: {'met' if p99 <= TARGET_P99_S else 'NOT met'} "
              f"(p99 {p99:.3f} s; Langfuse's SDK prompt cache: 60 s)")
        print(f"collector CPU while {args.routers} routers hold long polls: {idle_cpu * 100:.1f}% of a core")
        print("\nrouter cost per call, one thread (µs):")
        for label, micros in choose_cost(url).items():
            print(f"  {label:32s} {micros:6.2f}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        code = collector.stop()
        if code not in (None, 0):
            print(f"collector exited with code {code}; log tail:\n{collector.log_tail()}", file=sys.stderr)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
