"""Shared by the insert micro-benchmarks (insert_stages.py, stage_pairs.py): a fresh embedded store in this
process, and length-delimited batches of ingest.py's GenAI spans, as the writer inserts them."""

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
