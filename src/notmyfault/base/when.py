"""Times as people write them for ``--since``, in journalctl's forms (systemd.time(7)).

- ISO 8601 dates and times: ``2026-11-01``, ``2026-11-01 12:00``, ``2026-11-01T12:00:30+01:00``;
- the named days ``today``, ``yesterday`` and ``tomorrow`` (their midnight), and ``now``;
- a span before now: ``1 hour ago``, ``2d ago``, ``-1h 30min``, ``90s ago``; one after it:
  ``+15min``, ``in 2 days``;
- seconds since the epoch: ``@1764600000``.

A time without a zone is in ``zone`` (the local one unless the caller says otherwise).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time

_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "M": 2629800, "month": 2629800, "months": 2629800,  # systemd's: 30.44 days
    "y": 31557600, "year": 31557600, "years": 31557600,  # and 365.25 days
}  # fmt: skip
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)")
_DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}
FORMS = "ISO 8601 (2026-11-01, 2026-11-01 12:00), today, yesterday, now, '1 hour ago', -2d, @EPOCH"
"""The forms a time may take, for error messages."""


def _span(text: str) -> float | None:
    """Seconds in a span such as ``1h 30min`` (a bare number is seconds); None if it is none."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    total, at = 0.0, 0
    for m in _PART.finditer(text):
        if m.start() != at:
            return None
        unit = m.group(2) if m.group(2) in _UNITS else m.group(2).lower()
        if unit not in _UNITS:
            return None
        total += float(m.group(1)) * _UNITS[unit]
        at = m.end()
    return total if at and not text[at:].strip() else None


def parse_when(text: str, now: float | None = None, zone: dt.tzinfo | None = None) -> float:
    """``text`` (see the module's docstring) as seconds since the epoch; ``now`` defaults to the
    clock. ValueError, one line naming the forms, when it is none of them."""
    now = time.time() if now is None else now
    raw = text.strip()
    word = raw.lower()
    bad = ValueError(f"{text!r} is not a time: give {FORMS}")
    if not raw:
        raise bad
    if word == "now":
        return now
    if word in _DAYS:
        today = dt.datetime.fromtimestamp(now, zone).date()
        midnight = dt.datetime.combine(today + dt.timedelta(days=_DAYS[word]), dt.time())
        return midnight.replace(tzinfo=zone).timestamp() if zone else midnight.timestamp()
    if raw.startswith("@"):
        try:
            epoch = float(raw[1:])
        except ValueError:
            raise bad from None
        if not math.isfinite(epoch):
            raise bad
        return epoch
    sign, span = 0, None
    if raw.startswith(("-", "+")):
        sign, span = (-1 if raw[0] == "-" else 1), _span(raw[1:])
    elif word.endswith(" ago"):
        sign, span = -1, _span(raw[:-4])
    elif word.startswith("in "):
        sign, span = 1, _span(raw[3:])
    if sign:
        if span is None:
            raise bad
        return now + sign * span
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise bad from None
    if when.tzinfo is None:
        return when.replace(tzinfo=zone).timestamp() if zone else when.timestamp()
    return when.timestamp()
