"""The one way a test waits: poll a condition until it holds, or fail naming what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    *,
    interval: float = 0.2,
    fail: bool = True,
) -> T | None:
    """Call ``condition`` every ``interval`` s until it returns something true, and return that. After
    ``timeout`` s it raises AssertionError ``waited N s for: <what>`` (``what`` a text, or a function giving one,
    such as a log's tail, called only then); with ``fail=False`` it returns None instead, for a caller that
    reports the time out itself. An assertion inside ``condition`` (a process that died) fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            if not fail:
                return None
            # An AssertionError, as a failed `assert` is: code that expects a wait to fail (a refused ACL) catches it.
            raise AssertionError(f"waited {timeout:.0f} s for: {what() if callable(what) else what}")
        time.sleep(interval)
