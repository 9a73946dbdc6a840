"""The zero-code entrypoint end to end, and the config crossing a process boundary in W3C baggage.

Programs with no OTel code run under `llmloop-instrument` against the fake provider and a real
`llmloop serve`; their calls are read back from `llmloop.spans`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path

import pytest
from opentelemetry import propagate

from llmloop.instrumentation import use_config
from llmloop.instrumentation.cli import BOOTSTRAP, build_parser, child_environment
from tests.conftest import Collector
from tests.instrumentation.conftest import FakeProvider

APP = textwrap.dedent("""
    import os, sys
    import anthropic, openai
    url = os.environ["FAKE_URL"]
    usage = {"x-fake-usage": "input=11,output=7,cache_read=5,cache_creation=3"}
    client = anthropic.Anthropic(base_url=url, api_key="test")
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=50, system="be brief",
                                     messages=[{"role": "user", "content": "hi there"}], extra_headers=usage)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, extra_headers=usage,
                                messages=[{"role": "user", "content": "stream please"}]) as stream:
        stream.until_done()
    chat = openai.OpenAI(base_url=url + "/v1", api_key="test")
    chunks = list(chat.chat.completions.create(model="gpt-4o-mini", stream=True, extra_headers=usage,
                                               messages=[{"role": "user", "content": "yo"}]))
    print(message.content[0].text, len(chunks), sys.argv[1:])
    sys.exit(3)
""")

SERVER = textwrap.dedent("""
    import http.server, json, os, sys
    import anthropic
    from opentelemetry import context, propagate
    client = anthropic.Anthropic(base_url=os.environ["FAKE_URL"], api_key="test")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            carrier = {k.lower(): v for k, v in self.headers.items()}
            token = context.attach(propagate.extract(carrier))  # what server instrumentation does
            try:
                message = client.messages.create(model="claude-haiku-4-5", max_tokens=20,
                                                 messages=[{"role": "user", "content": "downstream"}])
            finally:
                context.detach(token)
            body = json.dumps({"text": message.content[0].text}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.handle_request()
""")


def instrument_command() -> list[str]:
    script = shutil.which("llmloop-instrument")
    return [script] if script else [sys.executable, "-m", "llmloop.instrumentation.cli"]


def environment(collector: Collector, fake_provider: FakeProvider) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLOOP_"))}
    return {**env, "FAKE_URL": fake_provider.base_url, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_url,
            "OTEL_METRICS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "200"}


def test_entrypoint_end_to_end(collector: Collector, fake_provider: FakeProvider, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    service = f"e2e-{uuid.uuid4().hex[:8]}"
    run = subprocess.run([*instrument_command(), "--service-name", service, "--config-id", "support@2026-06-03.1",
                          sys.executable, str(app), "--flag", "x y"],
                         env=environment(collector, fake_provider), capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr  # the program's own exit code
    assert run.stdout.strip() == "echo: hi there 4 ['--flag', 'x y']"  # its own output and arguments
    rows = collector.wait_rows(
        "SELECT ScopeName, Provider, RequestModel, ConfigId, ConfigFingerprint, InputTokens, OutputTokens, "
        "CacheReadTokens, TimeToFirstChunk, FinishReasons, SpanAttributes['gen_ai.request.stream'] AS stream "
        f"FROM llmloop.spans WHERE ServiceName = '{service}' ORDER BY Timestamp", 3, timeout=30)
    assert len(rows) == 3, rows
    created, streamed, chat = rows
    for row in rows:
        assert row["ConfigId"] == "support@2026-06-03.1"
        assert len(row["ConfigFingerprint"]) == 16
        assert row["OutputTokens"] == 7
    # anthropic traces natively: its spans are the SDK's own, enriched by llmloop (no duplicates).
    assert created["ScopeName"] == streamed["ScopeName"] == "com.anthropic.sdk.python"
    assert created["InputTokens"] == 19 and created["CacheReadTokens"] == 5
    assert created["FinishReasons"] == ["end_turn"]
    assert streamed["stream"] == "true" and streamed["TimeToFirstChunk"] > 0
    assert created["ConfigFingerprint"] != streamed["ConfigFingerprint"]  # system prompt differs
    assert chat["ScopeName"] == "llmloop.instrumentation" and chat["Provider"] == "openai"
    assert chat["InputTokens"] == 11  # usage of a streamed chat call, which the app did not ask for


def test_config_travels_in_baggage_to_a_downstream_process(collector: Collector, fake_provider: FakeProvider,
                                                           tmp_path: Path) -> None:
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    service = f"downstream-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen([*instrument_command(), "--service-name", service, sys.executable, str(server)],
                               env=environment(collector, fake_provider), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        headers: dict[str, str] = {"content-type": "application/json"}
        with use_config("upstream-cfg@2", rollout="triage", arm="canary"):
            propagate.inject(headers)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())["text"] == "echo: downstream"
        assert process.wait(60) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    rows = collector.wait_rows(f"SELECT ConfigId, RolloutName, RolloutArm FROM llmloop.spans "
                               f"WHERE ServiceName = '{service}'", 1, timeout=30)
    assert rows == [{"ConfigId": "upstream-cfg@2", "RolloutName": "triage", "RolloutArm": "canary"}]


def test_program_runs_even_when_llmloop_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(BOOTSTRAP), "PYTHONNOUSERSITE": "1"}
    run = subprocess.run([sys.executable, "-S", "-c", "import sitecustomize; print('still here')"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "still here"
    assert "tracing is off" in run.stderr


def test_cli_environment_and_errors() -> None:
    parser = build_parser()
    args = parser.parse_args(["--service-name", "svc", "--config-id", "c@1", "--capture-content", "SPAN_ONLY",
                              "python", "app.py", "--service-name", "not-ours"])
    assert args.command == ["python", "app.py", "--service-name", "not-ours"]
    env = child_environment(args, {"PYTHONPATH": "/x"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOTSTRAP), "/x"]
    assert env["OTEL_SERVICE_NAME"] == "svc" and env["LLMLOOP_CONFIG_ID"] == "c@1"
    assert env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "SPAN_ONLY"
    run = subprocess.run([*instrument_command()], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "give the program to run" in run.stderr
    run = subprocess.run([*instrument_command(), "no-such-program-xyz"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 127


def test_entry_points_are_registered() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="opentelemetry_instrumentor")}
    assert found.get("llmloop_anthropic") == "llmloop.instrumentation.instrumentor:AnthropicInstrumentor"
    assert found.get("llmloop_openai") == "llmloop.instrumentation.instrumentor:OpenAIInstrumentor"
    instrumentor = __import__("llmloop.instrumentation.instrumentor", fromlist=["x"]).AnthropicInstrumentor()
    assert any(dep.startswith("anthropic") for dep in instrumentor.instrumentation_dependencies())


@pytest.mark.parametrize("disabled", ["llmloop_openai", "openai"])
def test_disabled_instrumentations(monkeypatch: pytest.MonkeyPatch, disabled: str) -> None:
    from llmloop.instrumentation.agent import enabled_providers

    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", f"foo, {disabled}")
    assert enabled_providers() == ["anthropic"]
