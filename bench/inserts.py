"""Shared by the insert micro-benchmarks (insert_stages.py, stage_pairs.py, insert_instructions.py): a fresh
embedded store in this process, and length-delimited batches of ingest.py's GenAI spans, as the writer inserts them."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def fresh_store(prefix: str) -> tuple[Any, dict[str, Any]]:
    """A migrated embedded store in a new temporary directory, merges stopped, and the writer's insert settings."""
    from llmloop.collector.decode import TRACES
    from llmloop.collector.prices import load_startup_prices
    from llmloop.collector.store import connect, load_conventions, migrate
    from llmloop.collector.writer import Writer, tuned
    from llmloop.queries import Layout

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    client = connect(f"chdb://{tmp}/store")
    layout = Layout()
    migrate(client, layout)
    load_conventions(client, layout.database)
    load_startup_prices(client, layout, None)
    client.command("SYSTEM STOP MERGES")
    return client, tuned(client, Writer(TRACES, lambda: client, tmp / "spool", local_store=True).settings)


def segment(spans: int, seed: int) -> bytes:
    """`spans` spans in requests of up to 1,000, length-delimited like a spool segment."""
    import ingest
    from google.protobuf.internal.encoder import _VarintBytes

    sizes = [1000] * (spans // 1000) if spans >= 1000 else [spans]
    return b"".join(_VarintBytes(len(body)) + body for body, _ in ingest.build_requests(sizes, seed, 0))


# The live ingest table's views (0018) as (view, the table its copy writes to; None: a Null copy of the view's own).
_PATH = (("otlp_spans_raw_route_mv", None), ("otlp_spans_raw_direct_mv", "spans"),
         ("otlp_spans_raw_staged_mv", "otlp_spans_raw_full"))


def path_variant(client: Any, name: str, sql: str | None) -> str:
    """A Null input table `<db>.<name>_in` like the ingest table, and what takes its requests into `spans`: `sql`
    (statements, the last a SELECT from `{{db}}.otlp_spans_raw_in` that yields rows of `spans`, placeholders as in
    migrations; the earlier ones, e.g. functions, run first) as its one view or, without it, a copy of the live
    path (the ingest table's route, and the direct and staged paths behind it). Returns the table's name."""
    from llmloop import queries
    from llmloop.collector.decode import TRACES
    from llmloop.queries import Layout

    db = Layout().database
    source, table = f"{db}.{TRACES.table}", f"{db}.{name}_in"
    client.command(f"CREATE TABLE {table} AS {source} ENGINE = Null")
    if sql is not None:
        *setup, select = queries.render(sql, Layout())
        for statement in setup:
            client.command(statement)
        views = [(select.replace(f"FROM {source}", f"FROM {table}"), f"{db}.spans")]
    else:
        routed = f"{db}.{name}_routed"
        client.command(f"CREATE TABLE {routed} AS {db}.otlp_spans_raw_routed ENGINE = Null")
        views = []
        for view, target in _PATH:
            select = client.query("SELECT as_select FROM system.tables WHERE database = {db:String} "
                                  "AND name = {view:String}", parameters={"db": db, "view": view}).result_rows[0][0]
            select = (select.replace(f"FROM {source}", f"FROM {table}")
                      .replace(f"FROM {db}.otlp_spans_raw_routed", f"FROM {routed}"))
            views.append((select, f"{db}.{target}" if target else routed))
    for index, (select, target) in enumerate(views):
        client.command(f"CREATE MATERIALIZED VIEW {db}.{name}_mv{index} TO {target} AS {select}")
    return table


def typed_ingest(directory: Path) -> tuple[str, dict[str, str]]:
    """The ingest table of collectors before 0014 (`otlp_traces_in`, span attribute values parsed into typed columns;
    a store keeps it for them) and the insert settings its schema needs, written to `directory`."""
    from llmloop.collector.decode import TRACES
    from llmloop.collector.protoschema import format_schema

    schema, message = format_schema(TRACES.request.DESCRIPTOR)
    path = directory / "typed.proto"
    path.write_text(schema)
    return "llmloop.otlp_traces_in", {"format_schema": f"{path}:{message}"}
