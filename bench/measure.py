"""Alternating rounds and the ratios computed from them.

A scenario compares sides (ours and a baseline, or two routes of ours) that are measured in the
same run, one after the other, round after round: A1 B1, B2 A2, A3 B3 … (the first side
rotates), so a drift of the machine (another process, a warm cache, thermal state) falls on both
sides alike. Each round gives each row one ratio; the row reports the median of its rounds and
their spread (min-max). A round in which any side the row needs had an error is invalid: it is
counted and shown, never part of the median; a row with no valid round is "invalid".
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench.cpu import foreign_cores
from bench.wrk import Sample

__all__ = ["Round", "Row", "RowResult", "Side", "Target", "alternate", "summarize", "timed"]

Round = Mapping[str, Sample]
# A side runs for the given number of seconds and says what it saw.
Side = Callable[[int], Sample]
Quantity = Callable[[Round], float]


def alternate(
    sides: Mapping[str, Side],
    *,
    rounds: int,
    seconds: int,
    settle: Callable[[], None],
    server_pids: Callable[[], list[int]],
    warmup: int = 1,
) -> list[dict[str, Sample]]:
    """Every side once per round, the first side rotating; a short unrecorded warm-up first
    (connection pools, caches, the first compilation of each statement). `settle` runs before
    each side: it waits until the servers are idle; the CPU other processes used meanwhile is
    recorded with each sample."""
    names = list(sides)

    def measure(name: str, duration: int) -> Sample:
        settle()
        sample, foreign = foreign_cores(lambda: sides[name](duration), server_pids())
        return dataclasses.replace(sample, foreign_cores=round(foreign, 3))

    if warmup:
        for name in names:
            measure(name, warmup)
    measured: list[dict[str, Sample]] = []
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        measured.append({name: measure(name, seconds) for name in order})
    return measured


def timed(operation: Callable[[], object], seconds: float) -> Sample:
    """Run `operation` back to back for `seconds` in this process: a `Sample` of its times."""
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while not durations or time.perf_counter() < deadline:
        start = time.perf_counter()
        operation()
        durations.append((time.perf_counter() - start) * 1000)
    percentiles = statistics.quantiles(durations, n=100) if len(durations) > 1 else durations * 99
    mean = statistics.fmean(durations)
    return Sample(
        requests=len(durations),
        rps=1000 / mean,
        mean_ms=mean,
        p50_ms=statistics.median(durations),
        p99_ms=percentiles[98],
    )


@dataclass(frozen=True, slots=True)
class Target:
    op: Literal[">=", "<="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: ratio = a ÷ b of quantities read from one round's samples.

    `a_side` and `b_side` name the samples whose latency and errors the row shows; `sides` all
    the samples the ratio reads (a round is valid for the row when each of them is)."""

    key: str
    scenario: str
    a_label: str
    b_label: str
    unit: str
    a: Quantity
    b: Quantity
    a_side: str
    b_side: str
    target: Target | None = None
    extra_sides: tuple[str, ...] = ()
    how: str = ""  # one sentence: what A and B are, for the report

    @property
    def sides(self) -> tuple[str, ...]:
        return (self.a_side, self.b_side, *self.extra_sides)


@dataclass(frozen=True, slots=True)
class RowResult:
    row: Row
    database: str
    ratios: list[float | None]  # per round; None for an invalid round
    a_value: float
    b_value: float
    a_latency: tuple[float, float]  # p50, p99 in ms (median over valid rounds)
    b_latency: tuple[float, float]
    errors: int

    @property
    def valid_ratios(self) -> list[float]:
        return [ratio for ratio in self.ratios if ratio is not None]

    @property
    def invalid_rounds(self) -> int:
        return len(self.ratios) - len(self.valid_ratios)

    @property
    def median(self) -> float | None:
        return statistics.median(self.valid_ratios) if self.valid_ratios else None

    @property
    def spread(self) -> tuple[float, float] | None:
        valid = self.valid_ratios
        return (min(valid), max(valid)) if valid else None

    @property
    def met(self) -> bool | None:
        median = self.median
        if self.row.target is None or median is None:
            return None
        return self.row.target.met(median)

    def as_json(self) -> dict[str, Any]:
        row = self.row
        return {
            "key": row.key,
            "scenario": row.scenario,
            "database": self.database,
            "a": {"label": row.a_label, "value": _finite(self.a_value), "unit": row.unit},
            "b": {"label": row.b_label, "value": _finite(self.b_value), "unit": row.unit},
            "ratio": {
                "median": self.median,
                "min": self.spread[0] if self.spread else None,
                "max": self.spread[1] if self.spread else None,
                "rounds": self.ratios,
            },
            "target": str(row.target) if row.target else None,
            "met": self.met,
            "latency_ms": {
                "a": {"p50": _finite(self.a_latency[0]), "p99": _finite(self.a_latency[1])},
                "b": {"p50": _finite(self.b_latency[0]), "p99": _finite(self.b_latency[1])},
            },
            "errors": self.errors,
            "invalid_rounds": self.invalid_rounds,
            "how": row.how,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarize(row: Row, database: str, rounds: Sequence[Round]) -> RowResult:
    valid = [r for r in rounds if all(r[side].valid for side in row.sides)]
    ratios: list[float | None] = []
    for measured in rounds:
        ok = all(measured[side].valid for side in row.sides)
        ratios.append(row.a(measured) / row.b(measured) if ok else None)
    return RowResult(
        row=row,
        database=database,
        ratios=ratios,
        a_value=_median([row.a(r) for r in valid]),
        b_value=_median([row.b(r) for r in valid]),
        a_latency=(
            _median([r[row.a_side].p50_ms for r in valid]),
            _median([r[row.a_side].p99_ms for r in valid]),
        ),
        b_latency=(
            _median([r[row.b_side].p50_ms for r in valid]),
            _median([r[row.b_side].p99_ms for r in valid]),
        ),
        errors=sum(r[side].error_count for r in rounds for side in set(row.sides)),
    )
