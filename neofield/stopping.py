"""Ctrl-C and SIGTERM during a fit: the first asks the loop to stop at the next step boundary, where its
state is whole and can be checkpointed; a second stops it at once."""

from __future__ import annotations

import contextlib
import signal as signals
import threading
from collections.abc import Iterator


class StopRequest:
    """The fit's handler of SIGINT and SIGTERM: the first signal asks the loop to stop at
    the next step boundary (where its state is whole); a second one stops it at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


@contextlib.contextmanager
def interrupts() -> Iterator[StopRequest]:
    """Install :class:`StopRequest` for Ctrl-C and SIGTERM while the fit runs (in the main thread,
    where Python delivers signals; signals ignored before stay ignored) and restore the old handlers."""
    stop = StopRequest()
    previous = {}
    try:
        if threading.current_thread() is threading.main_thread():
            for sig in (signals.SIGINT, signals.SIGTERM):
                handler = signals.getsignal(sig)
                if handler is not signals.SIG_IGN:
                    previous[sig] = handler
                    signals.signal(sig, stop)
        yield stop
    finally:
        for sig, handler in previous.items():
            signals.signal(sig, handler if handler is not None else signals.SIG_DFL)
