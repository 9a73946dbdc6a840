"""The collector's error kinds: bad input (the client must not retry) vs. retryable overload, and a store
that refuses the collector at start-up."""

from __future__ import annotations


class CollectorError(Exception):
    """Base of the collector's own errors; `http_status` and `grpc_code` say how to answer."""

    http_status = 500
    grpc_code = "INTERNAL"


class BadRequest(CollectorError):
    """The request cannot be decoded; retrying it will not help."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class TooLarge(CollectorError):
    """The request is over the size limit after decompression."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Overloaded(CollectorError):
    """The write queue is full; the client should retry after `retry_after` seconds."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreRefused(Exception):
    """The store answers but refuses (a missing database, wrong credentials): waiting will not help."""
