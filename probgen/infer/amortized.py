"""Minibatch SVI for amortised models (the VAE): Adam with an optional learning-rate schedule,
KL annealing, a held-out ELBO watched for early stopping, and checkpoints that a later run
resumes from.

Training runs in chunks of `eval_every` steps (compiled `lax.scan`s of up to `PIECE_STEPS` steps,
so the progress bar moves at least that often). After each chunk
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
import json
import math
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import optim
from numpyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

from probgen.checks import diagnostics
from probgen.errors import InferenceError
from probgen.hooks import Generate
from probgen.infer import durable
from probgen.infer.methods import Method, Setting, register
from probgen.infer.parts import DEFAULT_HOLDOUT, VALIDATION

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
# Arrays and a JSON record in one NumPy archive, read with allow_pickle=False: a run folder from
# elsewhere must never run code on `--resume` (unpickling a file can; reading an .npz cannot)
CHECKPOINT = "checkpoint.npz"
OLD_CHECKPOINT = "checkpoint.pkl"  # before: a pickle, which is refused (see load_checkpoint)


@dataclasses.dataclass(frozen=True)
class Objective:
    """The part the minibatch trainer needs (`ModelSpec.parts`): how to fit and judge a model
    whose per-row latents are inferred by an encoder network
    (the spec's guide) and whose parameters are network weights (a VAE): minibatch SVI with
    early stopping on held-out rows, in `probgen.infer.amortized`, instead of posterior draws
    of global parameters.

    The model and guide take the data as `x` and the keyword arguments `num_points`,
    `batch_size` (the minibatch of the data plate) and `kl_weight` (KL annealing) on top of
    `inputs.kwargs`.

    elbo:     (params, x, kwargs, rng_key) -> per-row ELBO (N,) in nats, with kwargs the
              model's keyword arguments for x: the validation score that early stopping watches.
    evaluate: (params, {part: ModelInputs}, options, rng_key) -> {group: xarray.Dataset}:
              per-row scores and whatever the report needs, stored in the InferenceData
              (parts: "training", "validation", "held_out", and "anomaly" when there is one).
    preprocess: optional (frame, options, seed) -> (rows to model, anomalous rows or None),
              applied to the whole table before it is split: transforms that must be drawn
              once (dequantisation noise), and rows kept out of training altogether and
              scored as anomalies.
    generate:  optional `probgen.hooks.Generate`, (idata, config, rng_key, num_rows) ->
              (num_rows, D) array: new rows from the fitted model in the data's units
              (`probgen sample`).
    stream:   names of per-row model arguments (from `inputs.observed` and `inputs.kwargs`)
              that the trainer streams from host memory, one minibatch per step, instead of
              holding the data as one device array and subsampling inside the model (the
              default, `x`). The model then takes `num_points` (all training rows) and the batch
              as given, in a `plate(..., num_points, subsample_size=batch)`; elbo gets a dict
              of these arrays instead of `x`. Memory on the device is bounded by the batch, and
              the batch can be split across devices (`probgen.infer.amortized.Stream`).
    only:     the minibatch trainer is the only way to fit the model (True, the VAE); False:
              it is the default and answers to --method svi, and the posterior methods (NUTS,
              MAP) fit the model too (pmf, on a subset).
    """

    elbo: Callable
    evaluate: Callable
    preprocess: Callable | None = None
    generate: Generate | None = None
    stream: tuple[str, ...] = ()
    only: bool = True


@dataclasses.dataclass
class TrainResult:
    params: dict  # the best parameters (by held-out ELBO)
    history: dict  # step, train_elbo, heldout_elbo (per example, nats), seconds (wall time of the chunk
    # of steps and its evaluation; the first includes compiling) per evaluation
    steps_run: int
    stopped_early: bool
    best_step: int
    resumed_from: int  # step of the checkpoint this run resumed from (0: a fresh start)


class Stream:
    """Training rows held in host memory and fed to the device a chunk of minibatches at a
    time, so device memory is bounded by `eval_every` x `batch_size` rows, not the data.

    arrays: name -> (N, ...) host array (numpy, or a memory map), the per-row model arguments.
    Step s trains on rows s*B .. s*B+B-1 of an endless sequence of epochs, each a permutation
    of the rows drawn from (seed, epoch): a step's batch depends only on the seed and the step,
    so a resumed run sees exactly the batches the uninterrupted one would have.

    devices > 1: each batch is split across that many devices along its rows (JAX sharding,
    data parallel: the parameters are replicated, XLA sums the gradients across devices).
    """

    def __init__(self, arrays: dict, batch_size: int, seed: int, devices: int = 1):
        self.arrays = {name: np.asarray(value) for name, value in arrays.items()}
        sizes = {len(value) for value in self.arrays.values()}
        if len(sizes) != 1:
            raise InferenceError(f"streamed arrays differ in length: {sorted(sizes)}")
        self.num_rows = sizes.pop()
        self.batch_size = min(int(batch_size), self.num_rows)
        self.seed = int(seed)
        self.devices = int(devices)
        self._permutations: dict[int, np.ndarray] = {}
        available = jax.device_count()
        if self.devices < 1 or self.devices > available:
            raise InferenceError(f"--devices {self.devices}: this process sees {available} device(s) "
                                 f"({jax.devices()[0].platform}); see the README on forcing or adding devices")
        if self.batch_size % self.devices:
            raise InferenceError(f"--batch-size {self.batch_size} does not split evenly across {self.devices} devices")
        if self.devices > 1:
            from jax.sharding import Mesh, NamedSharding, PartitionSpec

            mesh = Mesh(np.array(jax.devices()[: self.devices]), ("data",))
            self.rows_sharding = NamedSharding(mesh, PartitionSpec(None, "data"))  # (steps, batch, ...): split rows
            self.replicated = NamedSharding(mesh, PartitionSpec())
        else:
            self.rows_sharding = self.replicated = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            if len(self._permutations) > 2:  # the epochs a chunk can span; older ones are done
                self._permutations.pop(min(self._permutations))
            self._permutations[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
        return self._permutations[epoch]

    def rows(self, first_step: int, steps: int) -> np.ndarray:
        """Row indices of steps first_step .. first_step+steps-1, shape (steps, batch)."""
        position = first_step * self.batch_size + np.arange(steps * self.batch_size, dtype=np.int64)
        epoch, offset = np.divmod(position, self.num_rows)
        index = np.empty_like(position)
        for value in np.unique(epoch):
            where = epoch == value
            index[where] = self._permutation(int(value))[offset[where]]
        return index.reshape(steps, self.batch_size)

    def chunk(self, first_step: int, steps: int) -> dict:
        """The batches of `steps` steps as device arrays (steps, batch, ...), split across the
        devices when there are several."""
        index = self.rows(first_step, steps)
        batches = {name: value[index] for name, value in self.arrays.items()}
        return self._global(batches, self.rows_sharding) if self.rows_sharding is not None else batches

    def first_batch(self) -> dict:
        return {name: jnp.asarray(value[0]) for name, value in self.chunk(0, 1).items()}

    def place(self, tree):
        """`tree` (parameters, optimiser state) replicated on the devices."""
        return self._global(tree, self.replicated) if self.replicated is not None else tree

    @staticmethod
    def _global(tree, sharding):
        """Arrays laid out by `sharding`, each process supplying the shards of its own devices
        (every process holds the same values: batches depend only on the seed and the step), so
        the same code runs on one host or, after `jax.distributed.initialize`, on several."""
        def one(value):
            value = np.asarray(value)
            return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

        return jax.tree.map(one, tree)


def learning_rate_schedule(settings: dict):
    """Adam's step size: a constant, or cosine decay to 10% over `steps` (with a linear warm-up
    over the first 5% for warmup_cosine)."""
    import optax  # imported when a trainer runs: 0.2 s that a NUTS fit need not pay

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


def _flat_params(params: dict) -> dict:
    """{dotted path: array} of a nested parameter dict, e.g. "decoder$params.Dense_0.kernel"."""
    return {".".join(str(getattr(part, "key", part)) for part in path): np.asarray(value)
            for path, value in jax.tree_util.tree_flatten_with_path(params)[0]}


def _nested_params(flat) -> dict:
    """The nested parameter dict back from (dotted path, array) pairs (`_flat_params`)."""
    params: dict = {}
    for name, value in flat:
        *parents, leaf = str(name).split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = np.asarray(value)
    return params


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    """The trainer's checkpoint (`train`) written atomically as one .npz: the optimiser state's
    leaves and the best parameters as arrays, everything else (step, history, patience count,
    best value and step, settings) as a JSON record in it."""
    arrays = {f"state/{i}": np.asarray(value) for i, value in enumerate(checkpoint["state"])}
    arrays.update({f"best_params/{name}": value for name, value in _flat_params(checkpoint["best_params"]).items()})
    record = {k: v for k, v in checkpoint.items() if k not in ("state", "best_params")}
    arrays["record"] = np.asarray(json.dumps(record, default=_json_value))
    with durable.atomic_file(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **arrays)


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def load_checkpoint(folder) -> dict:
    """The checkpoint in `folder` (a run folder or a training folder), or InferenceError. Only
    arrays and JSON are read (allow_pickle=False): a checkpoint cannot run code."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        if (Path(folder) / OLD_CHECKPOINT).is_file():
            raise InferenceError(f"'{Path(folder) / OLD_CHECKPOINT}' is a pickle written by an older probgen; it is not "
                                 "loaded (reading a pickle can run code): fit the run again")
        raise InferenceError(f"no checkpoint to resume from: '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            checkpoint = json.loads(str(archive["record"]))
            count = sum(1 for name in archive.files if name.startswith("state/"))
            checkpoint["state"] = [archive[f"state/{i}"] for i in range(count)]
            checkpoint["best_params"] = _nested_params((name[len("best_params/"):], archive[name])
                                                       for name in archive.files if name.startswith("best_params/"))
    except (OSError, ValueError, KeyError, json.JSONDecodeError, zipfile.BadZipFile) as exc:
        raise InferenceError(f"checkpoint '{path}' cannot be read: {exc}") from None
    return checkpoint


PIECE_STEPS = 25  # the most steps per compiled call: the progress bar moves at least this often


def progress_piece(chunk: int) -> int:
    """The steps per compiled call: the largest divisor of `chunk` (the steps between held-out
    evaluations) up to PIECE_STEPS, so that the bar moves every second or so even for a network
    that takes 15 steps a second; the state is threaded through, so the draws do not depend on it."""
    return max(d for d in range(1, min(chunk, PIECE_STEPS) + 1) if chunk % d == 0)


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
    streaming = isinstance(x_train, Stream)
    chunk, max_steps, warmup = int(settings["eval_every"]), int(settings["steps"]), int(settings["kl_warmup"])
    piece = progress_piece(chunk)
    checkpoint_chunks = max(1, math.ceil(int(settings["checkpoint_every"]) / chunk))
    import optax

    svi = SVI(model, guide, optim.optax_to_numpyro(optax.adam(learning_rate_schedule(settings))), Trace_ELBO())
    init_key, eval_key = jax.random.split(rng_key)
    if streaming:
        num_train, batch_size = x_train.num_rows, x_train.batch_size
        x_heldout = jax.tree.map(jnp.asarray, x_heldout)
        state = x_train.place(jax.jit(lambda key, batch: svi.init(key, **batch, **model_kwargs(num_train, batch_size, 1.0)))(
            init_key, x_train.first_batch()))

        @jax.jit
        def run_chunk(state, first_step, batches):
            def body(state, step_and_batch):
                step, batch = step_and_batch
                return svi.update(state, **batch, **model_kwargs(num_train, batch_size, _kl_weight(step, warmup)))

            return jax.lax.scan(body, state, (first_step + jnp.arange(piece), batches))
    else:
        x_train, x_heldout = jnp.asarray(x_train), jnp.asarray(x_heldout)
        num_train = x_train.shape[0]
        batch_size = min(int(settings["batch_size"]), num_train)
        # one compiled program: run eagerly, Flax's initialisation compiles every operation on its own
        state = jax.jit(lambda key, x: svi.init(key, x, **model_kwargs(num_train, batch_size, 1.0)))(init_key, x_train)

        @jax.jit
        def run_chunk(state, first_step, batches=None):
            def body(state, step):
                kwargs = model_kwargs(num_train, batch_size, _kl_weight(step, warmup))
                state, loss = svi.update(state, x_train, **kwargs)
                return state, loss

            return jax.lax.scan(body, state, first_step + jnp.arange(piece))

    score_heldout = jax.jit(lambda params: evaluate(params, x_heldout, eval_key).mean())

    step, best, stale, resumed_from = 0, None, 0, 0
    history = {"step": [], "train_elbo": [], "heldout_elbo": [], "seconds": []}
    if resume is not None:
        leaves, treedef = jax.tree_util.tree_flatten(state)
        if len(resume["state"]) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(resume["state"], leaves)):
            raise InferenceError("the checkpoint does not fit this model: its parameters have other shapes "
                                 "(different architecture or data size?)")
        state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in resume["state"]])
        if streaming:
            state = x_train.place(state)
        step, history, stale = resume["step"], resume["history"], resume["stale"]
        best = (resume["best_value"], resume["best_step"], jax.tree.map(jnp.asarray, resume["best_params"]))
        resumed_from = step
    # a run that had already stopped early stays stopped: resuming it reports, it does not train on
    stopped_early = resume is not None and stale >= int(settings["patience"])
    chunks_done = 0
    with tqdm(total=max_steps, initial=step, desc="SVI", disable=not progress, unit="step") as bar:
        batches = x_train.chunk(step, chunk) if streaming else None
        while step < max_steps and not stopped_early:
            started = time.perf_counter()
            pieces = []
            for offset in range(0, chunk, piece):  # the bar moves every piece of steps, not every chunk
                part = None if batches is None else jax.tree.map(lambda b: b[offset:offset + piece], batches)
                state, losses = run_chunk(state, jnp.asarray(step + offset), part)
                pieces.append(np.asarray(losses))
                bar.update(piece)
            if streaming:  # the next chunk's rows
                batches = x_train.chunk(step + chunk, chunk)
            losses = np.concatenate(pieces)
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
            bar.set_postfix(elbo=f"{train_elbo:.3f}", heldout=f"{heldout:.3f}", best=f"{best[0]:.3f}")
            at_end = step >= max_steps or stopped_early or (stop_after is not None and step >= stop_after)
            if checkpoint_dir is not None and (chunks_done % checkpoint_chunks == 0 or at_end):
                save_checkpoint({
                    "state": [np.asarray(v) for v in jax.tree_util.tree_leaves(state)], "step": step,
                    "history": history, "stale": stale, "best_value": best[0], "best_step": best[1],
                    "best_params": jax.tree.map(np.asarray, best[2]), "settings": settings,
                }, Path(checkpoint_dir) / CHECKPOINT)
            if stop_after is not None and step >= stop_after:
                break
    return TrainResult(params=jax.tree.map(np.asarray, best[2]), history=history, steps_run=step,
                       stopped_early=stopped_early, best_step=best[1], resumed_from=resumed_from)


# --------------------------------------------------------------------------------------------
# `probgen.fit` for amortised models: split, train, evaluate, InferenceData
# --------------------------------------------------------------------------------------------
FIT_DEFAULTS = {**DEFAULTS, "draws": 20}  # draws: z ~ q(z | x) per training row kept in the posterior group


def params_to_dataset(params: dict):
    """Network parameters as an xarray Dataset (one variable per array, named by its path with
    dots, e.g. "decoder$params.Dense_0.kernel"), so they travel in posterior.nc."""
    import xarray as xr

    return xr.Dataset({name: ([f"{name}_dim_{i}" for i in range(value.ndim)], value)
                       for name, value in _flat_params(params).items()})


def params_from_dataset(dataset) -> dict:
    """The nested parameter dict back from `params_to_dataset`'s Dataset."""
    return _nested_params((name, variable.values) for name, variable in dataset.data_vars.items())


def train_amortized(problem, settings: dict):
    """Train an amortised model (its `Objective`, e.g. the VAE's) on the problem's training part,
    stopping early on the validation part's ELBO; the objective's `evaluate` scores the parts.
    Returns a `Result`: posterior (`draws` draws of each training row's latents from the
    encoder; the networks' parameters as one draw for a model without latents), the network
    `parameters` and the evaluation groups, and an `optimization` record (training and
    validation ELBO per evaluation)."""
    import arviz as az
    import xarray as xr
    from numpyro import handlers

    from probgen.infer.methods import Result

    spec, inputs = problem.spec, problem.parts
    objective = spec.part(Objective)
    train_inputs = inputs["training"]
    train_key, evaluate_key, draw_key = problem.keys.inference, problem.keys.results, problem.keys.init

    stream = tuple(objective.stream)
    if stream:  # per-row arguments streamed from the host, one minibatch per step
        fixed = {name: value for name, value in train_inputs.kwargs.items() if name not in stream}

        def rows_of(part):
            values = {**part.kwargs, **part.observed}
            return {name: np.asarray(values[name]) for name in stream}

        def model_kwargs(num_points, batch_size=None, kl_weight=1.0):
            return {**fixed, "num_points": num_points}

        def evaluate(params, rows, key):
            return objective.elbo(params, rows, {**fixed, "num_points": len(next(iter(rows.values())))}, key)

        x_train = Stream(rows_of(train_inputs), int(settings["batch_size"]), problem.seed,
                         int(settings.get("devices", 1)))
        x_validation = rows_of(inputs["validation"])
    else:
        if int(settings.get("devices", 1)) != 1:
            raise InferenceError(f"--devices splits streamed minibatches across devices; model '{spec.name}' trains on "
                                 "one device")

        def model_kwargs(num_points, batch_size=None, kl_weight=1.0):
            return {**train_inputs.kwargs, "num_points": num_points, "batch_size": batch_size, "kl_weight": kl_weight}

        def evaluate(params, x, key):
            return objective.elbo(params, x, {**train_inputs.kwargs, "num_points": x.shape[0]}, key)

        x_train, x_validation = train_inputs.observed["x"], inputs["validation"].observed["x"]

    checkpoint = problem.checkpoint  # a durable.Checkpoint: checkpoint.json holds the request, CHECKPOINT the state
    folder = None if checkpoint is None else checkpoint.folder
    resume = None
    if checkpoint is not None and checkpoint.resume and any((folder / name).is_file()
                                                            for name in (CHECKPOINT, OLD_CHECKPOINT)):
        resume = load_checkpoint(folder)  # stopped before its first checkpoint: training starts afresh
    trained = train(spec.model, spec.guide, model_kwargs, x_train, x_validation, settings, train_key, evaluate,
                    progress=problem.progress, checkpoint_dir=folder, resume=resume)
    groups = objective.evaluate(trained.params, inputs, problem.options, evaluate_key)

    # draws of each training row's latents from the fitted encoder (or of the global latents of
    # a streamed model, whose guide sees one batch): the posterior group
    guide = handlers.substitute(spec.guide, data=trained.params)
    if stream:
        arguments = {**x_train.first_batch(), **model_kwargs(x_train.num_rows)}
    else:
        x = jnp.asarray(train_inputs.observed["x"])
        arguments = {"x": x, **model_kwargs(x.shape[0])}

    def one(key):
        trace = handlers.trace(handlers.seed(guide, key)).get_trace(**arguments)
        return {name: site["value"] for name, site in trace.items()
                if site["type"] == "sample" and not site["is_observed"]}

    draws = jax.jit(lambda keys: jax.lax.map(one, keys))(jax.random.split(draw_key, int(settings["draws"])))
    # NetCDF forbids '/' in names, which scoped sites have (random_flax_module's "head/kernel")
    posterior = {name.replace("/", "."): np.asarray(value)[None] for name, value in draws.items()}
    parameters = params_to_dataset(trained.params)
    if posterior:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # ArviZ naming dims it invents: the family's own dims follow
            posterior = az.from_dict(posterior=posterior, coords=dict(train_inputs.coords),
                                     dims=dict(train_inputs.dims)).posterior
    else:  # no latent variables (MADE): the point estimate is the posterior, one draw
        posterior = parameters.expand_dims({"chain": [0], "draw": [0]})
    history = trained.history
    optimization = xr.Dataset(
        {name: ("evaluation", np.asarray(history[name], float)) for name in ("train_elbo", "heldout_elbo", "seconds")},
        coords={"evaluation": np.arange(len(history["step"])), "step": ("evaluation", np.asarray(history["step"]))},
        attrs={"steps_run": trained.steps_run, "best_step": trained.best_step, "stopped_early": int(trained.stopped_early),
               "resumed_from": trained.resumed_from})
    facts = {"steps_run": trained.steps_run, "best_step": trained.best_step, "stopped_early": trained.stopped_early,
             "resumed_from": trained.resumed_from, "converged": trained.stopped_early}
    return Result(posterior, optimization=optimization, facts=facts, groups={"parameters": parameters, **groups})


SETTINGS = (
    Setting("steps", int, DEFAULTS["steps"], "maximum optimisation steps (stops early on convergence)", minimum=1),
    Setting("batch_size", int, DEFAULTS["batch_size"], "VAE: rows per minibatch"),
    Setting("learning_rate", float, DEFAULTS["learning_rate"], "Adam learning rate"),
    Setting("schedule", str, DEFAULTS["schedule"], "VAE: learning-rate schedule: constant, cosine or warmup_cosine",
            choices=("constant", "cosine", "warmup_cosine")),
    Setting("kl_warmup", int, DEFAULTS["kl_warmup"], "VAE: steps over which the KL weight rises from 0 to 1 (0: none)"),
    Setting("eval_every", int, DEFAULTS["eval_every"], "VAE: steps between validation ELBO evaluations"),
    Setting("patience", int, DEFAULTS["patience"], "VAE: evaluations without improvement before stopping"),
    Setting("min_delta", float, DEFAULTS["min_delta"], "VAE: nats per row that count as an improvement"),
    Setting("checkpoint_every", int, DEFAULTS["checkpoint_every"], "VAE: steps between checkpoints in the run folder"),
    Setting("eval_samples", int, DEFAULTS["eval_samples"]),
    Setting("devices", int, 1, "streamed minibatch SVI (pmf): split each batch across this many devices", minimum=1),
    Setting("draws", int, FIT_DEFAULTS["draws"],
            "draws kept per chain (MCMC) or from the fitted approximation (SVI, Pathfinder)"),
    VALIDATION,
)


class MinibatchMethod(Method):
    """Amortised minibatch SVI with early stopping and checkpoints, for models with an encoder (vae).

    The one minibatch trainer: it fits every model whose spec has an `Objective` part, and only
    those (unless the part `shares` them); it answers to --method svi."""

    name = "minibatch"
    cli_name = "svi"
    title = "amortised minibatch SVI"
    settings = SETTINGS
    needs = (Objective,)
    traces_model = False  # its posterior is an encoder's draws of per-row latents (or the networks)
    default_holdout = DEFAULT_HOLDOUT
    durable = True  # checkpoint.json holds the request, checkpoint.npz the trainer's state (`train`); --resume
    extendable = ("steps",)
    keeps = (CHECKPOINT,)
    posterior_report = False  # per-row latents from an encoder and point-estimate networks: the model reports
    gives_posterior_sample = False
    loss_label = "negative ELBO"

    def shares(self, spec) -> bool:
        return not spec.part(Objective).only

    def set_apart(self, spec):
        return spec.part(Objective).preprocess

    def run(self, problem, settings):
        return train_amortized(problem, settings)

    def sbc_refit(self, spec, inputs, settings, structure):
        raise InferenceError(f"simulation-based calibration needs posterior draws of global parameters; model "
                             f"'{spec.name}' is fitted by amortised SVI to point estimates of its networks")

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
        return [diagnostics.check_training(idata, settings, facts)]

    def trusted_summary(self, verdicts, settings) -> str:
        return ("Training converged: the validation score stopped improving. The parameters come from a fitted "
                "approximation (an encoder, a mean-field guide) or are point estimates; judge the model by its "
                "held-out scores below.")

    def new_rows(self, spec, idata, config, rng_key, num_rows):
        """New rows from the fitted decoder (`probgen sample`), or None without a generator."""
        generate = spec.part(Objective).generate
        return None if generate is None else generate(idata, config, rng_key, num_rows)


register(MinibatchMethod())
