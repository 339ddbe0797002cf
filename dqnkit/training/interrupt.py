"""SIGTERM as Ctrl-C: a killed run writes its checkpoint like an interrupted one (the trainers' loops use it)."""
from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator


@contextlib.contextmanager
def sigterm_as_interrupt(enabled: bool) -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block, so a killed run writes its checkpoint like Ctrl-C."""
    old: Callable | int | None = None
    if enabled and hasattr(signal, "SIGTERM"):
        try:
            old = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        except ValueError:  # not in the main thread
            old = None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
