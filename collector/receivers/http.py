"""OTLP/HTTP receiver (`/v1/traces`, `/v1/logs`) as a Starlette app, with the registry API mounted beside.

Protobuf and JSON on the same path, chosen by Content-Type; answers in the request's encoding;
gzip request bodies; size limit after decompression; google.rpc.Status bodies on errors.
"""

from __future__ import annotations

import hmac
import zlib

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from llmloop.collector.attributes import DEFAULT_LIMITS, AttributeLimits
from llmloop.collector.decode import LOGS, TRACES, Decoded, Signal, decode
from llmloop.collector.errors import BadRequest, CollectorError, Overloaded, TooLarge
from llmloop.collector.limits import InflightBudget
from llmloop.collector.writer import Writer

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 404: code_pb2.UNIMPLEMENTED,
          413: code_pb2.RESOURCE_EXHAUSTED, 415: code_pb2.INVALID_ARGUMENT, 503: code_pb2.UNAVAILABLE}


def _encode(message: Message, json_body: bool, status: int = 200, headers: dict | None = None) -> Response:
    body = json_format.MessageToJson(message, indent=None).encode() if json_body else message.SerializeToString()
    return Response(body, status, headers=headers, media_type=JSON if json_body else PROTOBUF)


def _status(http_status: int, message: str, json_body: bool, headers: dict | None = None) -> Response:
    status = status_pb2.Status(code=_CODES.get(http_status, code_pb2.UNKNOWN), message=message)
    return _encode(status, json_body, http_status, headers)


async def _read_body(request: Request, limit: int, budget: InflightBudget) -> tuple[bytes, int]:
    """The request body, gunzipped if needed, and the bytes reserved for it in `budget`.

    TooLarge past `limit` bytes (before or after decompression); Overloaded past the budget.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    parts, size = [], 0
    try:
        async for chunk in request.stream():
            if inflater is not None:
                chunk = inflater.decompress(chunk, limit + 1 - size)
                if inflater.unconsumed_tail:
                    raise TooLarge(f"decompressed body is over the {limit} byte limit")
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body is over the {limit} byte limit")
            budget.take(len(chunk), own=size - len(chunk))
            parts.append(chunk)
        if inflater is not None and not inflater.eof:
            raise BadRequest("gzip body is truncated")
    except zlib.error as exc:
        budget.give(sum(map(len, parts)))
        raise BadRequest(f"body is not valid gzip: {exc}") from None
    except CollectorError:
        budget.give(sum(map(len, parts)))
        raise
    return b"".join(parts), size


def create_otlp_app(writers: dict[str, Writer], budget: InflightBudget, token: str | None = None,
                    max_body_bytes: int = 64 * 1024 * 1024, api: ASGIApp | None = None,
                    api_prefix: str = "/api/v1", limits: AttributeLimits = DEFAULT_LIMITS) -> Starlette:
    """The OTLP/HTTP app; `writers` maps signal name ("traces", "logs") to its writer; `api` is mounted
    at `api_prefix` (see `llmloop.collector.api`)."""

    def authorized(request: Request) -> bool:
        if not token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def accept(signal: Signal, body: bytes, json_body: bool) -> Decoded:
        decoded = decode(signal, body, json_body, limits)
        writers[signal.name].submit(decoded.payload, decoded.accepted)
        return decoded

    def endpoint(signal: Signal):
        async def export(request: Request) -> Response:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            json_body = media == JSON
            if not authorized(request):
                return _status(401, "missing or wrong bearer token", json_body,
                               {"WWW-Authenticate": "Bearer"})
            if media not in (PROTOBUF, JSON):
                return _status(415, f"Content-Type must be {PROTOBUF} or {JSON}, got {media!r}", False)
            try:
                body, reserved = await _read_body(request, max_body_bytes, budget)
                try:
                    # Decoding and the spool's fsync block: keep them off the event loop.
                    decoded = await run_in_threadpool(accept, signal, body, json_body)
                finally:
                    budget.give(reserved)
            except Overloaded as exc:
                return _status(503, str(exc), json_body, {"Retry-After": str(max(1, round(exc.retry_after)))})
            except CollectorError as exc:
                return _status(exc.http_status, str(exc), json_body)
            return _encode(decoded.response(signal), json_body)

        return export

    async def metrics(request: Request) -> Response:
        json_body = request.headers.get("content-type", "").startswith(JSON)
        return _status(404, "llmloop does not store OTLP metrics; send traces and logs only", json_body)

    routes = [
        Route("/v1/traces", endpoint(TRACES), methods=["POST"]),
        Route("/v1/logs", endpoint(LOGS), methods=["POST"]),
        Route("/v1/metrics", metrics, methods=["POST"]),
    ]
    if api is not None:
        routes.append(Mount(api_prefix, app=api))
    return Starlette(routes=routes)
