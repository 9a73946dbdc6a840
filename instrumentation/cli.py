"""`llmloop-instrument`: run a Python program with llmloop tracing, no code changes.

    llmloop-instrument [--service-name NAME] python app.py args...

Like `opentelemetry-instrument`: it puts a `sitecustomize` on `PYTHONPATH` that sets up the OTel tracer
and meter providers (OTLP to the llmloop collector at http://127.0.0.1:4318 unless the standard
`OTEL_EXPORTER_OTLP_*` variables say otherwise) and patches the anthropic and openai SDKs, then replaces
itself with the program (`exec`), whose arguments, stdin/stdout and exit code are untouched.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

BOOTSTRAP = Path(__file__).resolve().parent / "_bootstrap"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmloop-instrument",
        description="Run a Python program with llmloop's GenAI tracing (anthropic, openai), no code changes.",
        epilog="Standard OTEL_* variables apply (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, "
               "OTEL_RESOURCE_ATTRIBUTES, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, ...); "
               "LLMLOOP_CONFIG_ID sets the default config id.")
    parser.add_argument("--service-name", help="service.name of the program's telemetry (OTEL_SERVICE_NAME)")
    parser.add_argument("--config-id", help="default config id of the program's model calls (LLMLOOP_CONFIG_ID)")
    parser.add_argument("--capture-content", choices=["NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT"],
                        help="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program to run, e.g. python app.py")
    return parser


def child_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The program's environment: the bootstrap first on PYTHONPATH, plus what the flags set."""
    env = dict(environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(BOOTSTRAP), *([path] if path else [])])
    if args.service_name:
        env["OTEL_SERVICE_NAME"] = args.service_name
    if args.config_id:
        env["LLMLOOP_CONFIG_ID"] = args.config_id
    if args.capture_content:
        env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = args.capture_content
    return env


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `llmloop-instrument` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the program to run, e.g. llmloop-instrument python app.py")
    executable = shutil.which(command[0])
    if executable is None:
        parser.exit(127, f"llmloop-instrument: {command[0]}: command not found\n")
    os.execve(executable, command, child_environment(args, dict(os.environ)))


if __name__ == "__main__":
    main()
