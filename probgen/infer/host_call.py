"""A host (NumPy) computation inside compiled code, without `jax.pure_callback`'s device copies.

`jax.pure_callback` (JAX 0.10) first `device_put`s every argument onto CPU device 0 and then
reads it back. With chains split over several CPU devices (pmap, the CLI's default layout),
those copies wait on the device computations that are themselves waiting in their callbacks:
the low-rank warm-up of a 102-dimensional stochastic-volatility model hung at iteration ~300
every time, all four callback threads blocked in `np.asarray` of their draws. XLA already
hands a host callback its operands as NumPy arrays, so `host_call` lowers to the same host
callback (JAX's `emit_python_callback`) and gives `fn` those arrays directly: nothing is
copied to a device, nothing waits on one.

`fn(*arrays) -> tuple of arrays` must accept its operands with extra leading axes (one per
`vmap`, the same on every operand) and return results with the same leading axes; it is a
pure function (no side effects), called once per device under pmap. It relies on JAX's
private `emit_python_callback`: the code's one use of `jax._src`, kept to this module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

host_call_p = Primitive("probgen_host_call")
host_call_p.multiple_results = True


def host_call(fn, args, like):
    """`fn(*args)` computed on the host; `like`: arrays with the shapes and dtypes it returns."""
    out = tuple((tuple(jnp.shape(x)), np.dtype(jnp.result_type(x))) for x in like)
    return tuple(host_call_p.bind(*(jnp.asarray(a) for a in args), fn=fn, out=out))


def _impl(*args, fn, out):
    results = fn(*(np.asarray(a) for a in args))
    return [jnp.asarray(np.asarray(r, dtype)) for r, (_, dtype) in zip(results, out)]


def _abstract(*args, fn, out):
    return [jax.core.ShapedArray(shape, dtype) for shape, dtype in out]


def _lowering(ctx, *operands, fn, out):
    from jax._src.callback import _callback_op_sharding, emit_python_callback

    def callback(*arrays):
        return tuple(np.asarray(r, dtype) for r, (_, dtype) in zip(fn(*arrays), out))

    sharding = _callback_op_sharding(ctx.module_context.axis_context, None, ctx.avals_out)
    results, _, _ = emit_python_callback(ctx, callback, None, list(operands), ctx.avals_in, ctx.avals_out,
                                         has_side_effect=False, returns_token=False, sharding=sharding)
    return results


def _batch(args, dims, *, fn, out):
    """vmap: every operand gets the batch axis first (broadcast where it had none); `fn` sees it."""
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    moved = [jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
             for a, d in zip(args, dims)]
    batched = tuple(((size, *shape), dtype) for shape, dtype in out)
    return host_call_p.bind(*moved, fn=fn, out=batched), [0] * len(out)


host_call_p.def_impl(_impl)
host_call_p.def_abstract_eval(_abstract)
mlir.register_lowering(host_call_p, _lowering)
batching.primitive_batchers[host_call_p] = _batch
