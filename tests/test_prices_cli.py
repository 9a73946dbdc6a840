"""`llmloop prices load / list / missing` against a running collector: an override reprices history."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import Collector
from tests.test_cost import call, tokens

LLMLOOP = [sys.executable, "-c", "from llmloop.cli import main; main()"]


def run(collector: Collector, *args: str, admin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMLOOP_URL": collector.http_url, "LLMLOOP_TOKEN": collector.token or ""}
    if admin:
        env["LLMLOOP_ADMIN_TOKEN"] = admin
    return subprocess.run([*LLMLOOP, "prices", *args], capture_output=True, text=True, timeout=60, env=env)


def test_load_list_and_missing(new_collector, tmp_path) -> None:
    collector = new_collector("--admin-token", "boss")
    assert call(collector, "2025-11-01", tokens("claude-sonnet-4-5", "anthropic", 1_000_000, 0))["CostUsd"] == 3.0
    assert call(collector, "2025-11-01", tokens("house-model-1", "acme", 1_000_000, 0))["CostUsd"] is None

    missing = run(collector, "missing", "--days", "3650")
    assert missing.returncode == 0, missing.stderr
    assert "house-model-1" in missing.stdout

    override = tmp_path / "prices.toml"
    override.write_text('[[price]]\nmodel = "claude-sonnet-4-5"\nprovider = "anthropic"\n'
                        'effective_from = 2025-09-29\ninput = 2\noutput = 10\n\n'
                        '[[price]]\nmodel = "house-model-1"\nprovider = "acme"\n'
                        'effective_from = 2025-01-01\ninput = 0.5\noutput = 1\n')
    refused = run(collector, "load", str(override))  # without the admin token: refused
    assert refused.returncode == 1 and "admin token" in refused.stderr
    loaded = run(collector, "load", str(override), admin="boss")
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 2 price row(s)" in loaded.stdout

    costs = {row["RequestModel"] or row["ResponseModel"]: row["CostUsd"] for row in collector.sql(
        "SELECT RequestModel, ResponseModel, CostUsd FROM llmloop.genai_calls WHERE ServiceName = 'cost'")}
    assert costs == {"claude-sonnet-4-5": 2.0, "house-model-1": 0.5}  # history repriced, no backfill
    listed = run(collector, "list", "claude-sonnet-4-5")
    assert listed.returncode == 0 and "claude-sonnet-4-5*" in listed.stdout
    assert "house-model-1" not in run(collector, "missing", "--days", "3650").stdout


def test_a_bad_file_is_refused_with_the_reason_and_changes_nothing(new_collector, tmp_path) -> None:
    collector = new_collector()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[price]]\nmodel = "m"\nprovider = "p"\neffective_from = 2025-01-01\ninput = -1\noutput = 1\n')
    result = run(collector, "load", str(bad))
    assert result.returncode == 1
    assert "'input' must be a finite price >= 0" in result.stderr
    assert collector.sql("SELECT count() AS n FROM llmloop.prices WHERE layer = 'user'") == [{"n": 0}]
