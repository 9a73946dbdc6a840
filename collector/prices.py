"""Model prices in the store: the shipped table and a user's override file as layers (see 0007_prices.sql)."""

from __future__ import annotations

import logging
import time
from dataclasses import astuple, fields
from pathlib import Path

from clickhouse_connect.driver.client import Client

from llmloop import queries
from llmloop.queries import Layout
from llmloop.semconv.prices import Price, load_prices

log = logging.getLogger("llmloop.prices")

SHIPPED = "shipped"
USER = "user"
_COLUMNS = [field.name for field in fields(Price)]


def load_layer(client: Client, layout: Layout, layer: str, prices: list[Price], origin: str) -> None:
    """Replace price `layer` with `prices` (a new generation), then reload the lookup dictionary."""
    database = layout.database
    generation = time.time_ns()
    if prices:
        client.insert(f"{database}.prices", [[layer, generation, *astuple(price)] for price in prices],
                      column_names=["layer", "generation", *_COLUMNS])
    client.insert(f"{database}.price_loads", [[layer, generation, origin, len(prices)]],
                  column_names=["layer", "generation", "origin", "row_count"])
    for statement in queries.render(queries.load("prices/reload.sql"), layout):
        client.command(statement)
    log.info("prices: %d %s rows from %s", len(prices), layer, origin)


def load_startup_prices(client: Client, layout: Layout, override: Path | None) -> None:
    """The shipped table, and the override file when one is given (it replaces the user layer)."""
    load_layer(client, layout, SHIPPED, load_prices(), "llmloop.semconv/prices.toml")
    if override is not None:
        load_layer(client, layout, USER, load_prices(override), str(override))
