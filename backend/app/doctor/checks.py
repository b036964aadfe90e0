"""What every check returns: `Check(name, status, message, fix)`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Check", "Status"]


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: `fix` says what to do about it (empty when there is nothing to do).

    A check returns a list of them, one per finding; a healthy check returns one `ok` row.
    """

    name: str
    status: Status
    message: str
    fix: str = ""
