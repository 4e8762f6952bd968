"""Prices of models, from the server's `pricing:` config, and the dollars of usage that an
agent reported as tokens only. Pure: the server reads config.yaml and hands the section
to `parse_pricing` at startup, so a bad table stops the server with the key named.

    pricing:
      claude-sonnet-4-5: {input_per_mtok: 3.0, output_per_mtok: 15.0}
      gpt-5.5: {input_per_mtok: 1.25, output_per_mtok: 10.0}

Prices are dollars per million tokens. A model name matches its key exactly, or as a
dated snapshot of it (`claude-sonnet-4-5-20250929`, `claude-3-5-sonnet@20240620`), or
without a provider prefix (`openai/gpt-5.5`). Nothing looser: `gpt-4o` must not price
`gpt-4o-mini`. Input tokens are priced at the input rate whether or not the provider
served them from its cache (an upper bound: cached tokens cost less).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from provisioner.errors import ParameterError
from provisioner.queueing import Cost

FIELDS = ("input_per_mtok", "output_per_mtok")
# dollars per million tokens; far above any model sold, low enough that no sum overflows
MAX_PER_MTOK = 10_000.0
MAX_MODELS = 1000
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}")
# what may follow a key in a model name it prices: a snapshot date, nothing else
_SNAPSHOT_RE = re.compile(r"[-@](?:\d{8}|\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Rate:
    """One model's price, dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def dollars(self, tokens_in: int, tokens_out: int) -> float:
        total = tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok
        return round(total / 1_000_000, 6)


@dataclass(frozen=True)
class PriceTable:
    """Model name -> Rate; empty when the config has no `pricing:`."""

    rates: Mapping[str, Rate] = field(default_factory=dict)

    def rate_for(self, model: str | None) -> Rate | None:
        """The rate of `model` (see the module's matching rules), or None."""
        if not model:
            return None
        names = [model]
        if "/" in model:
            names.append(model.rsplit("/", 1)[1])
        for name in names:
            if name in self.rates:
                return self.rates[name]
            for key, rate in self.rates.items():
                if name.startswith(key) and _SNAPSHOT_RE.fullmatch(name[len(key) :]):
                    return rate
        return None


def _price(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"{where}: {value!r} is not a number (dollars per million tokens)")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= MAX_PER_MTOK:
        raise ParameterError(f"{where}: {value!r} must be from 0 to {MAX_PER_MTOK:g}")
    return number


def parse_pricing(section: object, where: str = "pricing") -> PriceTable:
    """The `pricing:` section of the server's config, checked; ParameterError naming the
    first key that is wrong (`where` prefixes it: the file and section)."""
    if section is None:
        return PriceTable()
    if not isinstance(section, Mapping):
        raise ParameterError(
            f"{where} must be a mapping of model names to prices, e.g. "
            "{claude-sonnet-4-5: {input_per_mtok: 3.0, output_per_mtok: 15.0}}"
        )
    if len(section) > MAX_MODELS:
        raise ParameterError(f"{where}: {len(section)} models, at most {MAX_MODELS}")
    rates: dict[str, Rate] = {}
    for model, entry in section.items():
        if not isinstance(model, str) or not _KEY_RE.fullmatch(model):
            raise ParameterError(
                f"{where}: {str(model)[:40]!r} is not a model name "
                "(letters, digits and . _ : / @ + -)"
            )
        here = f"{where}.{model}"
        if not isinstance(entry, Mapping):
            raise ParameterError(
                f"{here} must be a mapping: {{input_per_mtok: N, output_per_mtok: N}}"
            )
        unknown = [str(k) for k in entry if k not in FIELDS]
        if unknown:
            raise ParameterError(
                f"{here}.{unknown[0][:40]}: unknown key; the keys are {', '.join(FIELDS)}"
            )
        missing = [k for k in FIELDS if k not in entry]
        if missing:
            raise ParameterError(f"{here}.{missing[0]} is missing")
        rates[model] = Rate(*(_price(entry[k], f"{here}.{k}") for k in FIELDS))
    return PriceTable(rates)


def price(cost: Cost, table: PriceTable) -> Cost:
    """The cost with its dollars filled in from the table when the agent gave tokens only.
    Dollars the agent reported win (its provider knows its own discounts); a model the
    table does not know stays unpriced (None)."""
    if cost.cost_usd is not None:
        return cost
    rate = table.rate_for(cost.model)
    if rate is None or not (cost.tokens_in or cost.tokens_out):
        return cost
    return replace(cost, cost_usd=rate.dollars(cost.tokens_in, cost.tokens_out))
