"""What every benchmark script shares: the median wall time of repeats, and the device label."""

from __future__ import annotations

import time

import numpy as np


def timed(function, repeats: int = 1) -> float:
    """Median wall time in seconds of `repeats` calls of `function()` (make it block until its
    result is ready: JAX dispatches asynchronously)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def device() -> str:
    """'platform:kind' of JAX's first device, for labelling figures (e.g. 'gpu:NVIDIA H100')."""
    import jax

    first = jax.devices()[0]
    return f"{first.platform}:{getattr(first, 'device_kind', '')}"
