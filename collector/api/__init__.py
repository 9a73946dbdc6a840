"""The API served under `/api/v1` on the OTLP/HTTP port: configs, rollouts, feedback, prices.

`create_api` builds the FastAPI app and the `RolloutHub` behind it; run `hub.watch()` on the loop
that serves the app and call `hub.close()` to release long polls at shutdown.
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import Depends, FastAPI

from llmloop.collector.api.config_routes import config_routes
from llmloop.collector.api.configs import ConfigStore
from llmloop.collector.api.feedback import feedback_routes
from llmloop.collector.api.http import Auth, install_error_handlers
from llmloop.collector.api.hub import RolloutHub
from llmloop.collector.api.price_routes import price_routes
from llmloop.collector.api.rollout_routes import rollout_routes
from llmloop.queries import Layout

__all__ = ["PREFIX", "RolloutHub", "create_api"]

PREFIX = "/api/v1"


def create_api(client: Client, layout: Layout, token: str | None = None,
               admin_token: str | None = None) -> tuple[FastAPI, RolloutHub]:
    """The API app (to mount at `PREFIX`) over the store `client`, and its rollout hub."""
    auth = Auth(token, admin_token)
    configs = ConfigStore(client, layout)
    hub = RolloutHub(client, layout, configs)
    app = FastAPI(title="llmloop registry API", version="1", openapi_url=None, docs_url=None, redoc_url=None,
                  description="Configs, rollouts and feedback, on the collector's OTLP/HTTP port under "
                              f"{PREFIX}. Errors answer {{\"error\": \"...\"}}.")
    install_error_handlers(app)
    app.include_router(config_routes(configs, auth))
    app.include_router(rollout_routes(hub, configs, auth))
    app.include_router(feedback_routes(client, layout, auth))
    app.include_router(price_routes(client, layout, auth))

    @app.get("/openapi.json", dependencies=[Depends(auth.read)], include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return {**app.openapi(), "servers": [{"url": PREFIX}]}

    return app, hub
