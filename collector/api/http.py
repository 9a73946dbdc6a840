"""What every API route shares: bearer-token checks and `{"error": ...}` answers."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from llmloop.collector.api.configs import ConfigConflict
from llmloop.collector.api.rollouts import RolloutError

_BEARER = HTTPBearer(auto_error=False, description="the collector's --token; for writes its --admin-token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


class ApiError(Exception):
    """An answer other than success: HTTP status and a message saying what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error answer."""
    return JSONResponse({"error": message}, status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """(400 for a body that is not a JSON object, else 422, readable message) of a validation failure."""
    problems, status = [], 422
    for problem in exc.errors():
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        if problem.get("type") == "json_invalid" or (
                not location and problem.get("type") in ("missing", "model_attributes_type", "dict_type")):
            status = 400
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        if problem.get("type") == "extra_forbidden":
            message = "unknown field (check its spelling)"
        problems.append(f"{'.'.join(location)}: {message}" if location else message)
    if status == 400:
        return status, "the body must be a JSON object: " + "; ".join(problems)
    return status, "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answers `{"error": "<what is wrong and what to do>"}`."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, str(exc), exc.headers)

    @app.exception_handler(RolloutError)
    async def rollout_error(request: Request, exc: RolloutError) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(ConfigConflict)
    async def config_conflict(request: Request, exc: ConfigConflict) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(*_validation_message(exc))

    @app.exception_handler(DatabaseError)
    async def store_error(request: Request, exc: DatabaseError) -> JSONResponse:
        return error(503, f"the store failed; retry shortly ({str(exc)[:300]})",
                     {"Retry-After": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if exc.status_code != 404 else f"no such endpoint: {request.url.path}"
        return error(exc.status_code, str(message), exc.headers)


class Auth:
    """Bearer tokens: reads need `token` (the admin token works too); writes need `admin_token`,
    else `token`. A check with no token configured lets everything through."""

    def __init__(self, token: str | None, admin_token: str | None) -> None:
        readers = [t for t in (token, admin_token) if t] if token else []
        writers = [admin_token or token] if admin_token or token else []
        self.read = self._dependency(readers, "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                                              "with the collector's --token (LLMLOOP_TOKEN)")
        self.write = self._dependency(writers, "this changes configs or rollouts and needs the admin token: send "
                                               "'Authorization: Bearer <token>' with the collector's --admin-token "
                                               "(LLMLOOP_ADMIN_TOKEN), or --token if it has none")

    def _dependency(self, accepted: list[str], message: str) -> Callable[..., Awaitable[None]]:
        async def check(credentials: Credentials) -> None:
            if not accepted:
                return
            given = (credentials.credentials if credentials else "").encode()
            # Compare with every accepted token, so timing does not tell which one nearly matched.
            if not any([hmac.compare_digest(given, candidate.encode()) for candidate in accepted]):
                raise ApiError(401, message, {"WWW-Authenticate": "Bearer"})

        return check
