"""Tokens and cost: every API call's usage, priced per model, totalled per ticket, checked
against the phase's budget. Shared by all workers of a run (thread-safe). The budget is
checked before each call, so concurrent workers may overshoot it by their calls in flight."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runner.records.outcome import Fetched


class Price(BaseModel):
    """USD per million tokens."""

    # Finite and not negative: a NaN price makes every cost NaN, and no budget stops at NaN.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float = Field(default=0.0, ge=0)
    cache_read: float = Field(default=0.0, ge=0)


def default_prices() -> dict[str, Price]:
    data = json.loads(resources.files("runner.records").joinpath("prices.json").read_text())
    return {model: Price(**p) for model, p in data.items() if not model.startswith("_")}


@dataclass(frozen=True)
class Usage:
    input: int = 0
    output: int = 0
    cache_write: int = 0
    cache_read: int = 0

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """From an anthropic response's ``usage``."""
        return cls(input=usage.input_tokens, output=usage.output_tokens,
                   cache_write=usage.cache_creation_input_tokens or 0,
                   cache_read=usage.cache_read_input_tokens or 0)

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_write + self.cache_read

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output,
                     self.cache_write + other.cache_write, self.cache_read + other.cache_read)

    def cost(self, price: Price | None) -> float:
        if price is None:
            return 0.0
        return (self.input * price.input + self.output * price.output
                + self.cache_write * price.cache_write
                + self.cache_read * price.cache_read) / 1e6


@dataclass
class Totals:
    usage: Usage = Usage()
    cost: float = 0.0
    calls: int = 0
    fetched: Fetched = Fetched()


@dataclass
class Ledger:
    prices: dict[str, Price]
    budget_usd: float | None = None
    carried: float = 0.0          # what a resumed run's finished tickets spent
    tickets: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *, ticket: str, model: str, usage: Usage) -> float:
        """Add one API call; return its cost (0 for a model without a price: runner warns
        about those when the run starts)."""
        cost = usage.cost(self.prices.get(model))
        with self._lock:
            totals = self.tickets[ticket]
            totals.usage += usage
            totals.cost += cost
            totals.calls += 1
        return cost

    def record_fetch(self, *, ticket: str, fetched: Fetched) -> None:
        """Add what one request to the dependency cache was served."""
        with self._lock:
            totals = self.tickets[ticket]
            totals.fetched += fetched

    @property
    def total_cost(self) -> float:
        with self._lock:
            return self.carried + sum(t.cost for t in self.tickets.values())

    def budget_reached(self) -> bool:
        return self.budget_usd is not None and self.total_cost >= self.budget_usd

    def ticket(self, ticket: str) -> Totals:
        """A snapshot of one ticket's totals."""
        with self._lock:
            return replace(self.tickets.get(ticket, Totals()))
