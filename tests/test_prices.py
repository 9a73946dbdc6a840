"""The price table: the shipped prices.toml and the loader that validates it and users' override files."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date
from pathlib import Path

import pytest

from llmloop.semconv.prices import PRICE_FIELDS, Price, PriceError, load_prices

VALID_ROW = """
[[price]]
model = "my-model"
provider = "openai"
effective_from = 2025-01-01
input = 1
output = 2
"""


@pytest.fixture(scope="module")
def shipped() -> list[Price]:
    return load_prices()


def rows_of(rows: list[Price], model: str) -> list[Price]:
    return [r for r in rows if r.model == model]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped table -----------------------------------------------------------------------------


def test_shipped_table_loads_and_covers_the_issue_models(shipped: list[Price]) -> None:
    models = {r.model for r in shipped}
    assert {
        "claude-3-haiku",
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-sonnet-4-5",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-opus-4-5",
        "claude-haiku-4-5",
        "gpt-4o",
        "gpt-4o-2024-05-13",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "text-embedding-3-small",
        "text-embedding-3-large",
    } <= models


def test_every_shipped_row_names_its_source(shipped: list[Price]) -> None:
    assert all(r.source and r.source.startswith("https://") for r in shipped)


def test_rows_are_sorted_by_provider_model_and_date(shipped: list[Price]) -> None:
    assert shipped == sorted(shipped, key=lambda r: (r.provider, r.model, r.effective_from))


def test_shipped_dates_are_plausible_and_each_new_row_changes_a_price(shipped: list[Price]) -> None:
    assert all(date(2024, 1, 1) <= r.effective_from <= date.today() for r in shipped)
    for earlier, later in itertools.pairwise(shipped):
        if (earlier.provider, earlier.model) == (later.provider, later.model):
            assert [getattr(earlier, f) for f in PRICE_FIELDS] != [getattr(later, f) for f in PRICE_FIELDS]


def test_gpt_4o_alias_changes_price_when_repointed_to_the_august_snapshot(shipped: list[Price]) -> None:
    launch, repointed = rows_of(shipped, "gpt-4o")
    assert (launch.effective_from, launch.input, launch.output) == (date(2024, 5, 13), 5.0, 15.0)
    assert (repointed.effective_from, repointed.input, repointed.output) == (date(2024, 10, 2), 2.5, 10.0)
    (snapshot,) = rows_of(shipped, "gpt-4o-2024-05-13")
    assert (snapshot.input, snapshot.output, snapshot.cache_read) == (5.0, 15.0, None)


def test_o3_price_cut_of_june_2025_is_a_second_row(shipped: list[Price]) -> None:
    launch, cut = rows_of(shipped, "o3")
    assert (launch.input, launch.output, launch.cache_read) == (10.0, 40.0, 2.5)
    assert (cut.effective_from, cut.input, cut.output, cut.cache_read) == (date(2025, 6, 10), 2.0, 8.0, 0.5)


def test_shipped_rows_are_first_party_with_one_provider_per_model(shipped: list[Price]) -> None:
    assert {r.provider for r in shipped} == {"anthropic", "openai"}
    providers: dict[str, set[str]] = {}
    for r in shipped:
        providers.setdefault(r.model, set()).add(r.provider)
    assert all(len(p) == 1 for p in providers.values())


def test_anthropic_cache_writes_follow_the_published_multipliers(shipped: list[Price]) -> None:
    # 1.25x input for 5-minute writes, 2x for 1-hour writes; published to the cent (Claude 3 Haiku: $0.30).
    for r in (r for r in shipped if r.provider == "anthropic"):
        assert r.cache_write == pytest.approx(1.25 * r.input, rel=0.05), r.model
        assert r.cache_write_1h == pytest.approx(2 * r.input, rel=0.05), r.model
        assert r.cache_read is not None and r.cache_read < r.input, r.model


def test_openai_rows_bill_cache_reads_below_input_and_no_cache_writes(shipped: list[Price]) -> None:
    for r in (r for r in shipped if r.provider == "openai"):
        assert r.cache_write is None and r.cache_write_1h is None, r.model
        assert r.cache_read is None or r.cache_read < r.input, r.model


def test_price_fields_are_the_float_columns_of_a_row_in_order() -> None:
    names = [f.name for f in dataclasses.fields(Price)]
    assert PRICE_FIELDS == ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")
    assert names == ["model", "provider", "effective_from", *PRICE_FIELDS, "source"]


# --- a user's override file ------------------------------------------------------------------------


def test_override_file_loads_from_str_or_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[price]]
model = "claude-sonnet-4-5"
provider = "aws.bedrock"
effective_from = "2025-10-01"
input = 3.3
output = 16
cache_read = 0.33
reasoning = 20
""",
    )
    expected = [
        Price("claude-sonnet-4-5", "aws.bedrock", date(2025, 10, 1), 3.3, 16.0, cache_read=0.33, reasoning=20.0)
    ]
    assert load_prices(path) == expected
    assert load_prices(str(path)) == expected
    assert isinstance(expected[0].output, float)


def test_empty_override_file_has_no_rows(tmp_path: Path) -> None:
    assert load_prices(write(tmp_path, "# nothing overridden yet\n")) == []


# --- bad input: each names the entry and the field -------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1', "missing required field 'output'"),
        ('model = "m"\nprovider = "openai"\ninput = 1\noutput = 2', "missing required field 'effective_from'"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = -1\noutput = 2', "'input' must be"),
        (
            'model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1\noutput = 2\ncache_read = -0.5',
            "field 'cache_read' must be a finite price >= 0, got -0.5",
        ),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = nan\noutput = 2', "'input' must be"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = inf\noutput = 2', "'input' must be"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = "1"\noutput = 2', "must be a number"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = true\noutput = 2', "must be a number"),
        ('model = "m"\nprovider = "openai"\neffective_from = "2025-13-01"\ninput = 1\noutput = 2', "'effective_from'"),
        ('model = "m"\nprovider = "openai"\neffective_from = "June 2025"\ninput = 1\noutput = 2', "'effective_from'"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01T10:00:00Z\ninput = 1\noutput = 2', "a date"),
        ('model = "m"\nprovider = "openai"\neffective_from = 20250101\ninput = 1\noutput = 2', "'effective_from'"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1\noutput = 2\ninptu = 1', "'inptu'"),
        ('model = "GPT-4o"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1\noutput = 2', "lower-case"),
        ('model = ""\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1\noutput = 2', "field 'model'"),
        ('model = "m"\nprovider = 1\neffective_from = 2025-01-01\ninput = 1\noutput = 2', "field 'provider'"),
        ('model = "m"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1\noutput = 2\nsource = ""', "source"),
    ],
)
def test_bad_entry_is_rejected_naming_entry_and_field(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, VALID_ROW + "\n[[price]]\n" + row + "\n")
    with pytest.raises(PriceError, match="#2") as error:
        load_prices(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_error_names_the_model_of_the_bad_entry(tmp_path: Path) -> None:
    path = write(tmp_path, '[[price]]\nmodel = "gpt-4o"\nprovider = "openai"\neffective_from = 2025-01-01\ninput = 1\n')
    with pytest.raises(PriceError, match=r"\[\[price\]\] #1 \(model 'gpt-4o'\): missing required field 'output'"):
        load_prices(path)


def test_duplicate_model_provider_and_date_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match=r"#2 \(model 'my-model'\): duplicate of #1 .*2025-01-01"):
        load_prices(write(tmp_path, VALID_ROW + VALID_ROW.replace("input = 1", "input = 1.5")))


def test_same_model_on_another_date_or_provider_is_not_a_duplicate(tmp_path: Path) -> None:
    text = VALID_ROW + VALID_ROW.replace("2025-01-01", "2025-06-01") + VALID_ROW.replace("openai", "azure.ai.openai")
    assert len(load_prices(write(tmp_path, text))) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[price]\nmodel = 1", "not valid TOML"),
        ("version = 2\n" + VALID_ROW, "unknown top-level key(s) version"),
        ('price = "gpt-4o"', "array of tables"),
        ('[price]\nmodel = "m"', "array of tables"),
    ],
)
def test_malformed_file_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PriceError) as error:
        load_prices(write(tmp_path, text))
    assert message in str(error.value)


def test_missing_file_is_a_price_error(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match="cannot read prices file"):
        load_prices(tmp_path / "absent.toml")
