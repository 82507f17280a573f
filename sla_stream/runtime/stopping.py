"""SIGTERM while the worker starts: held, then handed to the worker's graceful stop.

Importing Faust, creating topics and building the app take seconds before Faust's worker
installs its signal handlers. A SIGTERM then must neither kill the process by the default
action nor be raised as an exception into whatever runs (inside asyncio it can land in an
unrelated task and be lost). It is blocked instead, and stays pending until the worker's
handlers are in place, which then stop the worker gracefully.
"""

from __future__ import annotations

import signal


def hold_sigterm() -> None:
    """Keep a SIGTERM pending from now on (the calling thread, and threads it starts)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def release_sigterm() -> None:
    """Deliver a pending SIGTERM, and any later one, to the handler now installed."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def ignore_sigterm() -> None:
    """Once the worker has stopped and closed its event loop (which restores the default
    action), a late SIGTERM has nothing left to stop and must not turn a clean exit into -15."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
