"""SQL as files: every statement llmloop runs lives here and is loaded by name.

Two kinds of parameters, never mixed: *structure* (database, cluster, engines, TTLs) is rendered
from a `Layout` with `{{name}}` placeholders; *values* are bound by ClickHouse as `{name:Type}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["Layout", "load", "migrations", "render"]

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_CLUSTER_BLOCK = re.compile(r"^-- if cluster\n(.*?)^-- end\n", re.S | re.M)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Layout:
    """Structure the schema is rendered with; values here are identifiers or day counts only."""

    database: str = "llmloop"
    cluster: str | None = None
    ttl_days: int = 0  # 0 keeps rows forever
    payload_ttl_days: int = 30  # message content expires first; 0 keeps it as long as the row

    def __post_init__(self) -> None:
        for name in (self.database, self.cluster or "x"):
            if not _IDENT.match(name):
                raise ValueError(f"not a plain identifier: {name!r} (use letters, digits and _)")
        if self.ttl_days < 0 or self.payload_ttl_days < 0:
            raise ValueError("TTL days must be >= 0")

    def variables(self) -> dict[str, str]:
        clustered = self.cluster is not None
        return {
            "db": self.database,
            "cluster": f"'{self.cluster}'" if clustered else "",
            "on_cluster": f"ON CLUSTER '{self.cluster}'" if clustered else "",
            "replicated": "Replicated" if clustered else "",
            "local": "_local" if clustered else "",
            "ttl": f"TTL toDateTime(Timestamp) + INTERVAL {self.ttl_days} DAY" if self.ttl_days else "",
            "payload_ttl": (
                f"TTL toDateTime(Timestamp) + INTERVAL {self.payload_ttl_days} DAY"
                if self.payload_ttl_days
                else ""
            ),
            "otlp_attributes": load("schema/otlp_attributes.type").strip(),
        }


@cache
def load(name: str) -> str:
    """The text of `queries/<name>` (e.g. `schema/0002_spans.sql`)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def render(text: str, layout: Layout) -> list[str]:
    """Statements of `text` with structure placeholders filled; cluster-only blocks kept if clustered."""
    text = _CLUSTER_BLOCK.sub("", text) if layout.cluster is None else _CLUSTER_BLOCK.sub(r"\1", text)
    variables = layout.variables()

    def fill(match: re.Match[str]) -> str:
        return variables[match.group(1)]

    text = _PLACEHOLDER.sub(fill, text)
    statements = []
    for chunk in re.split(r";\s*$", text, flags=re.M):
        body = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("--"))
        if body.strip():
            statements.append(re.sub(r"[ \t]+", " ", body.strip()))
    return statements


def migrations() -> list[tuple[int, str]]:
    """(version, file name) of every schema migration, in order."""
    found = []
    for entry in resources.files(__name__).joinpath("schema").iterdir():
        match = re.match(r"^(\d{4})_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name))
    return sorted(found)
