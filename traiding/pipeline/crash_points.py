"""A test hook for the chaos tests: kill the process at a named point of the money path.

`TRAIDING_TEST_CRASH_AT=after-send:0.3` makes the process SIGKILL itself at the point `after-send` (an order
was sent and answered, its result not yet written anywhere) with probability 0.3. The variable is read only
when a point is reached, and nothing happens while it is unset, which it always is outside the tests.
"""

from __future__ import annotations

import os
import random
import signal

CRASH_AT_ENV = "TRAIDING_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    setting = os.environ.get(CRASH_AT_ENV)
    if not setting:
        return
    point, _, probability = setting.partition(":")
    if point == name and random.random() < float(probability or 1):  # nosec B311  # test crashes
        os.kill(os.getpid(), signal.SIGKILL)
