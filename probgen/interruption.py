"""What Ctrl-C means at this moment of a `probgen` command: the line printed as it exits.

Kept apart from `probgen.cli` because the command also runs as `python -m probgen.cli`, where
that module is `__main__` and an import of `probgen.cli` elsewhere would be a second copy with
state of its own.
"""

from __future__ import annotations

from typing import Callable

NOTHING_WRITTEN = "probgen: interrupted; no run folder was written"
_current: str | Callable[[], str] = NOTHING_WRITTEN


def set_message(message: str | Callable[[], str]) -> None:
    """What an interruption now means: a line, or a function that finds it (an MCMC run counts
    the chunks it saved, and removes a folder that holds none)."""
    global _current
    _current = message


def reset() -> None:
    set_message(NOTHING_WRITTEN)


def message() -> str:
    return _current() if callable(_current) else _current
