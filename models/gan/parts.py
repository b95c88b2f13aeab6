"""A GAN's networks and its min-max game: generator and discriminator MLPs in Flax (the VAE's
`MLP`), trained with optax's Adam by alternating updates (Goodfellow et al. 2014, the
non-saturating generator loss).

    discriminator: minimise  E_data softplus(-D(x)) + E_z softplus(D(G(z)))  [+ gamma/2 E_data |grad_x D(x)|^2]
    generator:     minimise  E_z softplus(-D(G(z)))

The optional R1 gradient penalty (Mescheder, Geiger & Nowozin 2018, `--penalty gamma`) keeps
the discriminator flat on the data, which damps the rotation of the game around its
equilibrium: the remedy the bench measures against mode collapse and oscillation.

Training runs in compiled chunks of `eval_every` steps (`lax.scan`); each step records both
losses and both gradient norms; after each chunk the generator maps the same latent draws to
rows whose mode coverage (`evaluation.py`) is recorded. The data are standardised per column for
training (constant columns left as they are) and generated rows mapped back.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from probgen.errors import InferenceError
from probgen.models.gan.evaluation import Modes, mode_coverage
from probgen.models._common.networks import MLP


@dataclasses.dataclass(frozen=True)
class Architecture:
    num_dims: int
    latent_dim: int
    hidden: tuple
    discriminator_hidden: tuple
    pack: int = 1

    def generator(self) -> MLP:
        return MLP(self.hidden, self.num_dims, "leaky_relu")

    def discriminator(self) -> MLP:
        return MLP(self.discriminator_hidden, 1, "leaky_relu")


def generate(params: dict, architecture: Architecture, rng_key, num: int, loc, scale) -> np.ndarray:
    """`num` rows G(z), z ~ N(0, I), in the data's units."""
    z = jax.random.normal(rng_key, (num, architecture.latent_dim))
    return np.asarray(architecture.generator().apply({"params": params["generator"]}, z)) * scale + loc


def train(x_train, architecture: Architecture, penalty: float, settings: dict, rng_key, modes: Modes,
          progress: bool = True) -> dict:
    """Train; returns params (generator, discriminator), loc, scale, the per-step history
    (d_loss, g_loss, d_grad_norm, g_grad_norm) and the per-evaluation coverage history."""
    x_train = np.asarray(x_train, np.float64)
    loc, scale = x_train.mean(0), x_train.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    data = jnp.asarray((x_train - loc) / scale, jnp.float32)
    steps, chunk = int(settings["steps"]), int(settings["eval_every"])
    pack = architecture.pack
    batch = min(int(settings["batch_size"]), len(data)) // pack * pack
    if steps < 1 or chunk < 1 or batch < 1:
        raise InferenceError(f"steps and eval_every must be >= 1, and batch_size >= --pack ({pack})")
    generator, discriminator = architecture.generator(), architecture.discriminator()
    g_key, d_key, loop_key, eval_key = jax.random.split(rng_key, 4)
    params = {"generator": generator.init(g_key, jnp.zeros((1, architecture.latent_dim)))["params"],
              "discriminator": discriminator.init(d_key, jnp.zeros((1, pack * architecture.num_dims)))["params"]}
    d_rate = float(settings["discriminator_learning_rate"]) or float(settings["learning_rate"])
    g_optimizer = optax.adam(float(settings["learning_rate"]), b1=0.5)
    d_optimizer = optax.adam(d_rate, b1=0.5)
    states = (g_optimizer.init(params["generator"]), d_optimizer.init(params["discriminator"]))

    def critic(d_params, x):  # packing: D judges `pack` rows at once (PacGAN), so it sees their diversity
        return discriminator.apply({"params": d_params}, x.reshape(-1, pack * x.shape[-1]))[:, 0]

    def d_loss(d_params, g_params, real, z):
        fake = generator.apply({"params": g_params}, z)
        loss = jax.nn.softplus(-critic(d_params, real)).mean() + jax.nn.softplus(critic(d_params, fake)).mean()
        if penalty > 0:
            gradients = jax.grad(lambda x: critic(d_params, x).sum())(real)
            loss = loss + 0.5 * penalty * (gradients**2).sum(1).mean()
        return loss

    def g_loss(g_params, d_params, z):
        return jax.nn.softplus(-critic(d_params, generator.apply({"params": g_params}, z))).mean()

    def step(carry, key):
        params, (g_state, d_state) = carry
        rows_key, z_key, z2_key = jax.random.split(key, 3)
        real = data[jax.random.randint(rows_key, (batch,), 0, data.shape[0])]
        z = jax.random.normal(z_key, (batch, architecture.latent_dim))
        d_value, d_grads = jax.value_and_grad(d_loss)(params["discriminator"], params["generator"], real, z)
        updates, d_state = d_optimizer.update(d_grads, d_state)
        d_params = optax.apply_updates(params["discriminator"], updates)
        z2 = jax.random.normal(z2_key, (batch, architecture.latent_dim))
        g_value, g_grads = jax.value_and_grad(g_loss)(params["generator"], d_params, z2)
        updates, g_state = g_optimizer.update(g_grads, g_state)
        g_params = optax.apply_updates(params["generator"], updates)
        record = jnp.stack([d_value, g_value, optax.tree.norm(d_grads), optax.tree.norm(g_grads)])
        return ({"generator": g_params, "discriminator": d_params}, (g_state, d_state)), record

    run_chunk = jax.jit(lambda carry, keys: jax.lax.scan(step, carry, keys))
    fixed_z = jax.random.normal(eval_key, (int(settings["eval_samples"]), architecture.latent_dim))
    sample = jax.jit(lambda g_params: generator.apply({"params": g_params}, fixed_z))
    carry = (params, states)
    records, evaluations = [], {"step": [], "modes_hit": [], "high_quality": [], "kl_modes": [], "histogram": [],
                                "seconds": []}
    done = 0
    with tqdm(total=steps, desc="GAN", disable=not progress, unit="step") as bar:
        while done < steps:
            started = time.perf_counter()
            keys = jax.random.split(jax.random.fold_in(loop_key, done), chunk)
            carry, record = run_chunk(carry, keys)
            record = np.asarray(record)
            if not np.all(np.isfinite(record)):
                bad = done + int(np.flatnonzero(~np.isfinite(record).all(1))[0])
                raise InferenceError(f"the GAN's losses became NaN or infinite at step {bad}; try a smaller "
                                     "--learning-rate or a --penalty")
            records.append(record)
            done += chunk
            rows = np.asarray(sample(carry[0]["generator"]), np.float64) * scale + loc
            coverage = mode_coverage(rows, modes)
            for name in ("modes_hit", "high_quality", "kl_modes", "histogram"):
                evaluations[name].append(coverage[name])
            evaluations["step"].append(done)
            evaluations["seconds"].append(time.perf_counter() - started)
            bar.update(chunk)
            bar.set_postfix(d=f"{record[:, 0].mean():.3f}", g=f"{record[:, 1].mean():.3f}",
                            modes=f"{coverage['modes_hit']}/{modes.count}")
    history = np.concatenate(records)
    return {"params": jax.tree.map(np.asarray, carry[0]), "loc": loc, "scale": scale,
            "steps": {name: history[:, i] for i, name in enumerate(("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"))},
            "evaluations": {name: np.asarray(value) for name, value in evaluations.items()}}
