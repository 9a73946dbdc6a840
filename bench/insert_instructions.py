"""Instructions per ingest insert, counted by callgrind: a measure this VM's drift cannot move.

    python bench/insert_instructions.py [VARIANT ...] [--spans 2000] [--rounds 3]

A VARIANT is either `NAME=SETTINGS` (a JSON object of insert settings added to the writer's), an ingest path
SQL file as `stage_pairs.py` takes (run through its own input table, beside the live path), or
`typed`: the ingest table of collectors before 0014 (`otlp_traces_in`, span attribute values parsed into typed
columns), which a store keeps for them. The script migrates a fresh embedded store in a child process under
`valgrind --tool=callgrind`, warms every
variant with one insert, then counts each round's insert of the same batch with instrumentation on, the
variants' order rotating from round to round. It prints every count, and each variant's median difference
against the current one.

Counts include every thread of the process (chDB's pools too); the same code gives the same count within
~1 %, but now and then one count is ~30 % high (background work of chDB's landing in the window): read every
round's count, and trust the median of three or more. They leave out the kernel (page faults, I/O) and cache
misses, so they rank what ClickHouse computes, not seconds: confirm a gain end to end (`ingest.py`). Under
callgrind a 2,000-span insert takes ~30 s and the store's set-up ~50 s. Run it with `--spans 200` too to tell
an insert's fixed cost from its cost per span. Session 8 found with it that query plan optimizations and
`optimize_and_compare_chain` were a quarter of an insert's fixed cost (the writer now turns them off).
A bench: figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_INNER = "LLMLOOP_CALLGRIND_OUT"  # set in the child: the directory callgrind writes its dumps to


def _variants(specs: list[str]) -> list[tuple[str, dict, str | None]]:
    """(name, extra settings, ingest path SQL or None) per variant, the current pipeline first."""
    out: list[tuple[str, dict, str | None]] = [("current", {}, None)]
    for spec in specs:
        if spec == "typed":
            continue  # added by `inner`, which knows the store
        name, sep, settings = spec.partition("=")
        if sep and not Path(spec).exists():
            out.append((name, json.loads(settings), None))
        else:
            out.append((Path(spec).stem, {}, Path(spec).read_text()))
    return out


def _count(pid: str, label: str, dumps: Path) -> int:
    """Dump callgrind's counters since the last zeroing and return their instruction total."""
    subprocess.run(["callgrind_control", "-d", label, pid], check=True, capture_output=True)
    newest = max(dumps.glob(f"cg.{pid}.*"), key=lambda path: path.stat().st_mtime)
    for line in newest.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {newest}")


def inner(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from inserts import fresh_store, path_variant, segment, typed_ingest

    from llmloop.collector.decode import TRACES

    client, settings = fresh_store("llmloop-instructions-")
    variants = _variants(args.variant)
    tables = [path_variant(client, f"variant{i}", sql) if sql else f"llmloop.{TRACES.table}"
              for i, (_, _, sql) in enumerate(variants)]
    if "typed" in args.variant:
        table, extra = typed_ingest(Path(os.environ[_INNER]))
        variants.append(("typed", extra, None))
        tables.append(table)
    data = segment(args.spans, 1)
    inserts = 0

    def insert(table: str, extra: dict) -> None:
        nonlocal inserts
        inserts += 1
        client.raw_insert(table, insert_block=data, fmt="Protobuf",
                          settings={**settings, **extra, "insert_deduplication_token": f"instructions-{inserts}"})

    for (_, extra, _), table in zip(variants, tables, strict=True):
        insert(table, extra)
    pid, dumps = str(os.getpid()), Path(os.environ[_INNER])
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    insert(tables[0], {})  # the first insert under instrumentation counts ~40 % more: not measured
    counts: dict[str, list[int]] = {}
    pairs = list(zip(variants, tables, strict=True))
    for round_ in range(args.rounds):
        for (name, extra, _), table in pairs[round_ % len(pairs):] + pairs[:round_ % len(pairs)]:
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            insert(table, extra)
            counts.setdefault(name, []).append(_count(pid, f"{name}-{round_}", dumps))
            print(f"round {round_ + 1}: {name}: {counts[name][-1]:,} instructions", flush=True)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    current = counts["current"]
    base = statistics.median(current)
    print(f"\n{args.spans:,}-span inserts, {args.rounds} rounds (median instructions per insert, per span):")
    for name, values in counts.items():
        diff, median = statistics.median(v - c for v, c in zip(values, current, strict=True)), statistics.median(values)
        delta = f"  {diff / base * 100:+.1f} % vs current ({diff / args.spans:+,.0f} per span)" if diff else ""
        print(f"  {name:24s} {median:>15,.0f}  {median / args.spans:>9,.0f}{delta}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", nargs="*", help="NAME={json settings}, an ingest path SQL file, or typed")
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if _INNER in os.environ:
        return inner(args)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    dumps = Path(tempfile.mkdtemp(prefix="llmloop-callgrind-"))
    started = time.monotonic()
    try:
        done = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--quiet",
                               f"--callgrind-out-file={dumps}/cg.%p", sys.executable, __file__, *sys.argv[1:]],
                              env={**os.environ, _INNER: str(dumps)})
    finally:
        shutil.rmtree(dumps, ignore_errors=True)
    print(f"({time.monotonic() - started:.0f} s under callgrind)")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
