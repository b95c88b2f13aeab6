"""probgen.infer.host_call: a NumPy computation inside compiled code, on every chain layout."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from probgen.infer.host_call import host_call


def _host(x, y):
    """Row sums of x plus y, written for NumPy arrays with any leading axes."""
    assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)  # NumPy, never a device array
    return (x.sum(-1) + y, np.asarray(x.shape[-1], np.int32) + 0 * y.astype(np.int32))


def _call(x, y):
    return host_call(_host, (x, y), (y, y.astype(jnp.int32)))


def test_host_call_gives_numpy_the_operands_eagerly_under_jit_and_vmap():
    x = jnp.arange(12.0).reshape(3, 4)
    y = jnp.array([1.0, 2.0, 3.0])
    expected = np.asarray(x).sum(-1) + np.asarray(y)
    for function in (lambda a, b: _call(a, b), jax.jit(_call)):
        sums, width = function(x, y)
        np.testing.assert_allclose(sums, expected)
        assert sums.dtype == jnp.float32 and width.dtype == jnp.int32 and int(width[0]) == 4
    # vmap: the batch axis moved first (x's is its second), an unbatched operand broadcast
    sums, _ = jax.vmap(_call, in_axes=(1, None))(jnp.stack([x, 2 * x], axis=1), y)
    np.testing.assert_allclose(sums, np.stack([expected, 2 * expected - np.asarray(y)]))
    # nested vmap under jit inside a while loop's branch, as the warm-up uses it
    nested = jax.jit(jax.vmap(jax.vmap(lambda a, b: jax.lax.cond(b[0] > 0, _call, lambda a, b: (b, b.astype(jnp.int32)),
                                                                   a, b))))
    xs = jnp.broadcast_to(x, (2, 5, 3, 4))
    ys = jnp.broadcast_to(y, (2, 5, 3))
    np.testing.assert_allclose(nested(xs, ys)[0], np.broadcast_to(expected, (2, 5, 3)))


def test_host_call_in_a_loop_on_several_cpu_devices_does_not_hang():
    # jax.pure_callback deadlocked here (JAX 0.10: its device_put of the operands onto CPU
    # device 0 waits on the pmapped computations that wait in their callbacks): a loop of 200
    # host steps over 256 x 102 floats on 4 devices. In a fresh process, so that a hang is a
    # timeout, not a stuck suite.
    script = textwrap.dedent("""
        from probgen.devices import expose_cpu_devices
        expose_cpu_devices(4)
        import jax, jax.numpy as jnp, numpy as np
        from probgen.infer.host_call import host_call

        def host(x):
            return (x[:1] + 1.0,)

        def body(i, x):
            (y,) = host_call(host, (x,), (x[:1],))
            return x.at[0].set(y[0])

        out = jax.pmap(lambda x: jax.lax.fori_loop(0, 200, body, x))(jnp.zeros((4, 256, 102)))
        assert jax.local_device_count() == 4
        print(float(out[:, 0, 0].sum()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip()) == 800.0
