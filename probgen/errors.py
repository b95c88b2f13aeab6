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


def user_exception(exc: BaseException, function=None, filename: str | None = None) -> str | None:
    """'model file 'm.py', line 7: NameError: name 'mu' is not defined' when `exc` was raised
    in the file that defines `function` (a user's model), else None. The innermost frame in
    that file is named: the line of the user's own code that failed."""
    import traceback
    from pathlib import Path

    code = getattr(function, "__code__", None)
    filename = filename or (code.co_filename if code is not None else None)
    if filename is None:
        return None
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename]
    if not frames:
        return None
    where = frames[-1]
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"model file '{Path(where.filename).name}', line {where.lineno}, in {where.name}: "
            f"{type(exc).__name__}{': ' + message if message else ''}")
