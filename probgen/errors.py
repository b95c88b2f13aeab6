"""Errors that probgen raises for bad input.

Every error names the offending input (file, column, value, option) so that the message alone
tells a user what to fix. The CLI prints `ProbgenError` messages without a traceback and exits
with status 2.
"""


class ProbgenError(Exception):
    """Base class of every error probgen raises on purpose."""


class DataError(ProbgenError):
    """The data cannot be used: a missing file, an empty table, a bad column or value."""


class ModelError(ProbgenError):
    """The model cannot be found or loaded, or its options are invalid."""


class RunFolderError(ProbgenError):
    """A run folder cannot be written or read."""


class InferenceError(ProbgenError):
    """Inference was asked for something it cannot do (unknown method, bad settings)."""
