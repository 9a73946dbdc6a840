"""`/feedback`: a user's thumbs or score for a span, a trace or a provider response."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Literal

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from llmloop.collector.api.http import Auth
from llmloop.collector.store import write_settings
from llmloop.queries import Layout

_COLUMNS = ["id", "time", "trace_id", "span_id", "response_id", "score", "thumbs", "comment", "request_key",
            "config_id", "metadata"]


def _hex_id(value: str | None, digits: int) -> str | None:
    if value is None:
        return None
    text = value.strip().lower()
    if len(text) != digits or text.strip("0123456789abcdef") or not text.strip("0"):
        raise ValueError(f"must be {digits} hex digits, not all zero (as in OTLP/JSON), got {value!r}")
    return text


class Feedback(BaseModel):
    """One piece of feedback; at least one of trace_id, span_id, response_id and one of score, thumbs."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=128,
                           description="the client's id (e.g. a uuid4): a retried delivery is stored once")
    trace_id: str | None = Field(None, description="32 hex digits")
    span_id: str | None = Field(None, description="16 hex digits")
    response_id: str | None = Field(None, min_length=1, max_length=512,
                                    description="the provider's response id (span attribute gen_ai.response.id)")
    score: float | None = None
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(None, max_length=65536)
    key: str | None = Field(None, max_length=1024, description="the router key (user or session id)")
    config_id: str | None = Field(None, max_length=200)
    metadata: dict[str, str] | None = None

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, value: str | None) -> str | None:
        return _hex_id(value, 32)

    @field_validator("span_id")
    @classmethod
    def _span_id(cls, value: str | None) -> str | None:
        return _hex_id(value, 16)

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Feedback:
        if not (self.trace_id or self.span_id or self.response_id):
            raise ValueError("say what the feedback is about: trace_id (and span_id) or response_id")
        if self.score is None and self.thumbs is None:
            raise ValueError("feedback needs a score or thumbs ('up' or 'down')")
        return self


def feedback_routes(client: Client, layout: Layout, auth: Auth) -> APIRouter:
    """The feedback endpoint, writing into `<db>.feedback`."""
    router = APIRouter(tags=["feedback"])
    table = f"{layout.database}.feedback"
    settings = write_settings(layout)

    @router.post("/feedback", status_code=202, dependencies=[Depends(auth.read)], summary="Record feedback")
    async def record(body: Feedback) -> dict[str, str]:
        """Stored in `llmloop.feedback`; count it with `FINAL` so a retried delivery counts once."""
        feedback_id = body.id or str(uuid.uuid4())
        row = [feedback_id, datetime.now(timezone.utc), body.trace_id or "", body.span_id or "",
               body.response_id or "", body.score, body.thumbs or "", body.comment or "", body.key or "",
               body.config_id or "", body.metadata or {}]
        await run_in_threadpool(client.insert, table, [row], column_names=_COLUMNS, settings=settings)
        return {"id": feedback_id}

    return router
