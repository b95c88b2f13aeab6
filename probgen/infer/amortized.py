"""Minibatch SVI for amortised models (the VAE): Adam with an optional learning-rate schedule,
KL annealing, a held-out ELBO watched for early stopping, and checkpoints that a later run
resumes from.

Training runs in compiled chunks of `eval_every` steps (one `lax.scan` each). After each chunk
the held-out ELBO per example is computed (the same draws from q every time, so successive
values compare the parameters, not the noise), the progress bar shows step, training ELBO and
held-out ELBO, and the parameters with the best held-out ELBO so far are kept. Training stops
when `patience` evaluations in a row have not improved on the best by more than `min_delta`
nats per example, or after `steps`.

Checkpoints hold everything the loop needs to carry on exactly as if it had not stopped: the
SVI state (parameters, Adam's moments and step, the random key), the step count, the best
parameters and score, the history. They are written every `checkpoint_every` steps (rounded to
whole chunks) by writing a temporary file and renaming it, so an interruption loses at most the
steps since the last checkpoint and never leaves a half-written one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro import optim
from numpyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

from probgen.errors import InferenceError

DEFAULTS = {
    "steps": 20000,  # upper bound; early stopping usually ends training first
    "batch_size": 128,
    "learning_rate": 1e-3,
    "schedule": "constant",  # constant | cosine (decays to 10% over `steps`) | warmup_cosine
    "kl_warmup": 0,  # steps over which the KL weight rises linearly from 0 to 1 (0: always 1)
    "eval_every": 250,  # steps per compiled chunk, held-out evaluation and progress update
    "patience": 10,  # evaluations without improvement before stopping
    "min_delta": 0.01,  # nats per example that count as an improvement
    "checkpoint_every": 1000,  # steps between checkpoints (rounded up to whole chunks)
    "eval_samples": 1,  # draws from q per example for the held-out ELBO
}
CHECKPOINT = "checkpoint.pkl"


@dataclasses.dataclass
class TrainResult:
    params: dict  # the best parameters (by held-out ELBO)
    history: dict  # step, train_elbo, heldout_elbo (per example, nats), seconds (wall time of the chunk
    # of steps and its evaluation; the first includes compiling) per evaluation
    steps_run: int
    stopped_early: bool
    best_step: int
    resumed_from: int  # step of the checkpoint this run resumed from (0: a fresh start)


def learning_rate_schedule(settings: dict):
    """Adam's step size: a constant, or cosine decay to 10% over `steps` (with a linear warm-up
    over the first 5% for warmup_cosine)."""
    rate, steps, name = float(settings["learning_rate"]), int(settings["steps"]), settings["schedule"]
    if rate <= 0:
        raise InferenceError(f"learning_rate must be > 0, got {rate}")
    if name == "constant":
        return rate
    if name == "cosine":
        return optax.cosine_decay_schedule(rate, steps, alpha=0.1)
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, rate, max(1, steps // 20), steps, end_value=0.1 * rate)
    raise InferenceError(f"unknown schedule '{name}' (choose constant, cosine or warmup_cosine)")


def _kl_weight(step, warmup: int):
    return jnp.minimum(1.0, (step + 1.0) / warmup) if warmup > 0 else jnp.asarray(1.0)


def _atomic_pickle(value, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_checkpoint(folder) -> dict:
    """The checkpoint in `folder` (a run folder or a training folder), or InferenceError."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise InferenceError(f"no checkpoint to resume from: '{path}' does not exist")
    try:
        with open(path, "rb") as file:
            return pickle.load(file)
    except (pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise InferenceError(f"checkpoint '{path}' cannot be read: {exc}") from None


def train(model: Callable, guide: Callable, model_kwargs: Callable[..., dict], x_train, x_heldout, settings: dict,
          rng_key, evaluate: Callable, *, progress: bool = True, checkpoint_dir=None, resume: dict | None = None,
          stop_after: int | None = None) -> TrainResult:
    """Train `guide` and `model` by minibatch SVI.

    model_kwargs(num_points, batch_size, kl_weight) -> the keyword arguments of model and guide.
    evaluate(params, x, rng_key) -> per-example ELBO (N,) at KL weight 1, used on the held-out
    rows. checkpoint_dir: where checkpoints go (None: none). resume: a loaded checkpoint to
    carry on from (same settings and data). stop_after: stop (as if interrupted) once this many
    steps have run, for tests of resuming.
    """
    settings = {**DEFAULTS, **settings}
    for name in ("steps", "batch_size", "eval_every", "patience", "checkpoint_every", "eval_samples"):
        if int(settings[name]) < 1:
            raise InferenceError(f"{name} must be >= 1, got {settings[name]}")
    x_train, x_heldout = jnp.asarray(x_train), jnp.asarray(x_heldout)
    num_train = x_train.shape[0]
    batch_size = min(int(settings["batch_size"]), num_train)
    chunk, max_steps, warmup = int(settings["eval_every"]), int(settings["steps"]), int(settings["kl_warmup"])
    checkpoint_chunks = max(1, math.ceil(int(settings["checkpoint_every"]) / chunk))
    svi = SVI(model, guide, optim.optax_to_numpyro(optax.adam(learning_rate_schedule(settings))), Trace_ELBO())
    init_key, eval_key = jax.random.split(rng_key)
    state = svi.init(init_key, x_train, **model_kwargs(num_train, batch_size, 1.0))

    @jax.jit
    def run_chunk(state, first_step):
        def body(state, step):
            kwargs = model_kwargs(num_train, batch_size, _kl_weight(step, warmup))
            state, loss = svi.update(state, x_train, **kwargs)
            return state, loss

        return jax.lax.scan(body, state, first_step + jnp.arange(chunk))

    score_heldout = jax.jit(lambda params: evaluate(params, x_heldout, eval_key).mean())

    step, best, stale, resumed_from = 0, None, 0, 0
    history = {"step": [], "train_elbo": [], "heldout_elbo": [], "seconds": []}
    if resume is not None:
        leaves, treedef = jax.tree_util.tree_flatten(state)
        if len(resume["state"]) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(resume["state"], leaves)):
            raise InferenceError("the checkpoint does not fit this model: its parameters have other shapes "
                                 "(different architecture or data size?)")
        state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in resume["state"]])
        step, history, stale = resume["step"], resume["history"], resume["stale"]
        best = (resume["best_value"], resume["best_step"], jax.tree.map(jnp.asarray, resume["best_params"]))
        resumed_from = step
    stopped_early = False
    chunks_done = 0
    with tqdm(total=max_steps, initial=step, desc="SVI", disable=not progress, unit="step") as bar:
        while step < max_steps and not stopped_early:
            started = time.perf_counter()
            state, losses = run_chunk(state, jnp.asarray(step))
            losses = np.asarray(losses)
            if not np.all(np.isfinite(losses)):
                bad = step + int(np.flatnonzero(~np.isfinite(losses))[0])
                raise InferenceError(f"the loss became {losses[~np.isfinite(losses)][0]} at step {bad}; try a smaller "
                                     "--learning-rate or a longer --kl-warmup")
            step += chunk
            chunks_done += 1
            params = svi.get_params(state)
            heldout = float(score_heldout(params))
            train_elbo = float(-losses.mean() / num_train)  # Trace_ELBO's loss is for all N rows
            history["step"].append(step)
            history["train_elbo"].append(train_elbo)
            history["heldout_elbo"].append(heldout)
            history["seconds"].append(time.perf_counter() - started)
            # the best parameters are always kept; only a gain of more than min_delta resets patience
            if best is None or heldout > best[0]:
                enough = best is None or heldout > best[0] + float(settings["min_delta"])
                best, stale = (heldout, step, params), (0 if enough else stale + 1)
            else:
                stale += 1
            stopped_early = stale >= int(settings["patience"])
            bar.update(chunk)
            bar.set_postfix(elbo=f"{train_elbo:.3f}", heldout=f"{heldout:.3f}", best=f"{best[0]:.3f}")
            at_end = step >= max_steps or stopped_early or (stop_after is not None and step >= stop_after)
            if checkpoint_dir is not None and (chunks_done % checkpoint_chunks == 0 or at_end):
                _atomic_pickle({
                    "state": [np.asarray(v) for v in jax.tree_util.tree_leaves(state)], "step": step,
                    "history": history, "stale": stale, "best_value": best[0], "best_step": best[1],
                    "best_params": jax.tree.map(np.asarray, best[2]), "settings": settings,
                }, Path(checkpoint_dir) / CHECKPOINT)
            if stop_after is not None and step >= stop_after:
                break
    return TrainResult(params=jax.tree.map(np.asarray, best[2]), history=history, steps_run=step,
                       stopped_early=stopped_early, best_step=best[1], resumed_from=resumed_from)
