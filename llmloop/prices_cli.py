"""`llmloop prices ...`: the price table of a running collector (load an override file, list, find gaps)."""

from __future__ import annotations

from pathlib import Path

import click

from llmloop.registry_cli import Api, api_options, json_option, print_json, table


@click.group()
def prices() -> None:
    """Model prices used for CostUsd in llmloop.genai_calls.

    The collector ships an effective-dated price table; an override file in the same TOML format
    replaces or adds rows. Cost is computed at query time, so a correction reprices history at once.
    """


@prices.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@api_options(write=True)
def load(api: Api, file: Path) -> None:
    """Make FILE the price override (it replaces the previous override; the shipped rows stay under it)."""
    _, answer = api.call("PUT", "/prices", file.read_bytes(), write=True, query={"origin": str(file.resolve())})
    click.echo(f"loaded {answer['rows']} price row(s) from {file}")


@prices.command(name="list")
@click.argument("model", required=False, default="")
@json_option
@api_options(write=False)
def list_prices(api: Api, model: str, as_json: bool) -> None:
    """The prices in force, USD per 1M tokens (* marks rows from the override file)."""
    _, rows = api.call("GET", "/prices", query={"model": model} if model else None)
    if as_json:
        return print_json(rows)
    cells = [[row["provider"], row["model"] + ("*" if row["overridden"] else ""), row["effective_from"],
              *(_amount(row[key]) for key in ("input", "output", "cache_read", "cache_write", "cache_write_1h"))]
             for row in rows]
    table(cells, ["PROVIDER", "MODEL", "FROM", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "WRITE 1H"])
    return None


@prices.command()
@click.option("--days", default=30, show_default=True, help="How far back to look.")
@json_option
@api_options(write=False)
def missing(api: Api, days: int, as_json: bool) -> None:
    """Models of recent calls that have no price (their cost is NULL): add them to an override file."""
    _, rows = api.call("GET", "/prices/missing", query={"days": str(days)})
    if as_json:
        return print_json(rows)
    if not rows:
        click.echo(f"every model called in the last {days} day(s) has a price")
        return None
    table([[row["Provider"], row["Model"], str(row["Calls"]), row["LastSeen"]] for row in rows],
           ["PROVIDER", "MODEL", "CALLS", "LAST SEEN"])
    return None


def _amount(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"

