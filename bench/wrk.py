"""Run wrk and read what it printed: requests/s, mean and p50/p99 latency, and every error.

wrk is the load generator of every HTTP measurement here (`-t1`: one thread, one Lua state, so
the scripts in `bench/lua/` see every request and answer). Its report is parsed from the text it
prints with `--latency`; nothing here trusts a number that the text does not contain.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LUA", "Sample", "parse", "require_wrk", "run", "wrk_version"]

LUA = Path(__file__).resolve().parent / "lua"
# A slow answer is measured, not dropped: past this wrk counts a timeout, which voids the round.
TIMEOUT = "10s"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True, slots=True)
class Sample:
    """One side of one round, from wrk or from a timer: throughput, latency, errors.

    `errors` counts wrk's socket errors (`connect`, `read`, `write`, `timeout`) and `status`,
    the answers that were not 2xx. A sample with any error, or with no request at all, is
    invalid: the round it belongs to is shown, counted and never averaged in.
    """

    requests: int
    rps: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    errors: Mapping[str, int] = field(default_factory=dict)
    # Cores other processes used while this side ran (bench.cpu); set by the runner.
    foreign_cores: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.error_count == 0


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse(output: str) -> Sample:
    """A `Sample` from wrk's `--latency` report (the exact text wrk 4 prints)."""
    latency = re.search(rf"^\s+Latency\s+{_TIME}", output, re.MULTILINE)
    quantiles = {
        int(q): _ms(value, unit)
        for q, value, unit in re.findall(rf"^\s+(50|99)(?:\.000)?%\s+{_TIME}", output, re.MULTILINE)
    }
    requests = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket:
        for name, count in zip(
            ("connect", "read", "write", "timeout"), socket.groups(), strict=True
        ):
            errors[name] = int(count)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors["status"] = int(non_2xx.group(1))
    nan = float("nan")
    return Sample(
        requests=int(requests.group(1)) if requests else 0,
        rps=float(rps.group(1)) if rps else 0.0,
        mean_ms=_ms(*latency.groups()) if latency else nan,
        p50_ms=quantiles.get(50, nan),
        p99_ms=quantiles.get(99, nan),
        errors=errors,
    )


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (`make bench` does it)")


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].split(" Copyright")[0].removeprefix("wrk ") if first else "unknown"


def run(
    url: str,
    seconds: int,
    *,
    connections: int = 32,
    headers: Mapping[str, str] | None = None,
    script: str | None = None,
    script_args: Sequence[str] = (),
) -> Sample:
    """`wrk -t1 -c<connections> -d<seconds>s --latency` on `url`, with a Lua script from
    `bench/lua/` if named (its arguments after `--`)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT}",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(LUA / script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed on {url}: {result.stderr or result.stdout}")
    sample = parse(result.stdout)
    if not sample.valid:
        said = [
            line.strip()
            for line in result.stdout.splitlines()
            if line.startswith(("  Socket errors", "  Non-2xx", "Refresh sessions"))
        ]
        print(f"      invalid round side: {url}: {'; '.join(said) or 'no request'}", flush=True)
    return sample
