"""Device check: the low-rank warm-up's host step (`probgen.infer.host_call`) on an accelerator.

`host_call` lowers to JAX's private `emit_python_callback`; this runs it where the operands live
on a GPU: under jit and vmap, and inside NumPyro's NUTS with the low-rank adaptation (4 chains,
vectorised and one after another) on a 60-dimensional correlated Gaussian, whose adapted metric
must match the known covariance. It loads only host_call.py and adaptation.py (by path), so it
runs with the JAX and NumPyro a GPU image has, without installing probgen.

    python benchmarks/gpu_host_call.py    # prints one line per check, exits 1 on a failure
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    for package in ("probgen", "probgen.infer"):  # bare packages: probgen's own imports stay out
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(ROOT / package.replace(".", "/"))]
            sys.modules[package] = module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    host_call = _load("probgen.infer.host_call", ROOT / "probgen/infer/host_call.py")
    adaptation = _load("probgen.infer.adaptation", ROOT / "probgen/infer/adaptation.py")
    print(f"jax {jax.__version__}, numpyro {numpyro.__version__}, devices {jax.devices()}")
    failures = 0

    def report(name, ok, detail=""):
        nonlocal failures
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name} {detail}")

    def host(x, y):
        return (x.sum(-1) + y,)

    def call(x, y):
        return host_call.host_call(host, (x, y), (y,))

    x = jnp.arange(12.0).reshape(3, 4)
    y = jnp.ones(3)
    expected = np.asarray(x).sum(-1) + 1
    report("jit", np.allclose(jax.jit(call)(x, y)[0], expected))
    batched = jax.jit(jax.vmap(call))(jnp.stack([x, 2 * x]), jnp.stack([y, y]))[0]
    report("vmap", np.allclose(batched, np.stack([expected, 2 * expected - 1])))

    # a correlated Gaussian: covariance with correlation 0.9 between neighbours' blocks
    dim = 60
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    scales = np.geomspace(0.01, 10.0, dim)
    covariance = (basis * scales ** 2) @ basis.T

    def model():
        numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(dim), covariance_matrix=jnp.asarray(covariance)))

    for method in ("vectorized", "sequential"):
        mcmc = MCMC(NUTS(model, dense_mass=True), num_warmup=1000, num_samples=1000, num_chains=4,
                    chain_method=method, progress_bar=False)
        start = time.perf_counter()
        with adaptation.adapting("low-rank"):
            mcmc.run(jax.random.PRNGKey(1), extra_fields=("num_steps",))
        draws = np.asarray(mcmc.get_samples()["x"])
        seconds = time.perf_counter() - start
        metric = np.asarray(mcmc.last_state.adapt_state.inverse_mass_matrix)
        metric = metric.reshape(-1, dim, dim)[0]
        # the metric against the covariance, by the spread of the eigenvalues of C^-1/2 M C^-1/2
        # (1 for a perfect metric); the draws' variances against the truth, along the basis
        inverse_root = np.linalg.inv(np.linalg.cholesky(covariance))
        whitened = np.linalg.eigvalsh(inverse_root @ metric @ inverse_root.T)
        condition = whitened.max() / whitened.min()
        ratio = (draws @ basis).var(0) / scales ** 2
        steps = np.asarray(mcmc.get_extra_fields()["num_steps"]).mean()
        report(f"NUTS low-rank {method}", condition < 10 and np.all(np.abs(ratio - 1) < 0.35),
               f"({seconds:.1f} s, metric condition {condition:.2f} vs covariance's {scales[-1]**2 / scales[0]**2:.0e}, "
               f"variance ratios {ratio.min():.2f}-{ratio.max():.2f}, mean steps {steps:.1f})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
