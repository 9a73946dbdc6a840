"""A small stdlib HTTP client for the collector's `/api/v1` (rollout state, feedback).

The collector serves its API on the OTLP/HTTP port. `resolve_url` finds it the way the router and
`feedback` do: `LLMLOOP_URL`, else the host of `OTEL_EXPORTER_OTLP_ENDPOINT` on port 4318, else
`http://127.0.0.1:4318`; the bearer token comes from `LLMLOOP_TOKEN`. One `Connection` is one
keep-alive HTTP connection used by one thread; `interrupt()` (from another thread) ends a request
blocked in a long poll.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import urllib.parse
from typing import Any

ENV_URL = "LLMLOOP_URL"
"""Environment variable: the collector's HTTP base URL (its OTLP/HTTP port), e.g. `http://collector:4318`."""

ENV_TOKEN = "LLMLOOP_TOKEN"
"""Environment variable: the bearer token the collector was started with (`--token`)."""

DEFAULT_URL = "http://127.0.0.1:4318"
API = "/api/v1"


def resolve_url(url: str | None = None) -> str:
    """The collector's base URL: `url`, else `LLMLOOP_URL`, else OTLP endpoint host:4318, else the local default."""
    if url or os.environ.get(ENV_URL, "").strip():
        return (url or os.environ[ENV_URL]).strip().rstrip("/")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return f"{'https' if parts.scheme == 'https' else 'http'}://{host}:4318"
    return DEFAULT_URL


def resolve_token(token: str | None = None) -> str | None:
    """The bearer token: `token`, else `LLMLOOP_TOKEN`, else None."""
    return token or os.environ.get(ENV_TOKEN, "").strip() or None


class Connection:
    """One keep-alive connection to the collector's API, used by one thread at a time."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"llmloop collector URL must look like http://host:4318, not {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/") + API
        self._headers = {"Accept": "application/json", "User-Agent": "llmloop"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
        """(status, lower-cased headers, decoded JSON body or None). OSError / HTTPException on network trouble."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        all_headers = {**self._headers, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        conn = self._connect(timeout)
        try:
            conn.request(method, self._prefix + path, data, all_headers)
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        payload = None
        if raw and "json" in (resp.getheader("content-type") or ""):
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._conn = kind(self._host, self._port, timeout=timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def interrupt(self) -> None:
        """Wake a request blocked on this connection (it fails with an OSError). Safe from any thread."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def error_message(status: int, payload: Any) -> str:
    """The collector's `{"error": ...}` text, or a generic one."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return payload["error"]
    return http.client.responses.get(status, "unexpected status")
