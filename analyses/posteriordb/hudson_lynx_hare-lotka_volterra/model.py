"""Lotka-Volterra predator-prey ODE on the Hudson's Bay lynx and hare pelts (posteriordb
hudson_lynx_hare-lotka_volterra), lognormal measurement errors. The ODE is solved by JAX's own
adaptive Dormand-Prince solver (`jax.experimental.ode.odeint`, differentiable by its adjoint):
it ships with JAX, so no further dependency, and it is the same RK45 family as Stan's
integrate_ode_rk45, with comparable tolerances."""
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.experimental.ode import odeint


def dz_dt(z, t, theta):
    u, v = z[0], z[1]
    alpha, beta, gamma, delta = theta[0], theta[1], theta[2], theta[3]
    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


def model(N, ts, y_init, y):
    theta = numpyro.sample("theta", dist.TruncatedNormal(jnp.array([1.0, 0.05, 1.0, 0.05]),
                                                         jnp.array([0.5, 0.05, 0.5, 0.05]), low=0.0).to_event(1))
    z_init = numpyro.sample("z_init", dist.LogNormal(jnp.log(10.0), 1).expand([2]).to_event(1))
    sigma = numpyro.sample("sigma", dist.LogNormal(-1, 1).expand([2]).to_event(1))
    times = jnp.concatenate([jnp.zeros(1), ts])
    z = odeint(dz_dt, z_init, times, theta, rtol=1e-5, atol=1e-3, mxstep=500)[1:]
    numpyro.sample("y_init", dist.LogNormal(jnp.log(z_init), sigma).to_event(1), obs=y_init)
    with numpyro.plate("times", N):
        numpyro.sample("y", dist.LogNormal(jnp.log(z), sigma).to_event(1), obs=y)
