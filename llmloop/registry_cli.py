"""`llmloop config ...` and `llmloop rollout ...`: the registry API of a running collector, from a shell.

Talks to `/api/v1` on the collector's HTTP port with the standard library only (the base install).
Reads send `--token`; writes send `--admin-token`, else `--token`.
"""

from __future__ import annotations

import difflib
import getpass
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:4318"


class ApiFailure(click.ClickException):
    """The API refused a request; `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Api:
    """Where the collector is and which tokens to send."""

    url: str
    token: str | None = None
    admin_token: str | None = None

    def call(self, method: str, path: str, body: Any = None, write: bool = False,
             query: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded JSON) of an API call; ApiFailure with the API's message on an error status."""
        url = f"{self.url.rstrip('/')}/api/v1{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        token = (self.admin_token or self.token) if write else self.token
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if isinstance(body, bytes):  # a file sent as it is (prices)
            data, headers["Content-Type"] = body, "application/toml"
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiFailure(exc.code, _error_text(exc)) from None
        except urllib.error.URLError as exc:
            raise ApiFailure(0, f"cannot reach the collector at {self.url} ({exc.reason}): start `llmloop serve`, "
                                "or pass --url (env LLMLOOP_URL)") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    raw = exc.read()
    try:
        message = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace").strip() or exc.reason
    if exc.code == 401:
        return f"{message} (pass --token / --admin-token, or set LLMLOOP_TOKEN / LLMLOOP_ADMIN_TOKEN)"
    return str(message)


def _path(part: str) -> str:
    return urllib.parse.quote(part, safe="@")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return ""


def api_options(write: bool) -> Callable:
    """--url and --token (and --admin-token for writes), passed to the command as `api`."""

    def decorate(command: Callable) -> Callable:
        options = [
            click.option("--url", envvar="LLMLOOP_URL", default=DEFAULT_URL, show_default=True,
                         help="The collector's HTTP address (its OTLP/HTTP port). Env: LLMLOOP_URL."),
            click.option("--token", envvar="LLMLOOP_TOKEN", default=None,
                         help="The collector's --token. Env: LLMLOOP_TOKEN."),
        ]
        if write:
            options.append(click.option("--admin-token", envvar="LLMLOOP_ADMIN_TOKEN", default=None,
                                        help="The collector's --admin-token (default: --token). "
                                             "Env: LLMLOOP_ADMIN_TOKEN."))

        def run(url: str, token: str | None, admin_token: str | None = None, **kwargs: Any) -> Any:
            return command(api=Api(url, token, admin_token), **kwargs)

        run.__name__, run.__doc__ = command.__name__, command.__doc__
        for option in reversed(options):
            run = option(run)
        return run

    return decorate


def json_option(command: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")(command)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# config


@click.group()
def config() -> None:
    """Publish and inspect versioned configs.

    A config is an immutable prompt + model + params, published once under its id. A config file
    (TOML or YAML) holds one config: id (name@version), provider, model (a pinned, dated snapshot),
    prompt (named templates), params, and optionally tools, retrieval, metadata and description.
    """


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@api_options(write=True)
def publish(api: Api, files: tuple[Path, ...]) -> None:
    """Publish config FILES (.toml, .yaml). The same content again is a no-op; other content under a
    published id is refused (exit code 1)."""
    from llmloop import configfile

    refused = 0
    for path in files:
        try:
            document = configfile.load(path)
        except configfile.ConfigFileError as exc:
            click.echo(f"refused    {path}: {exc}")
            refused += 1
            continue
        if configfile.floating_alias(document.get("model")):
            click.echo(f"warning: {path}: model {document['model']!r} looks like a floating alias; pin a dated "
                       "snapshot (e.g. claude-sonnet-4-5-20250929) so the config keeps meaning the same model",
                       err=True)
        try:
            status, stored = api.call("POST", "/configs", document, write=True, query={"publisher": _actor()})
        except ApiFailure as exc:
            if exc.status in (0, 401):
                raise
            click.echo(f"refused    {path}: {exc.message}")
            refused += 1
            continue
        click.echo(f"{'created' if status == 201 else 'unchanged':<10} {stored['id']}  ({path})")
    if refused:
        raise SystemExit(1)


@config.command(name="list")
@click.argument("name", required=False, default="")
@json_option
@api_options(write=False)
def list_configs(api: Api, name: str, as_json: bool) -> None:
    """List published configs, newest first (only versions of NAME if given)."""
    _, configs = api.call("GET", "/configs", query={"name": name} if name else None)
    if as_json:
        return print_json(configs)
    table([[c["id"], c["model"], c["published"], c["publisher"] or "-", c["content_hash"][:12]] for c in configs],
           ["ID", "MODEL", "PUBLISHED", "PUBLISHER", "SHA256"])


def _document(record: dict[str, Any]) -> dict[str, Any]:
    server = ("name", "version", "content_hash", "fingerprint", "published", "publisher")
    return {key: value for key, value in record.items() if key not in server}


@config.command()
@click.argument("config_id", metavar="ID")
@json_option
@api_options(write=False)
def show(api: Api, config_id: str, as_json: bool) -> None:
    """Print config ID as YAML (the server's fields as a comment)."""
    from llmloop import configfile

    _, record = api.call("GET", f"/configs/{_path(config_id)}")
    if as_json:
        return print_json(record)
    click.echo(f"# published {record['published']} by {record['publisher'] or '-'}; sha256 {record['content_hash']}; "
               f"fingerprint {record['fingerprint'] or '-'}")
    click.echo(configfile.render(_document(record)), nl=False)


@config.command()
@click.argument("first", metavar="ID1")
@click.argument("second", metavar="ID2")
@api_options(write=False)
def diff(api: Api, first: str, second: str) -> None:
    """Unified diff of configs ID1 and ID2, rendered as YAML."""
    from llmloop import configfile

    texts = [configfile.render(_document(api.call("GET", f"/configs/{_path(i)}")[1])) for i in (first, second)]
    lines = list(difflib.unified_diff(texts[0].splitlines(keepends=True), texts[1].splitlines(keepends=True),
                                      fromfile=first, tofile=second))
    if not lines:
        click.echo(f"{first} and {second} have the same content")
    sys.stdout.writelines(lines)


# rollout


@click.group()
def rollout() -> None:
    """Canary, promote and roll back configs.

    A rollout is named after a config name and routes between its versions: a weight of traffic
    goes to a canary (another version may run as a shadow), promoted step by step, rolled back at
    once. Its state is derived from an append-only event history.
    """


def _weight(value: float) -> str:
    return f"{value:g}%"


def _print_state(state: dict[str, Any]) -> None:
    control = state["control"]["id"] if state["control"] else "-"
    click.echo(f"rollout {state['name']}  (version {state['version']}, updated {state['updated']}"
               f"{', PAUSED' if state['paused'] else ''})")
    click.echo(f"  control  {control}  {_weight(100 - state['weight'])}")
    if state["canary"]:
        steps = " -> ".join(_weight(step) for step in state["steps"])
        click.echo(f"  canary   {state['canary']['id']}  {_weight(state['weight'])}  (steps {steps})")
    if state["shadow"]:
        click.echo(f"  shadow   {state['shadow']['id']}  (runs beside the control, not served)")


def _action(api: Api, name: str, action: str, body: dict[str, Any]) -> None:
    _, state = api.call("POST", f"/rollouts/{_path(name)}/{action}", {"actor": _actor(), **body}, write=True)
    _print_state(state)


@rollout.command()
@click.argument("name")
@click.option("--canary", required=True, metavar="ID", help="Config id to roll out (a version of NAME).")
@click.option("--control", metavar="ID", help="Config id serving now; needed for the first rollout of NAME.")
@click.option("--weight", type=float, help="Canary share in percent  [default: the first step]")
@click.option("--steps", default="5,25,50,100", show_default=True, help="Weights promote moves through.")
@click.option("--shadow", metavar="ID", help="Config id run beside the control on the same input, not served.")
@click.option("--reason", default="", help="Why (kept in the history).")
@api_options(write=True)
def start(api: Api, name: str, canary: str, control: str | None, weight: float | None, steps: str,
          shadow: str | None, reason: str) -> None:
    """Start a canary of config NAME."""
    try:
        plan = [float(step) for step in steps.split(",")]
    except ValueError:
        raise click.BadParameter("use numbers separated by commas, e.g. 5,25,100", param_hint="--steps") from None
    _action(api, name, "start", {"canary": canary, "control": control, "weight": weight, "steps": plan,
                                 "shadow": shadow, "reason": reason})


@rollout.command()
@click.argument("name", required=False)
@json_option
@api_options(write=False)
def status(api: Api, name: str | None, as_json: bool) -> None:
    """Show rollout NAME, or all rollouts."""
    _, result = api.call("GET", f"/rollouts/{_path(name)}" if name else "/rollouts")
    if as_json:
        return print_json(result)
    if name:
        return _print_state(result)
    table([[s["name"], s["control"]["id"] if s["control"] else "-", s["canary"]["id"] if s["canary"] else "-",
             _weight(s["weight"]), s["shadow"]["id"] if s["shadow"] else "-",
             "paused" if s["paused"] else ("active" if s["canary"] else "-")] for s in result],
           ["NAME", "CONTROL", "CANARY", "WEIGHT", "SHADOW", "STATE"])


def _simple(action: str, help_text: str, reason_required: bool = False) -> None:
    @rollout.command(name=action, help=help_text)
    @click.argument("name")
    @click.option("--reason", required=reason_required, help="Why (kept in the history).")
    @api_options(write=True)
    def command(api: Api, name: str, reason: str | None) -> None:
        _action(api, name, action, {"reason": reason or ""})


_simple("promote", "Move the canary of NAME to its next step; past the last step it becomes the control.")
_simple("rollback", "Serve the control of NAME at 100% now: canary and shadow are dropped.", reason_required=True)
_simple("pause", "Hold automatic promotion of the canary of NAME (routing is unchanged).")
_simple("resume", "Allow automatic promotion of the canary of NAME again.")


@rollout.command()
@click.argument("name")
@json_option
@api_options(write=False)
def history(api: Api, name: str, as_json: bool) -> None:
    """List the events of rollout NAME, oldest first."""
    _, events = api.call("GET", f"/rollouts/{_path(name)}/history")
    if as_json:
        return print_json(events)
    rows = []
    for event in events:
        details = [f"{key}={event[key]}" for key in ("control", "canary", "shadow") if event[key]]
        if event["action"] in ("start", "step"):
            details.append(f"weight={_weight(event['weight'])}")
        if event["action"] == "start":
            details.append("steps=" + ",".join(f"{step:g}" for step in event["steps"]))
        rows.append([str(event["seq"]), event["time"], event["action"], event["actor"] or "-", " ".join(details),
                     event["reason"]])
    table(rows, ["SEQ", "TIME", "ACTION", "ACTOR", "DETAILS", "REASON"])
