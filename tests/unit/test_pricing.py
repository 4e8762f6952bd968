"""The pricing table: checked at startup with the key named, and dollars filled in only
when an agent gave tokens alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner import paths
from provisioner.errors import ParameterError
from provisioner.pricing import PriceTable, parse_pricing, price
from provisioner.queueing import Cost

TABLE = {
    "claude-sonnet-4-5": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    "gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10},
    "free": {"input_per_mtok": 0, "output_per_mtok": 0},
}


def test_tokens_are_priced_and_a_reported_cost_wins() -> None:
    table = parse_pricing(TABLE)
    assert price(Cost(1_000_000, 100_000, None, "claude-sonnet-4-5"), table).cost_usd == 4.5
    assert price(Cost(1200, 350, None, "gpt-4o"), table).cost_usd == pytest.approx(0.0065)
    assert price(Cost(10, 10, 0.25, "gpt-4o"), table).cost_usd == 0.25  # the agent's word
    assert price(Cost(10, 10, None, "free"), table).cost_usd == 0.0
    assert price(Cost(10, 10, None, "unknown-model"), table).cost_usd is None
    assert price(Cost(10, 10, None, None), table).cost_usd is None
    assert price(Cost(0, 0, None, "gpt-4o"), table).cost_usd is None  # nothing to price


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),  # a dated snapshot
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),  # Vertex's spelling
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),  # a provider prefix (Aider, LiteLLM)
        ("gpt-4o-mini", None),  # another model, not a snapshot: never priced as gpt-4o
        ("gpt-4o-mini-2024-07-18", None),
        ("claude-sonnet-4-5-fast", None),
        ("gpt-4", None),
    ],
)
def test_model_names_match_exactly_or_as_snapshots(model: str, key: str | None) -> None:
    table = parse_pricing(TABLE)
    assert table.rate_for(model) == (table.rates[key] if key else None)


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ("cheap", "must be a mapping of model names"),
        (["gpt-4o"], "must be a mapping of model names"),
        ({"gpt-4o": 3.0}, r"pricing\.gpt-4o must be a mapping"),
        ({"gpt-4o": {"input_per_mtok": -1, "output_per_mtok": 1}}, r"gpt-4o\.input_per_mtok"),
        ({"gpt-4o": {"input_per_mtok": float("nan"), "output_per_mtok": 1}}, "from 0 to"),
        ({"gpt-4o": {"input_per_mtok": float("inf"), "output_per_mtok": 1}}, "from 0 to"),
        ({"gpt-4o": {"input_per_mtok": 1, "output_per_mtok": 1e12}}, r"output_per_mtok.*from 0"),
        ({"gpt-4o": {"input_per_mtok": "3", "output_per_mtok": 1}}, "not a number"),
        ({"gpt-4o": {"input_per_mtok": True, "output_per_mtok": 1}}, "not a number"),
        ({"gpt-4o": {"input_per_mtok": 1}}, r"gpt-4o\.output_per_mtok is missing"),
        (
            {"gpt-4o": {"input_per_mtok": 1, "output_per_mtok": 1, "cached_per_mtok": 1}},
            r"gpt-4o\.cached_per_mtok: unknown key",
        ),
        ({"bad model; rm -rf": {"input_per_mtok": 1, "output_per_mtok": 1}}, "not a model name"),
        ({7: {"input_per_mtok": 1, "output_per_mtok": 1}}, "not a model name"),
        ({f"m{i}": {"input_per_mtok": 1, "output_per_mtok": 1} for i in range(1001)}, "at most"),
    ],
)
def test_a_bad_table_is_refused_naming_the_key(section: Any, says: str) -> None:
    with pytest.raises(ParameterError, match=says):
        parse_pricing(section)


def test_the_server_reads_pricing_from_its_config_and_refuses_a_bad_one(tmp_path: Path) -> None:
    assert paths.pricing(tmp_path) == PriceTable()  # no config: nothing priced
    config = tmp_path / "config.yaml"
    config.write_text("pricing:\n  claude-sonnet-4-5: {input_per_mtok: 3.0, output_per_mtok: 15}\n")
    assert paths.pricing(tmp_path).rate_for("claude-sonnet-4-5-20250929") is not None
    config.write_text("pricing:\n  claude-sonnet-4-5: {input_per_mtok: .nan, output_per_mtok: 1}\n")
    with pytest.raises(ParameterError, match=r"config\.yaml: pricing\.claude-sonnet-4-5\.input"):
        paths.pricing(tmp_path)
    # the server does not start on it: checked before the store or Docker is touched
    from provisioner.server.main import build_engine

    with pytest.raises(ParameterError, match="input_per_mtok"):
        build_engine(tmp_path)
    assert not (tmp_path / "dockyard.db").exists()
