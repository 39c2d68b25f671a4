"""FHIR date, dateTime and instant values as [low, high) ranges of naive UTC datetimes.

A value stands for the whole interval its precision implies: "2026" is the year, "2026-11-24"
the day, "2026-11-24T10:00:00Z" that second. See: https://hl7.org/fhir/R4/search.html#date
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MIN = datetime(1, 1, 1)
MAX = datetime(9999, 12, 31, 23, 59, 59)

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})"
    r"(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class DateFormatError(ValueError):
    """Not a FHIR date, dateTime or instant."""


def parse_range(text: str) -> tuple[datetime, datetime]:
    """[low, high) in naive UTC for a FHIR date/dateTime/instant (a value without zone is UTC)."""
    m = _DATE_RE.match(text)
    if not m:
        raise DateFormatError(f"'{text}' is not a valid date")
    try:
        low = _low(m)
    except ValueError as err:
        raise DateFormatError(f"'{text}' is not a valid date: {err}") from None
    high = _add_precision(low, m)
    return _utc(low, m.group("tz")), _utc(high, m.group("tz"))


def _low(m: re.Match) -> datetime:
    g = m.groupdict()
    micro = int(round(float(g["f"]) * 1_000_000)) if g["f"] else 0
    return datetime(int(g["y"]), int(g["m"] or 1), int(g["d"] or 1), int(g["H"] or 0), int(g["M"] or 0),
                    int(g["S"] or 0), min(micro, 999_999))


def _add_precision(low: datetime, m: re.Match) -> datetime:
    g = m.groupdict()
    try:
        if g["m"] is None:
            return low.replace(year=low.year + 1)
        if g["d"] is None:
            return low.replace(year=low.year + low.month // 12, month=low.month % 12 + 1)
        if g["H"] is None:
            return low + timedelta(days=1)
        if g["S"] is None:
            return low + timedelta(minutes=1)
        if g["f"] is None:
            return low + timedelta(seconds=1)
        return low + timedelta(seconds=10 ** -(len(g["f"]) - 1))
    except (ValueError, OverflowError):
        return MAX


def _utc(value: datetime, tz: str | None) -> datetime:
    if not tz or tz == "Z" or value in (MIN, MAX):
        return value
    sign = 1 if tz[0] == "+" else -1
    offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    try:
        return value - sign * offset
    except OverflowError:
        return value


def instant(value: datetime) -> str:
    """A FHIR instant with millisecond precision for a naive UTC datetime."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def http_date(value: datetime) -> str:
    """An RFC 9110 HTTP-date (Last-Modified) for a naive UTC datetime."""
    return value.replace(tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def utcnow() -> datetime:
    """Now, as naive UTC truncated to milliseconds (what meta.lastUpdated carries)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
