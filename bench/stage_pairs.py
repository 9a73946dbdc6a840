"""Paired comparison of the ingest path against a variant of it, in one store.

    python bench/stage_pairs.py [VARIANT.sql | typed] [--rounds 40] [--spans 20000]

VARIANT.sql is a SELECT that reads `{{db}}.otlp_spans_raw_in` and yields rows of `spans`, as the direct path
(0016 and 0018, `otlp_spans_raw_direct_mv` behind the route) does for the bench's requests (the variant has no route:
every request takes it, so a variant that decides the path must do so itself), optionally after statements it needs
(functions); `{{db}}` and the other layout placeholders are filled as in migrations. Without it the variant is
a copy of the live path: an A/A run that shows the noise. `typed` compares the ingest table of collectors
before 0014 instead (span attribute values parsed into typed columns), which a store keeps for them.

The script migrates a fresh embedded store, adds a second Null input table with the variant as its view into
`spans` (so the write, and the views on `spans`, are shared), stops merges, and then, each round, inserts the
same batch through both stages, one right after the other, in an order that alternates. Each round also inserts a
200-span batch through both (the fixed cost of an insert).

It prints, for each batch size, the median paired difference (variant minus current, CPU µs per span or s per
insert), in how many rounds the variant was cheaper, and both medians. This VM's speed drifts by ±25 % over
minutes and has no hardware counters; medians of separate runs move by 10 %, the sign of paired differences does
not. Session 7 measured 0009's first stage against the same without attribute limits (now 0013's): 6.8 µs per
span less, cheaper in 35 of 40 rounds. A bench: figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", type=Path, nargs="?",
                        help="a SELECT from {{db}}.otlp_spans_raw_in into spans' columns, or typed "
                             "(default: a copy of the live path)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--spans", type=int, default=20_000)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from inserts import fresh_store, path_variant, segment, typed_ingest

    from llmloop.collector.decode import TRACES

    client, settings = fresh_store("llmloop-pairs-")
    if str(args.variant) == "typed":
        variant, extra = typed_ingest(Path(tempfile.mkdtemp(prefix="llmloop-pairs-typed-")))
    else:
        variant, extra = path_variant(client, "variant", args.variant.read_text() if args.variant else None), {}
    batches = {"big": (segment(args.spans, 1), args.spans), "small": (segment(200, 2), 200)}
    tables = {"current": (f"llmloop.{TRACES.table}", settings), "variant": (variant, {**settings, **extra})}
    cost: dict[tuple[str, str], list[float]] = {}
    inserts = 0
    for round_ in range(args.rounds):
        order = list(tables.items()) if round_ % 2 == 0 else list(reversed(tables.items()))
        for name, (target, target_settings) in order:
            for size, (data, _) in batches.items():
                inserts += 1
                before = _cpu()
                client.raw_insert(target, insert_block=data, fmt="Protobuf",
                                  settings={**target_settings, "insert_deduplication_token": f"pairs-{inserts}"})
                cost.setdefault((name, size), []).append(_cpu() - before)
    print(f"{args.rounds} paired rounds, {args.variant or 'a copy of the live path'} against the live path")
    for size, (_, spans) in batches.items():
        scale, unit = (1e6 / spans, "µs CPU/span") if size == "big" else (1.0, "s CPU/insert")
        diffs = [v - c for v, c in zip(cost[("variant", size)], cost[("current", size)], strict=True)]
        cheaper = sum(1 for d in diffs if d < 0)
        print(f"{spans:>6,}-span inserts: variant - current median {statistics.median(diffs) * scale:+.3f} {unit}, "
              f"variant cheaper in {cheaper}/{len(diffs)} rounds (medians: current "
              f"{statistics.median(cost[('current', size)]) * scale:.3f}, variant "
              f"{statistics.median(cost[('variant', size)]) * scale:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
