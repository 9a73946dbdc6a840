"""Configs: the published document, its content hash and fingerprint, and the `configs` table.

A config is immutable: an id (`name@version`) names one document forever. Publishing the same
content again is a no-op; other content under a published id is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmloop import queries
from llmloop.collector.api.rollouts import NAME, iso_ms
from llmloop.collector.store import write_settings
from llmloop.queries import Layout
from llmloop.semconv.fingerprint import canonical_json, fingerprint

_VERSION = re.compile(r"\S+")
_PLACEHOLDER = re.compile(r"\{\{?\s*[A-Za-z_]")  # `{name}`, `{{ name }}`: a template, not the prompt sent
_COLUMNS = ["id", "name", "version", "content_hash", "document", "provider", "model", "fingerprint", "description",
            "published", "publisher"]


class ConfigDocument(BaseModel):
    """A config as published: what a config file holds."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=200, description="name@version, e.g. support-triage@2026-06-03.1",
                    examples=["support-triage@2026-06-03.1"])
    provider: str = Field(min_length=1, description="gen_ai.provider.name, e.g. anthropic, openai")
    model: str = Field(min_length=1, description="a pinned, dated model snapshot")
    prompt: dict[str, str] = Field(description="named prompt templates, e.g. system and template")
    params: dict[str, Any] = Field(default_factory=dict, description="request parameters (temperature, ...)")
    tools: list[Any] | None = None
    retrieval: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    description: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        name, at, version = value.partition("@")
        if not (at and NAME.fullmatch(name) and _VERSION.fullmatch(version)):
            raise ValueError(f"must look like name@version (name: lowercase letters, digits, '.', '_' and '-', "
                             f"starting with a letter or digit; version: no spaces), got {value!r}")
        return value

    def canonical(self) -> dict[str, Any]:
        """The document as stored and hashed: unset optional fields left out, params always present."""
        return self.model_dump(exclude_none=True)


def content_hash(document: dict[str, Any]) -> str:
    """sha256 hex of the document's canonical JSON."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def config_fingerprint(document: dict[str, Any]) -> str | None:
    """The `llmloop.config.fingerprint` spans made with this config carry, when the config fixes it.

    Not computable (None) when the system prompt is a template, since the text sent is then unknown.
    """
    system = document["prompt"].get("system", "")
    if _PLACEHOLDER.search(system):
        return None
    return fingerprint(document["provider"], document["model"], [system] if system else [], document["params"],
                       document.get("tools"))


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API returns it: the document plus what the server added."""
    return {**json.loads(row["document"]), "name": row["name"], "version": row["version"],
            "content_hash": row["content_hash"], "fingerprint": row["fingerprint"] or None,
            "published": iso_ms(row["published_ms"]), "publisher": row["publisher"]}


class ConfigStore:
    """Published configs in `<db>.configs`; blocking calls (run them in a thread)."""

    def __init__(self, client: Client, layout: Layout) -> None:
        self._client = client
        self._table = f"{layout.database}.configs"
        self._insert_settings = write_settings(layout)
        self._get_sql = queries.render(queries.load("registry/config_get.sql"), layout)[0]
        self._list_sql = queries.render(queries.load("registry/config_list.sql"), layout)[0]
        self._lock = threading.Lock()  # publish is check-then-insert
        self._cache: dict[str, dict[str, Any]] = {}  # published configs never change

    def get(self, config_id: str) -> dict[str, Any] | None:
        """The config `config_id` as the API returns it, or None."""
        if config_id not in self._cache:
            rows = list(self._client.query(self._get_sql, parameters={"id": config_id}).named_results())
            if not rows:
                return None
            self._cache[config_id] = _record(rows[0])
        return self._cache[config_id]

    def list(self, name: str = "") -> list[dict[str, Any]]:
        """Published configs, newest first; of one config name if given."""
        return [_record(row) for row in self._client.query(self._list_sql, parameters={"name": name}).named_results()]

    def publish(self, config: ConfigDocument, publisher: str) -> tuple[bool, dict[str, Any]]:
        """(created, stored config). ConfigConflict if the id holds other content."""
        document = config.canonical()
        digest = content_hash(document)
        with self._lock:
            existing = self.get(config.id)
            if existing is not None:
                if existing["content_hash"] != digest:
                    raise ConfigConflict(
                        f"config {config.id} was published on {existing['published']} with other content "
                        f"(sha256 {existing['content_hash'][:12]}, this one {digest[:12]}); configs are immutable: "
                        "publish the change under a new version (the part of the id after '@')")
                return False, existing
            name, _, version = config.id.partition("@")
            row = [config.id, name, version, digest, canonical_json(document), config.provider, config.model,
                   config_fingerprint(document) or "", config.description or "", datetime.now(timezone.utc), publisher]
            self._client.insert(self._table, [row], column_names=_COLUMNS, settings=self._insert_settings)
            return True, self.get(config.id)


class ConfigConflict(Exception):
    """A published id asked to hold other content."""
