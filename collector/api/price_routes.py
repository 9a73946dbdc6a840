"""`/prices`: replace the user's price layer, read the prices in force, list unpriced models."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from llmloop import queries
from llmloop.collector.api.http import ApiError, Auth
from llmloop.collector.prices import USER, load_layer
from llmloop.queries import Layout
from llmloop.semconv.prices import PriceError, parse_prices


def price_routes(client: Client, layout: Layout, auth: Auth) -> APIRouter:
    """The price endpoints over the store `client`."""
    router = APIRouter(prefix="/prices", tags=["prices"])
    current_sql = queries.render(queries.load("prices/current.sql"), layout)[0]
    missing_sql = queries.render(queries.load("analysis/unpriced_models.sql"), layout)[0]

    def rows(sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        result = client.query(sql, parameters=parameters)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    @router.put("", dependencies=[Depends(auth.write)], summary="Replace the user's price layer",
                responses={422: {"description": "the file is not a valid prices file"}})
    async def load(request: Request,
                   origin: str = Query("api", max_length=500, description="where the file came from")) -> dict:
        """The body is a prices file (TOML, the format of the shipped prices.toml); its rows replace the
        previous override file's and stand over the shipped rows. History is repriced at once."""
        text = (await request.body()).decode("utf-8", "replace")
        try:
            prices = parse_prices(text, origin)
        except PriceError as exc:
            raise ApiError(422, str(exc)) from None
        await run_in_threadpool(load_layer, client, layout, USER, prices, origin)
        return {"layer": USER, "rows": len(prices), "origin": origin}

    @router.get("", dependencies=[Depends(auth.read)], summary="The prices in force")
    async def current(model: str = Query("", description="only this model name")) -> list[dict[str, Any]]:
        return await run_in_threadpool(rows, current_sql, {"model": model})

    @router.get("/missing", dependencies=[Depends(auth.read)], summary="Models of recent calls without a price")
    async def missing(days: int = Query(30, ge=1, le=3650, description="how far back")) -> list[dict[str, Any]]:
        since = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days)
        return await run_in_threadpool(rows, missing_sql, {"since": since})

    return router
