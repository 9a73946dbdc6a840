"""Where an insert's CPU goes: one chDB insert of GenAI spans, cut off after each stage of the ingest views.

    python bench/insert_stages.py [--spans 50000] [--repeat 3]     # --spans 200: the fixed cost of an insert

Each variant runs in its own process with a fresh temporary embedded store, merges stopped, the same
length-delimited OTLP batch (bench/ingest.py's spans) and the writer's insert settings. Variants:

- parse: no view on `otlp_spans_raw_in` (ClickHouse parses the protobuf, nothing else);
- route: the ingest table's view, which decides each request's path (0016), and no view after it;
- staged: the route and the staged path's views, which get no row here, without the direct path's view;
- views: every view, with `spans` swapped for a Null table (everything but the MergeTree write): for the bench's
  requests, the direct path's one view (explode, attribute rendering, typed columns);
- full: the real pipeline into `llmloop.spans`.

It prints the best of `--repeat` inserts per variant as CPU µs per span (process CPU, all threads) and the
difference to the previous stage. A bench: figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("parse", "route", "staged", "views", "full")
DROPPED = {  # the views a variant cuts off
    "parse": ("otlp_spans_raw_route_mv",),
    "route": ("otlp_spans_raw_direct_mv", "otlp_spans_raw_staged_mv"),  # both paths behind the route
    "staged": ("otlp_spans_raw_direct_mv",),
}
SPANS_VIEWS = ("otlp_spans_raw_direct_mv", "spans_typed_mv", "spans_mapped_mv")  # the views that write to `spans`


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_variant(variant: str, spans: int, repeat: int) -> float:
    """Best CPU µs per span of `repeat` inserts of `spans` spans with the pipeline cut as `variant` says."""
    sys.path.insert(0, str(Path(__file__).parent))
    from inserts import fresh_store, segment

    from llmloop.collector.decode import TRACES

    client, settings = fresh_store("llmloop-stages-")
    for view in DROPPED.get(variant, ()):
        client.command(f"DROP VIEW llmloop.{view}")
    if variant == "views":
        client.command("CREATE TABLE llmloop.spans_sink AS llmloop.spans ENGINE = Null")
        for view in SPANS_VIEWS:
            create = client.query("SELECT create_table_query FROM system.tables WHERE database = 'llmloop' "
                                  "AND name = {view:String}", parameters={"view": view}).result_rows[0][0]
            client.command(f"DROP VIEW llmloop.{view}")
            client.command(create.replace(" TO llmloop.spans ", " TO llmloop.spans_sink "))
    data = segment(spans, 1)
    best = float("inf")
    for attempt in range(repeat):
        before = _cpu()
        client.raw_insert(f"llmloop.{TRACES.table}", insert_block=data, fmt="Protobuf",
                          settings={**settings, "insert_deduplication_token": f"stages-{attempt}"})
        best = min(best, (_cpu() - before) / spans * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in a child
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.spans, args.repeat)))
        return 0
    print(f"one insert of {args.spans:,} GenAI spans (~1.2 KB, 28 attributes), best of {args.repeat}, merges stopped")
    previous = 0.0
    for variant in VARIANTS:
        started = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--spans", str(args.spans),
                              "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
        value = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{variant:7s} {value:6.1f} µs CPU/span   (+{value - previous:5.1f} over the stage before; "
              f"{time.monotonic() - started:.0f} s)", flush=True)
        previous = value
    return 0


if __name__ == "__main__":
    sys.exit(main())
