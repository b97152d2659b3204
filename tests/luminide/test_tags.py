"""Template filters the pages share with their live scripts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from luminide.templatetags.luminide_tags import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.4, "0s"),
        (15.6, "16s"),  # rounded like static/js/clocks.js, so a page and its list agree
        (2.5, "3s"),  # halves up: Python's round() would say 2s
        (59.5, "1m 00s"),
        (75.7, "1m 16s"),
        (3600 + 125, "1h 02m"),
        (47 * 3600 + 59 * 60, "47h 59m"),
        (50 * 3600, "2d 2h"),
    ],
)
def test_duration_reads_as_the_live_clock_does(seconds, text):
    assert duration(None if seconds is None else timedelta(seconds=seconds)) == text
