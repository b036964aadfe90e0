"""Go's `time.ParseDuration`, which GoTrue's admin API applies to `ban_duration` (`admin.go`).

A port of Go's `src/time/format.go` (`ParseDuration`, `leadingInt`, `leadingFraction`, `quote`),
so that a duration GoTrue accepts is accepted here with the same value, and one it refuses is
refused with the same words: `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+` over ASCII digits only, units
`ns us µs μs ms s m h`, at most 2^63-1 nanoseconds (about 292 years). Go reads the string as
UTF-8 bytes, so this does too: a non-ASCII digit is no digit, and no input reaches `float()`
or `int()` (no "NaN", no "1e999", no unbounded integer).
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["DurationInvalid", "parse_go_duration"]

_UNITS = {
    b"ns": 1,
    b"us": 1_000,
    "µs".encode(): 1_000,  # U+00B5 micro sign
    "μs".encode(): 1_000,  # U+03BC Greek small letter mu
    b"ms": 1_000_000,
    b"s": 1_000_000_000,
    b"m": 60 * 1_000_000_000,
    b"h": 3600 * 1_000_000_000,
}
_MAX = 1 << 63  # Go's uint64 bounds, in nanoseconds
_DIGITS = b"0123456789"


class DurationInvalid(ValueError):
    """Not a Go duration; the message is Go's error text (`time: …`)."""


def _quote(raw: bytes) -> str:
    """Go's `time.quote`: printable ASCII as is (with `"` and `\\` escaped), every other byte
    of a non-ASCII or control character as `\\xNN`."""
    out = ['"']
    text = raw.decode("utf-8", errors="surrogatepass")
    for char in text:
        encoded = char.encode("utf-8", errors="surrogatepass")
        if len(encoded) > 1 or char < " ":
            out.extend(f"\\x{byte:02x}" for byte in encoded)
        else:
            if char in '"\\':
                out.append("\\")
            out.append(char)
    out.append('"')
    return "".join(out)


def _leading_int(s: bytes) -> tuple[int, bytes]:
    x = 0
    i = 0
    while i < len(s) and s[i] in _DIGITS:
        if x > _MAX // 10:
            raise OverflowError
        x = x * 10 + (s[i] - 0x30)
        if x > _MAX:
            raise OverflowError
        i += 1
    return x, s[i:]


def _leading_fraction(s: bytes) -> tuple[int, int, bytes]:
    """The fraction's digits as an integer and its scale; past uint64 it stops gaining
    precision rather than fail, as Go's."""
    x, scale, i, overflow = 0, 1, 0, False
    while i < len(s) and s[i] in _DIGITS:
        if not overflow:
            if x > (_MAX - 1) // 10:
                overflow = True
            else:
                y = x * 10 + (s[i] - 0x30)
                if y > _MAX:
                    overflow = True
                else:
                    x, scale = y, scale * 10
        i += 1
    return x, scale, s[i:]


def _nanoseconds(text: str) -> int:
    orig = text.encode("utf-8", errors="surrogatepass")
    invalid = DurationInvalid(f"time: invalid duration {_quote(orig)}")
    s = orig
    neg = False
    if s and s[:1] in (b"-", b"+"):
        neg = s[:1] == b"-"
        s = s[1:]
    if s == b"0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[:1] == b"." or s[0] in _DIGITS):
            raise invalid
        before = len(s)
        try:
            v, s = _leading_int(s)
        except OverflowError:
            raise invalid from None
        pre = before != len(s)
        f, scale, post = 0, 1, False
        if s[:1] == b".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == 0x2E or s[i] in _DIGITS):
            i += 1
        if i == 0:
            raise DurationInvalid(f"time: missing unit in duration {_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationInvalid(
                f"time: unknown unit {_quote(unit_name)} in duration {_quote(orig)}"
            )
        if v > _MAX // unit:
            raise invalid
        v *= unit
        if f > 0:
            # Go's float64 arithmetic here, truncated as its uint64 conversion truncates.
            v += int(float(f) * (float(unit) / float(scale)))
            if v > _MAX:
                raise invalid
        total += v
        if total > _MAX:
            raise invalid
    if neg:
        return -total
    if total > _MAX - 1:
        raise invalid
    return total


def parse_go_duration(text: str) -> timedelta:
    """Go's `time.ParseDuration` of `text`, truncated to the microsecond (a timedelta's unit).

    Raises:
        DurationInvalid: with Go's message, e.g. `time: missing unit in duration "24"`.
    """
    nanoseconds = _nanoseconds(text)
    microseconds = abs(nanoseconds) // 1000
    return timedelta(microseconds=microseconds if nanoseconds >= 0 else -microseconds)
