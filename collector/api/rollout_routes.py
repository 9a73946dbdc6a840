"""`/rollouts`: states (with ETag and long poll), history, and the actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from llmloop.collector.api import rollouts
from llmloop.collector.api.configs import ConfigStore
from llmloop.collector.api.http import ApiError, Auth
from llmloop.collector.api.hub import Rollout, RolloutHub, event_json
from llmloop.collector.api.rollouts import State

MAX_WAIT = 60.0


class Action(BaseModel):
    """Who acts, and why (kept in the rollout's history)."""

    model_config = ConfigDict(extra="forbid")

    actor: str = Field("", max_length=200, description="who acts; the CLI sends the OS user name")
    reason: str = Field("", max_length=2000, description="why; required for rollback")


class Start(Action):
    """A new canary (and optional shadow) against the control."""

    canary: str = Field(description="config id of the canary, a version of this rollout's config name")
    control: str | None = Field(None, description="config id serving now; required for a first rollout")
    shadow: str | None = Field(None, description="config id run beside the control, its output not served")
    weight: float | None = Field(None, description="the canary's share in percent; default: the first step")
    steps: list[float] | None = Field(None, description="planned weights, increasing; default [5, 25, 50, 100]")


def _matches(if_none_match: str | None, etag: str) -> bool:
    return etag in (tag.strip() for tag in (if_none_match or "").split(","))


def rollout_routes(hub: RolloutHub, configs: ConfigStore, auth: Auth) -> APIRouter:
    """The rollout endpoints over `hub`."""
    router = APIRouter(prefix="/rollouts", tags=["rollouts"])

    def state_response(rollout: Rollout | None, name: str) -> Response:
        if rollout is None:
            raise ApiError(404, f"no rollout named {name!r}: start one with "
                                f"`llmloop rollout start {name} --canary ID --control ID`",
                           {"ETag": hub.current_etag(name)})
        return Response(rollout.body, media_type="application/json",
                        headers={"ETag": rollout.etag, "Cache-Control": "no-cache"})

    @router.get("", dependencies=[Depends(auth.read)], summary="All rollout states")
    async def list_rollouts() -> list[dict[str, Any]]:
        return [hub.get(name).state for name in hub.names()]

    @router.get("/{name}", dependencies=[Depends(auth.read)], summary="A rollout's state, with long poll",
                responses={304: {"description": "unchanged (If-None-Match still matches after the wait)"},
                           404: {"description": "unknown rollout; its ETag is \"<name>:0\""}})
    async def get_rollout(
        name: str,
        wait: float = Query(0, ge=0, le=MAX_WAIT, description="seconds to hold the request while the state "
                            "still matches If-None-Match"),
        if_none_match: str | None = Header(None, description="the ETag of the state the client has"),
    ) -> Response:
        """The current state. With `If-None-Match` and `wait`, the answer comes when the state changes (200)
        or after `wait` seconds (304). The ETag is `"<name>:<version>"`."""
        if _matches(if_none_match, hub.current_etag(name)) and wait:
            await hub.wait(name, hub.current_etag(name), wait)
        current = hub.current_etag(name)
        if _matches(if_none_match, current):
            return Response(status_code=304, headers={"ETag": current, "Cache-Control": "no-cache"})
        return state_response(hub.get(name), name)

    @router.get("/{name}/history", dependencies=[Depends(auth.read)], summary="A rollout's events, oldest first")
    async def history(name: str) -> list[dict[str, Any]]:
        rollout = hub.get(name)
        if rollout is None:
            raise ApiError(404, f"no rollout named {name!r}")
        return [event_json(event) for event in rollout.events]

    @router.post("/{name}/start", dependencies=[Depends(auth.write)], summary="Start a canary")
    async def start(name: str, body: Start) -> Response:
        """Refused (409) while a canary is active; the configs must be published versions of `name`."""
        def decide(state: State, now_ms: int) -> rollouts.Event:
            ids = (body.canary, body.control or state.control, body.shadow)
            published = {config: found["name"] for config in ids if config and (found := configs.get(config))}
            return rollouts.start(state, body.canary, published, body.control, body.shadow, body.weight,
                                  body.steps, body.actor, body.reason, now_ms)

        return state_response(await hub.act(name, decide), name)

    def simple_action(action: str, summary: str, doc: str) -> None:
        rule = rollouts.SIMPLE_ACTIONS[action]

        async def act(name: str, body: Action | None = None) -> Response:
            body = body or Action()
            rollout = await hub.act(name, lambda state, now_ms: rule(state, body.actor, body.reason, now_ms))
            return state_response(rollout, name)

        act.__doc__ = doc
        router.add_api_route(f"/{{name}}/{action}", act, methods=["POST"], dependencies=[Depends(auth.write)],
                             summary=summary, name=action)

    simple_action("promote", "Promote the canary",
                  "The canary moves to its next step; past the last step (or on reaching 100) it becomes the control.")
    simple_action("rollback", "Roll back", "Canary and shadow cleared: the control serves 100%. `reason` is required.")
    simple_action("pause", "Pause automatic promotion", "Routing is unchanged.")
    simple_action("resume", "Resume automatic promotion", "Routing is unchanged.")
    return router
