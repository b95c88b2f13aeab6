"""What every `probgen` command shares: exit statuses, the usage error, and reading a flag
before the parser exists (the model's options and JAX's devices depend on it)."""

from __future__ import annotations

EXIT_STEP_FAILED = 1  # a step after inference failed; the run folder holds the draws and names it
EXIT_BAD_INPUT = 2
EXIT_FAILED_VERDICT = 3  # finished and written, but the verdict is FAILED: do not use the estimates
EXIT_INTERRUPTED = 130


def verdict_status(overall: str) -> int:
    """The exit status of a command that finished with this overall verdict."""
    return EXIT_FAILED_VERDICT if overall == "failed" else 0

def raise_usage(message: str):
    from probgen.errors import ProbgenError

    raise ProbgenError(message)


SWITCHES = {"--quiet", "--no-plots", "--overwrite", "--standardize", "--help", "-h"}


def _model_argument(argv: list[str]) -> str | None:
    """The MODEL positional of `probgen fit`, found before full parsing so that the model's
    own options can be added to the parser (and shown by --help). Every flag but the
    switches takes a value."""
    if not argv or argv[0] not in ("fit", "sbc", "graph"):
        return None
    tokens = iter(argv[1:])
    for token in tokens:
        if token.startswith("-"):
            if token not in SWITCHES and "=" not in token:
                next(tokens, None)
            continue
        return token
    return None


def _flag_argument(argv: list[str], flag: str) -> str | None:
    """The value of `flag` in argv (the last one given), read before full parsing."""
    found = None
    for index, token in enumerate(argv):
        if token.startswith(flag + "="):
            found = token.split("=", 1)[1]
        elif token == flag and index + 1 < len(argv):
            found = argv[index + 1]
    return found


def _chains_argument(argv: list[str], default: int = 4) -> int:
    """The value of --chains if given and valid (`default` otherwise), read before JAX starts."""
    value = _flag_argument(argv, "--chains")
    if value is None:
        return default
    try:
        return max(1, int(value))
    except ValueError:
        return default
