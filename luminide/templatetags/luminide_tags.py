"""Small display filters for the dashboard: durations, metric values, state badges."""

from __future__ import annotations

import math
from datetime import timedelta

from django import template
from django.utils.html import format_html

register = template.Library()

STATE_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "complete": "Complete",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "pruned": "Pruned",
    "idle": "Idle",
    "busy": "Busy",
    "offline": "Offline",
}


@register.filter
def duration(value: timedelta | None) -> str:
    """``2d 3h``, ``1h 02m``, ``3m 05s``, ``12s``; an em dash when unknown. Rounded to the
    second, as the pages' clocks (``static/js/clocks.js``) do."""
    if value is None:
        return "—"
    seconds = max(0, math.floor(value.total_seconds() + 0.5))  # halves up, as Math.round
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@register.filter
def metric(value: float | None, digits: int = 4) -> str:
    """A loss or score: 4 significant digits, ``diverged`` for inf/NaN, dash when missing."""
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number) or math.isinf(number):
        return "diverged"
    return f"{number:.{int(digits)}g}"


@register.filter
def state_badge(state: str) -> str:
    label = STATE_LABELS.get(state, state)
    return format_html('<span class="badge badge-{}">{}</span>', state, label)
