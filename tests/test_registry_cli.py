"""`llmloop config ...` and `llmloop rollout ...` against a running collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Collector
from tests.test_registry_api import unique_name

LLMLOOP = [sys.executable, "-c", "from llmloop.cli import main; main()"]

TOML = '''id = "{id}"
description = "Routes support tickets to a queue"
provider = "anthropic"
model = "{model}"

[prompt]
system = """
You triage support tickets.
Answer with one queue name.
"""
template = "Ticket: {{ticket}}"

[params]
temperature = 0.2
max_tokens = 512

[metadata]
owner = "support"
reviewed = 2026-06-03
'''

YAML = '''id: {id}
provider: anthropic
model: {model}
prompt:
  system: |
    You triage support tickets.
    Answer with one queue name, then a reason.
  template: "Ticket: {{ticket}}"
params:
  temperature: 0.2
  max_tokens: 512
'''


def run(collector: Collector, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLMLOOP_")}
    environment |= {"LLMLOOP_URL": collector.http_url, "USER": "alice", **(env or {})}
    return subprocess.run([*LLMLOOP, *args], capture_output=True, text=True, timeout=60, env=environment)


def write(tmp_path: Path, filename: str, template: str, config_id: str, model: str = "claude-sonnet-4-5-20250929"):
    path = tmp_path / filename
    path.write_text(template.format(id=config_id, model=model))
    return path


def test_publish_reports_created_unchanged_and_refused(collector: Collector, tmp_path: Path) -> None:
    name = unique_name()
    first = write(tmp_path, "v1.toml", TOML, f"{name}@1")
    second = write(tmp_path, "v2.yaml", YAML, f"{name}@2", model="claude-sonnet-4-5")
    result = run(collector, "config", "publish", str(first), str(second))
    assert result.returncode == 0, result.stderr
    assert f"created    {name}@1  ({first})" in result.stdout and f"created    {name}@2" in result.stdout
    assert "'claude-sonnet-4-5' looks like a floating alias" in result.stderr
    assert "floating" not in run(collector, "config", "publish", str(first)).stderr  # a dated snapshot

    changed = write(tmp_path, "v1-changed.toml", TOML.replace("one queue name", "a queue"), f"{name}@1")
    broken = tmp_path / "broken.toml"
    broken.write_text("id = [unclosed")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("id: Not An Id\nprovider: x\nmodel: m-20250101\nprompt: {}\n")
    result = run(collector, "config", "publish", str(first), str(changed), str(broken), str(invalid))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"unchanged  {name}@1  ({first})"
    assert lines[1].startswith(f"refused    {changed}: config {name}@1 was published") and "new version" in lines[1]
    assert lines[2].startswith(f"refused    {broken}: cannot be read")
    assert lines[3].startswith(f"refused    {invalid}: id: must look like name@version")
    assert "Traceback" not in result.stderr


def test_list_show_and_diff(collector: Collector, tmp_path: Path) -> None:
    name = unique_name()
    files = [write(tmp_path, "a.toml", TOML, f"{name}@1"), write(tmp_path, "b.yaml", YAML, f"{name}@2")]
    assert run(collector, "config", "publish", *map(str, files)).returncode == 0

    listed = run(collector, "config", "list", name)
    rows = listed.stdout.splitlines()
    assert rows[0].split() == ["ID", "MODEL", "PUBLISHED", "PUBLISHER", "SHA256"]
    assert [row.split()[0] for row in rows[1:]] == [f"{name}@2", f"{name}@1"] and "alice" in rows[1]
    assert [c["id"] for c in json.loads(run(collector, "config", "list", name, "--json").stdout)] == [
        f"{name}@2", f"{name}@1"]

    shown = run(collector, "config", "show", f"{name}@1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# published ") and "by alice" in shown.stdout
    assert f"id: {name}@1\ndescription: Routes support tickets to a queue\nprovider: anthropic\n" in shown.stdout
    assert "  system: |\n    You triage support tickets.\n    Answer with one queue name.\n" in shown.stdout
    assert "reviewed: '2026-06-03'" in shown.stdout  # a TOML date travels as an ISO string
    # What `show` prints publishes as the same config.
    again = tmp_path / "shown.yaml"
    again.write_text(shown.stdout)
    assert run(collector, "config", "publish", str(again)).stdout.startswith("unchanged")

    diff = run(collector, "config", "diff", f"{name}@1", f"{name}@2")
    assert diff.returncode == 0, diff.stderr
    lines = diff.stdout.splitlines()
    assert lines[:2] == [f"--- {name}@1", f"+++ {name}@2"]
    assert "-    Answer with one queue name." in lines and "+    Answer with one queue name, then a reason." in lines
    assert "-description: Routes support tickets to a queue" in lines
    assert "same content" in run(collector, "config", "diff", f"{name}@1", f"{name}@1").stdout

    missing = run(collector, "config", "show", f"{name}@9")
    assert missing.returncode == 1 and f"no config '{name}@9' is published" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_rollout_commands(collector: Collector, tmp_path: Path) -> None:
    name = unique_name()
    files = [write(tmp_path, f"v{v}.toml", TOML.replace("queue name", f"queue name v{v}"), f"{name}@{v}")
             for v in (1, 2, 3)]
    assert run(collector, "config", "publish", *map(str, files)).returncode == 0

    started = run(collector, "rollout", "start", name, "--canary", f"{name}@2", "--control", f"{name}@1",
                  "--steps", "10,50,100", "--shadow", f"{name}@3")
    assert started.returncode == 0, started.stderr
    assert f"rollout {name}  (version 1" in started.stdout
    assert f"control  {name}@1  90%" in started.stdout
    assert f"canary   {name}@2  10%  (steps 10% -> 50% -> 100%)" in started.stdout
    assert f"shadow   {name}@3" in started.stdout

    assert f"canary   {name}@2  50%" in run(collector, "rollout", "promote", name).stdout
    assert "PAUSED" in run(collector, "rollout", "pause", name).stdout
    assert "PAUSED" not in run(collector, "rollout", "resume", name).stdout
    table = run(collector, "rollout", "status").stdout.splitlines()
    assert table[0].split() == ["NAME", "CONTROL", "CANARY", "WEIGHT", "SHADOW", "STATE"]
    assert [f"{name}", f"{name}@1", f"{name}@2", "50%", f"{name}@3", "active"] in [row.split() for row in table]

    no_reason = run(collector, "rollout", "rollback", name)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    rolled = run(collector, "rollout", "rollback", name, "--reason", "refusals up 4%")
    assert rolled.returncode == 0 and f"control  {name}@1  100%" in rolled.stdout and "canary" not in rolled.stdout

    again = run(collector, "rollout", "rollback", name, "--reason", "twice")
    assert again.returncode == 1 and "nothing to roll back" in again.stderr and "Traceback" not in again.stderr
    bad_steps = run(collector, "rollout", "start", name, "--canary", f"{name}@2", "--steps", "5,x")
    assert bad_steps.returncode == 2 and "numbers separated by commas" in bad_steps.stderr

    history = run(collector, "rollout", "history", name).stdout.splitlines()
    assert history[0].split() == ["SEQ", "TIME", "ACTION", "ACTOR", "DETAILS", "REASON"]
    assert [row.split()[2] for row in history[1:]] == ["start", "step", "pause", "resume", "rollback"]
    assert all(row.split()[3] == "alice" for row in history[1:])
    assert f"control={name}@1 canary={name}@2 shadow={name}@3 weight=10% steps=10,50,100" in history[1]
    assert history[-1].endswith("refusals up 4%")
    assert json.loads(run(collector, "rollout", "status", name, "--json").stdout)["version"] == 5


def test_errors_name_the_fix(collector: Collector) -> None:
    unknown = run(collector, "rollout", "status", "no-such-rollout")
    assert unknown.returncode == 1 and "Error: no rollout named 'no-such-rollout'" in unknown.stderr
    down = run(collector, "rollout", "status", env={"LLMLOOP_URL": "http://127.0.0.1:9"})
    assert down.returncode == 1 and "cannot reach the collector" in down.stderr and "llmloop serve" in down.stderr
    assert "Traceback" not in unknown.stderr + down.stderr
    helped = run(collector, "--help").stdout
    assert "config" in helped and "rollout" in helped
    assert "--admin-token" in run(collector, "serve", "--help").stdout


def test_writes_use_the_admin_token_and_fall_back_to_the_token(new_collector: Callable[..., Collector],
                                                                tmp_path: Path) -> None:
    running = new_collector("--admin-token", "admin-secret", token="read-secret")
    path = write(tmp_path, "c.toml", TOML, f"{unique_name()}@1")
    refused = run(running, "config", "publish", str(path), env={"LLMLOOP_TOKEN": "read-secret"})
    assert refused.returncode == 1 and "admin token" in refused.stderr and "--admin-token" in refused.stderr
    published = run(running, "config", "publish", str(path),
                    env={"LLMLOOP_TOKEN": "read-secret", "LLMLOOP_ADMIN_TOKEN": "admin-secret"})
    assert published.returncode == 0 and published.stdout.startswith("created"), published.stderr
    assert run(running, "config", "list", env={"LLMLOOP_TOKEN": "read-secret"}).returncode == 0
    assert run(running, "config", "list").returncode == 1

    open_reads = new_collector(token="only-token")  # no admin token: writes take the token
    assert run(open_reads, "config", "publish", str(path), "--token", "only-token").returncode == 0
