"""`/configs`: publish, list and read configs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from llmloop.collector.api.configs import ConfigDocument, ConfigStore
from llmloop.collector.api.http import ApiError, Auth


def config_routes(store: ConfigStore, auth: Auth) -> APIRouter:
    """The config endpoints over `store`."""
    router = APIRouter(prefix="/configs", tags=["configs"])

    @router.post("", dependencies=[Depends(auth.write)], summary="Publish a config",
                 responses={201: {"description": "published"}, 200: {"description": "the same content was "
                            "already published: nothing changed"}, 409: {"description": "the id holds other content"}})
    async def publish(config: ConfigDocument,
                      publisher: str = Query("", max_length=200, description="who publishes")) -> JSONResponse:
        """Store a config; the server adds name, version, content_hash, fingerprint, published, publisher."""
        created, stored = await run_in_threadpool(store.publish, config, publisher)
        return JSONResponse(stored, 201 if created else 200)

    @router.get("", dependencies=[Depends(auth.read)], summary="Published configs, newest first")
    async def list_configs(
        name: str = Query("", description="only versions of this config name"),
    ) -> list[dict[str, Any]]:
        return await run_in_threadpool(store.list, name)

    @router.get("/{config_id:path}", dependencies=[Depends(auth.read)], summary="One config")
    async def get_config(config_id: str) -> dict[str, Any]:
        found = await run_in_threadpool(store.get, config_id)
        if found is None:
            raise ApiError(404, f"no config {config_id!r} is published: see `llmloop config list`, "
                                "or publish it with `llmloop config publish FILE`")
        return found

    return router
