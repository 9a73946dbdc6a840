"""The content-capture switch and the JSON-preserving byte budget."""

from __future__ import annotations

import json

import pytest

from llmloop.instrumentation.capture import (
    TRUNCATION_MARK,
    CaptureMode,
    bounded_json,
    capture_mode_from_env,
    max_bytes_from_env,
)

ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@pytest.mark.parametrize(("value", "mode"), [
    (None, CaptureMode.NO_CONTENT), ("", CaptureMode.NO_CONTENT), ("no_content", CaptureMode.NO_CONTENT),
    ("SPAN_ONLY", CaptureMode.SPAN_ONLY), ("event_only", CaptureMode.EVENT_ONLY),
    ("Span_And_Event", CaptureMode.SPAN_AND_EVENT), ("false", CaptureMode.NO_CONTENT),
])
def test_modes(value: str | None, mode: CaptureMode) -> None:
    assert capture_mode_from_env({} if value is None else {ENV: value}) is mode


def test_old_boolean_true_means_span_only_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert capture_mode_from_env({ENV: "true"}) is CaptureMode.SPAN_ONLY
    assert "old boolean form" in caplog.text


def test_bad_value_warns_and_captures_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert capture_mode_from_env({ENV: "everything"}) is CaptureMode.NO_CONTENT
    assert "capturing no content" in caplog.text


def test_mode_properties() -> None:
    assert CaptureMode.SPAN_AND_EVENT.on_span and CaptureMode.SPAN_AND_EVENT.on_event
    assert not CaptureMode.EVENT_ONLY.on_span and CaptureMode.EVENT_ONLY.any
    assert not CaptureMode.NO_CONTENT.any


def test_budget_from_env_and_attribute_limits() -> None:
    assert max_bytes_from_env({}) == 128_000
    assert max_bytes_from_env({"LLMLOOP_MAX_CONTENT_BYTES": "5000"}) == 5000
    assert max_bytes_from_env({"LLMLOOP_MAX_CONTENT_BYTES": "junk"}) == 128_000
    assert max_bytes_from_env({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "900"}) == 900
    assert max_bytes_from_env({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "700",
                               "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "900"}) == 700


def messages(n: int, size: int) -> list[dict[str, object]]:
    return [{"role": "user", "parts": [{"type": "text", "content": f"{i}:" + "é" * size}]} for i in range(n)]


def test_small_content_is_untouched() -> None:
    value = messages(2, 10)
    text, cut = bounded_json(value, 10_000)
    assert json.loads(text) == value and not cut


@pytest.mark.parametrize("budget", [200, 500, 1000, 4000])
def test_big_content_fits_and_stays_valid_json(budget: int) -> None:
    text, cut = bounded_json(messages(5, 2000), budget)
    assert cut
    assert len(text.encode()) <= budget
    parsed = json.loads(text)
    assert isinstance(parsed, list) and parsed
    assert TRUNCATION_MARK in text
    assert parsed[-1]["parts"][0]["content"].startswith("4:")  # the newest message is kept


def test_structure_too_big_drops_oldest_messages_then_gives_empty_list() -> None:
    many = [{"role": "user", "parts": []} for _ in range(200)]
    text, cut = bounded_json(many, 300)
    assert cut and len(text) <= 300 and json.loads(text)
    assert bounded_json(many, 1) == ("[]", True)


def test_unserializable_values_do_not_raise() -> None:
    class Weird:
        def __str__(self) -> str:
            return "weird"

    text, _ = bounded_json({"x": Weird(), "b": b"\x00\x01"}, 1000)
    assert json.loads(text) == {"x": "weird", "b": "<2 bytes>"}
