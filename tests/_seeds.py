"""The suite's base seed: `PROBGEN_TEST_SEED=N make test` runs every statistical test under
other draws than the default, so that a threshold sitting inside Monte Carlo noise shows up as
a failure here rather than on the next machine. Tests write `seeded(k)` where they would write
the literal seed k; with the variable unset (CI), seeded(k) == k."""

import os

BASE_SEED = int(os.environ.get("PROBGEN_TEST_SEED", "0"))


def seeded(offset: int) -> int:
    """The seed a test uses for its `offset`-th stream: BASE_SEED + offset (kept below 2**31)."""
    return (BASE_SEED * 7919 + int(offset)) % (2**31 - 1)
