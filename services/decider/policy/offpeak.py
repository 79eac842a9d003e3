"""Off-peak hours in the configured time zone (the original's energy-mode window)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def is_off_peak(at: datetime, zone: ZoneInfo, start_hour: int, end_hour: int) -> bool:
    """True inside [start, end) local time; a window with start > end wraps past midnight.

    start == end is an empty window (the original would treat it as "always off-peak").
    """
    if start_hour == end_hour:
        return False
    hour = at.astimezone(zone).hour
    if start_hour < end_hour:
        return start_hour <= hour < end_hour
    return hour >= start_hour or hour < end_hour
