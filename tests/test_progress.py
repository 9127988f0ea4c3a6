"""Progress bars that also report into log files (one line per refresh, no carriage returns)."""

from __future__ import annotations

import io
import time

from less.utils import progress_bar


def test_progress_bar_writes_plain_lines_into_a_log_file():
    log = io.StringIO()  # not a terminal, like exp/log/run-<task>.log
    for _ in progress_bar(range(20), file=log, log_interval=0.0, desc="epoch 1", unit="batch"):
        time.sleep(0.001)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 2 and all(line.startswith("epoch 1:") for line in lines)
    assert "20/20" in lines[-1]


def test_progress_bar_in_a_log_file_is_rate_limited():
    log = io.StringIO()
    for _ in progress_bar(range(1000), file=log, log_interval=3600.0, desc="decode"):
        pass
    # the first line and the final one, nothing in between within an hour
    assert len(log.getvalue().splitlines()) <= 3
