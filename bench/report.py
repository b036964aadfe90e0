"""The results of a run: `latest.md` (the table), `latest.json` (the same, for machines) and
`latest.png` (one bar per row: the median ratio, its spread, the target), in `bench/results/`."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import RowResult

__all__ = ["RESULTS", "Run", "machine", "write"]

RESULTS = Path(__file__).resolve().parent / "results"
DASH = "\u2013"  # en dash: ranges, and "nothing to show"
GREEN, RED, GREY = "#2e7d32", "#c62828", "#9e9e9e"


@dataclass(frozen=True, slots=True)
class Run:
    """Everything the report states besides the rows."""

    started: str  # ISO 8601, UTC
    wall_seconds: float
    command: str
    machine: dict[str, Any]
    versions: dict[str, str]
    settings: dict[str, Any]
    notes: list[str]
    rounds: dict[str, dict[str, list[dict[str, Any]]]]  # database → scenario → raw samples


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def _number(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return DASH
    if unit in {"req/s", "/s"}:
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.2f}"


def _ratio(result: RowResult) -> str:
    median, spread = result.median, result.spread
    if median is None or spread is None:
        return "**invalid**"
    return f"**{median:.2f}** [{spread[0]:.2f}{DASH}{spread[1]:.2f}]"


def _met(result: RowResult) -> str:
    return {None: DASH, True: "yes", False: "**no**"}[result.met]


def _errors(result: RowResult) -> str:
    text = str(result.errors)
    if result.invalid_rounds:
        text += f" ({result.invalid_rounds} of {len(result.ratios)} rounds invalid)"
    return text


def _latency(p50_p99: tuple[float, float]) -> str:
    p50, p99 = p50_p99
    if not (math.isfinite(p50) and math.isfinite(p99)):
        return DASH
    return f"{p50:.2f} / {p99:.2f}"


def markdown(results: Sequence[RowResult], run: Run) -> str:
    settings = run.settings
    lines = [
        "# Benchmark results",
        "",
        f"`{run.command}`, started {run.started}, {run.wall_seconds / 60:.1f} min wall time. "
        f"Each row: A ÷ B per round, {settings['rounds']} alternating rounds of "
        f"{settings['seconds']} s per side; the median ratio, its spread [min{DASH}max] over the "
        "valid rounds. A round with any socket error or non-2xx answer on a side the row reads is "
        "invalid: counted under errors, never in the median.",
        "",
        f"| scenario | database | A | B | ratio A÷B [min{DASH}max] | target | met? "
        "| A p50 / p99 ms | B p50 / p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        row = result.row
        lines.append(
            f"| {row.scenario} | {result.database} "
            f"| {row.a_label}: {_number(result.a_value, row.unit)} "
            f"| {row.b_label}: {_number(result.b_value, row.unit)} "
            f"| {_ratio(result)} | {row.target or DASH} | {_met(result)} "
            f"| {_latency(result.a_latency)} | {_latency(result.b_latency)} "
            f"| {_errors(result)} |"
        )
    machine_info = run.machine
    lines += [
        "",
        "## Settings",
        "",
        f"- Machine: {machine_info['cpu']}, {machine_info['cores']} cores, Linux "
        f"{machine_info['kernel']}, Python {machine_info['python']}, SQLite "
        f"{machine_info['sqlite']}.",
        f"- Load: `wrk -t1 -c{settings['connections']} --latency --timeout "
        f"{settings['wrk_timeout']}` on loopback, {settings['rounds']} rounds \u00d7 "
        f"{settings['seconds']} s per side (a 1 s warm-up per side first, not recorded); one "
        f"argon2id verify timed for {settings['verify_seconds']} s per round in the runner.",
        f"- Servers: `uvicorn --factory … {' '.join(settings['uvicorn_options'])}`, one worker "
        "each, the same options for ours, the bare app and the peers; the peers in their own "
        "venv with the same FastAPI, Starlette, pydantic and uvicorn versions as ours.",
        "- Rate limits of our app raised for the run: "
        + ", ".join(
            f"`{name.upper()}={value}`" for name, value in settings["raised_limits"].items()
        )
        + "; the peers have none.",
        f"- Users: {settings['rotated_users']} seeded users signed in by turns (sign-in, "
        f"refresh sessions); scale: {settings['scale_small']:,} and {settings['scale_users']:,} "
        "users seeded directly into the tables.",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in run.versions.items()),
        "",
    ]
    hows = {result.row.key: result.row for result in results}
    lines += ["## How each row is measured", ""]
    lines += [f"- {row.scenario}: {row.how}." for row in hows.values() if row.how]
    lines.append("")
    if run.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in run.notes), ""]
    lines += [
        "Raw samples of every round: `latest.json`. Chart: `latest.png`.",
        "",
    ]
    return "\n".join(lines)


def as_json(results: Sequence[RowResult], run: Run) -> dict[str, Any]:
    return {
        "started": run.started,
        "wall_seconds": round(run.wall_seconds, 1),
        "command": run.command,
        "machine": run.machine,
        "versions": run.versions,
        "settings": run.settings,
        "notes": run.notes,
        "rows": [result.as_json() for result in results],
        "rounds": run.rounds,
    }


def chart(results: Sequence[RowResult], path: Path) -> None:
    """One horizontal bar per row: the median ratio (log scale: ratios from 0.1 to 10 and more),
    the min-max spread as an error bar, the target as a black mark; green met, red missed,
    grey no target, and "invalid" where no round was valid."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    from matplotlib.patches import Patch  # type: ignore[import-not-found,unused-ignore]

    labels = [f"{r.row.scenario.replace('`', '')} ({r.database})" for r in results]
    height = 0.42 * len(results) + 1.4
    figure, axes = plt.subplots(figsize=(10, height), dpi=100)
    positions = list(range(len(results)))[::-1]
    for y, result in zip(positions, results, strict=True):
        median, spread = result.median, result.spread
        target = result.row.target
        if median is None or spread is None:
            axes.text(1.0, y, "invalid", va="center", ha="center", color="#b00020")
        else:
            color = {True: GREEN, False: RED, None: GREY}[result.met]
            axes.barh(y, median, height=0.6, color=color, alpha=0.85)
            axes.errorbar(
                median,
                y,
                xerr=[[median - spread[0]], [spread[1] - median]],
                fmt="none",
                ecolor="black",
                capsize=3,
                linewidth=1,
            )
            axes.text(spread[1] * 1.04, y, f"{median:.2f}", va="center", fontsize=8)
        if target is not None:
            axes.plot(target.value, y, marker="|", markersize=16, color="black", mew=2.5)
            axes.text(target.value, y - 0.38, str(target), ha="center", va="center", fontsize=7)
    axes.set_xscale("log")
    shown = [1.0] + [r.row.target.value for r in results if r.row.target]
    shown += [value for r in results if r.spread for value in r.spread]
    low, high = min(0.08, min(shown) / 1.5), max(shown) * 1.8
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if low <= t <= high]
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.set_xlim(low, high)
    legend = [
        Patch(color=GREEN, label="target met"),
        Patch(color=RED, label="target missed"),
        Patch(color=GREY, label="no target"),
    ]
    axes.legend(
        handles=legend,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.09 * 12 / (len(results) + 3)),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    axes.axvline(1.0, color="#616161", linewidth=0.8, linestyle=":")
    axes.set_yticks(positions, labels, fontsize=9)
    axes.set_xlabel(f"ratio A ÷ B (median of the rounds; bar: min{DASH}max; | target)", fontsize=9)
    axes.set_title("My Ideas auth: each scenario against its baseline, same run", fontsize=10)
    axes.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    axes.set_axisbelow(True)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def write(results: Sequence[RowResult], run: Run, directory: Path = RESULTS) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "latest.md").write_text(markdown(results, run))
    (directory / "latest.json").write_text(json.dumps(as_json(results, run), indent=1) + "\n")
    chart(results, directory / "latest.png")
