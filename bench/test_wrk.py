"""wrk's report, read back (part of `make test`: pytest collects `bench/` too)."""

from __future__ import annotations

import math

from bench.measure import Row, Target, summarize
from bench.wrk import Sample, parse

REPORT = """\
Running 5s test @ http://127.0.0.1:8000/auth/me
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.03ms    2.11ms    1.20s    90.00%
    Req/Sec     2.14k   100.00     2.30k    80.00%
  Latency Distribution
     50%  812.00us
     75%   15.50ms
     90%   16.50ms
     99%    1.50s
  10654 requests in 5.00s, 2.56MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   2130.80
Transfer/sec:    512.00KB
"""


def test_a_report_is_read_with_its_units_and_errors():
    sample = parse(REPORT)
    assert sample.requests == 10654
    assert sample.rps == 2130.80
    assert sample.mean_ms == 15.03
    assert sample.p50_ms == 0.812
    assert sample.p99_ms == 1500.0
    assert sample.errors == {"connect": 0, "read": 2, "write": 0, "timeout": 1, "status": 5}
    assert not sample.valid


def test_a_clean_report_is_valid():
    clean = "\n".join(
        line
        for line in REPORT.splitlines()
        if "Socket errors" not in line and "Non-2xx" not in line
    )
    assert parse(clean).valid


def test_no_output_is_an_invalid_sample():
    sample = parse("")
    assert sample.requests == 0
    assert math.isnan(sample.p50_ms)
    assert not sample.valid


def _sample(rps: float, status_errors: int = 0) -> Sample:
    return Sample(
        requests=100, rps=rps, mean_ms=1.0, p50_ms=1.0, p99_ms=2.0, errors={"status": status_errors}
    )


def test_an_invalid_round_is_counted_and_never_in_the_median():
    row = Row(
        key="k",
        scenario="s",
        a_label="a",
        b_label="b",
        unit="req/s",
        a=lambda r: r["a"].rps,
        b=lambda r: r["b"].rps,
        a_side="a",
        b_side="b",
        target=Target(">=", 0.5),
    )
    rounds = [
        {"a": _sample(50), "b": _sample(100)},
        {"a": _sample(900, status_errors=3), "b": _sample(100)},
        {"a": _sample(70), "b": _sample(100)},
    ]
    result = summarize(row, "SQLite", rounds)
    assert result.ratios == [0.5, None, 0.7]
    assert result.median == 0.6
    assert result.spread == (0.5, 0.7)
    assert result.invalid_rounds == 1
    assert result.errors == 3
    assert result.met is True
