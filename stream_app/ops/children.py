"""Child processes that do not outlive the process that started them.

Workers started by the demo or the test bed run in their own session (so a signal reaches all of
them), which also detaches them from the terminal: if the parent is killed, they would run on.
:func:`tied_to_parent` is a ``preexec_fn`` that asks the kernel to send the child SIGTERM when its
parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere it does nothing).

The kernel sends it when the *thread* that started the child ends, not only the process: a child
started from a short-lived thread (a pool of the benchmark) would be stopped with it. So
:func:`tie` ties children to the parent only when they are started from the main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def tied_to_parent() -> None:
    """Run in the child between fork and exec: SIGTERM it when the parent dies."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def tie() -> Callable[[], None] | None:
    """The ``preexec_fn`` for a child started now: :func:`tied_to_parent` from the main thread, else None."""
    return tied_to_parent if threading.current_thread() is threading.main_thread() else None
