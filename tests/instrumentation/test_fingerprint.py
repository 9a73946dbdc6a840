"""Config fingerprints: stable under what must not matter, sensitive to what defines a config."""

from __future__ import annotations

import re

import pytest

from llmloop.semconv.fingerprint import canonical_json, fingerprint

TOOL = {"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
OTHER_TOOL = {"name": "search", "input_schema": {"type": "object", "properties": {}}}
BASE = {"provider": "anthropic", "model": "claude-sonnet-4-5", "system": ["You are terse."],
        "params": {"max_tokens": 512, "temperature": 0.2}, "tools": [TOOL]}


def fp(**changes: object) -> str:
    args = {**BASE, **changes}
    return fingerprint(args["provider"], args["model"], args["system"], args["params"], args["tools"])  # type: ignore[arg-type]


def test_format_is_16_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", fp())


def test_known_value_is_pinned() -> None:
    # A change to the rules must bump `VERSION`; this pins version 1's output.
    assert fingerprint("openai", "gpt-4o", ["Be brief."], {"temperature": 0.5}, None) == "908e0ccd551cb8ea"
    assert fingerprint("openai", "gpt-4o", ["  Be brief.\r\n"], {"temperature": 0.5}, []) == "908e0ccd551cb8ea"


@pytest.mark.parametrize("same", [
    {"params": {"temperature": 0.2, "max_tokens": 512}},                        # key order
    {"params": {"max_tokens": 512.0, "temperature": 0.2}},                      # 512 vs 512.0
    {"params": {"max_tokens": 512, "temperature": 0.2, "top_k": None}},          # None = not given
    {"system": ["\n  You are terse.  \n"]},                                     # outer whitespace
    {"system": ["You are terse.", ""]},                                         # empty parts
    {"tools": [dict(reversed(list(TOOL.items())))]},                             # tool key order
    {"tools": [{**TOOL, "cache_control": {"type": "ephemeral"}}]},               # cache hints
])
def test_stable_under_irrelevant_changes(same: dict[str, object]) -> None:
    assert fp(**same) == fp()


def test_tool_order_does_not_matter() -> None:
    assert fp(tools=[TOOL, OTHER_TOOL]) == fp(tools=[OTHER_TOOL, TOOL])


def test_crlf_and_lf_are_the_same_prompt() -> None:
    assert fp(system=["line one\r\nline two"]) == fp(system=["line one\nline two"])


@pytest.mark.parametrize("different", [
    {"provider": "aws.bedrock"},
    {"model": "claude-sonnet-4-5-20250929"},
    {"system": ["You are verbose."]},
    {"system": ["You are  terse."]},                                            # inner whitespace counts
    {"system": ["You are terse.", "Answer in French."]},
    {"params": {"max_tokens": 512, "temperature": 0.3}},
    {"params": {"max_tokens": 512}},
    {"params": {"max_tokens": 512, "temperature": 0.2, "stop_sequences": ["END"]}},
    {"tools": []},
    {"tools": [{**TOOL, "description": "Weather"}]},
    {"tools": [{**TOOL, "input_schema": {"type": "object", "properties": {"town": {"type": "string"}}}}]},
    {"tools": [TOOL, OTHER_TOOL]},
])
def test_sensitive_to_what_defines_a_config(different: dict[str, object]) -> None:
    assert fp(**different) != fp()


def test_user_messages_are_not_an_input() -> None:
    # The signature has no place for them: two requests differing only in user text share the fingerprint.
    assert "messages" not in fingerprint.__code__.co_varnames[: fingerprint.__code__.co_argcount]


def test_non_json_values_are_rendered_by_schema_or_type_name() -> None:
    class Answer:
        @staticmethod
        def model_json_schema() -> dict[str, object]:
            return {"type": "object", "title": "Answer"}

    class Opaque:
        pass

    assert fp(params={"response_format": Answer}) == fp(params={"response_format": Answer})
    assert fp(params={"response_format": Answer}) != fp(params={"response_format": Opaque})
    assert '"<' in canonical_json({"x": Opaque()})


def test_memo_does_not_confuse_equal_reprs_of_different_types() -> None:
    assert fp(params={"max_tokens": 512, "temperature": 0.2}) == fp()
    assert fp(params={"max_tokens": "512", "temperature": 0.2}) != fp()
