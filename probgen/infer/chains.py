"""Several NUTS/HMC chains as one compiled program, run in chunks.

NumPyro's `MCMC.run` compiles its loop afresh on every call and, with a progress bar, returns to
Python after every iteration: on eight schools (4 chains x 2,000 iterations, 2-core CPU) it
spent 4 to 10 s in a run whose iterations take 0.2 s once compiled. Here NumPyro's own kernels
(`numpyro.infer.hmc.hmc`: the same NUTS/HMC; the warm-up's step-size and mass-matrix adaptation
is `probgen.infer.adaptation`'s) advance all chains together inside one jitted `lax.scan` of a fixed number of
iterations (a chunk); Python only loops over chunks, to show progress. The observed data are an
argument of the compiled program, so simulation-based calibration refits new data sets with the
program compiled once.

Chains are vectorised (`vmap`) on one device, or split over devices (`pmap` of vectorised
chains) when several are present; see `choose_chain_method`.

Between chunks the sampler state of every chain (NumPyro's HMCState: position, gradient, step
size, mass matrix, adaptation windows, random key) can be gathered to host memory
(`gather_state`) and given back (`run(resume=...)`): a run resumed from a saved state draws
exactly what the uninterrupted run would have, bit for bit on the same machine and chain layout,
since every chain's random stream lives in its state. `probgen.infer.durable` saves it with each
chunk's draws.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from probgen.infer import adaptation
from probgen.infer.adaptation import DEFAULT as DEFAULT_ADAPT

FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "step_size", "potential_energy")
CHUNKS = 20  # progress updates per run; each is one call of the compiled chunk
# ... and at most this many iterations per call, so that a long run still returns to Python (to
# show progress, to save a checkpoint, to take Ctrl-C) every few seconds on most models
MAX_CHUNK = 100


def choose_chain_method(num_chains: int, requested: str = "auto") -> str:
    """How to lay `num_chains` chains over the devices present.

    "vectorized" runs them in lockstep on one device: the cost of an iteration hardly grows with
    the number of chains while the model is small, since XLA's per-operation overhead dominates
    on a CPU. "parallel" splits them over devices (several GPUs, or CPU cores that
    `probgen.devices.expose_cpu_devices` exposes as devices), each device vectorising its share;
    "sequential" runs one chain after another with the program compiled once. "auto", measured
    on a 2-core CPU: "parallel" wherever there are several devices (the CLI exposes 4 CPU
    devices; 4 chains of the Old Faithful mixture from the same starts sampled in 4.9 s, against
    16 s vectorised on one device, where every chain waits for the longest trajectory of each
    iteration, and eight schools in 0.23 s against 0.33 s); on a single CPU device (the Python
    API without `expose_cpu_devices`) "sequential", which never waits on another chain; on one
    accelerator "vectorized", which keeps it busy.
    """
    if requested != "auto":
        return requested
    if num_chains <= 1:
        return "sequential"
    if jax.local_device_count() > 1:
        return "parallel"
    return "vectorized" if jax.default_backend() != "cpu" else "sequential"


@dataclass
class ChainOutput:
    """Constrained draws (latent and deterministic sites) and per-iteration sampler fields,
    each with leading (chain, draw) axes."""

    samples: dict
    fields: dict


class ChainProgram:
    """NUTS or HMC chains of `model` as compiled programs: `start` (initial states) and
    `advance` (a chunk of iterations); `run` drives them with progress.

    algorithm: "NUTS" or "HMC"; kernel_options go to NumPyro's `init_kernel`
    (target_accept_prob, max_tree_depth, trajectory_length, ...); init_strategy is one of
    NumPyro's; template_observed fixes the data's shapes and dtypes (any data of those shapes
    can be given to `run` later).
    """

    def __init__(self, model, template_observed: dict, algorithm: str, kernel_options: dict, *, chains: int,
                 warmup: int, draws: int, init_strategy, chain_method: str = "auto", adapt: str = DEFAULT_ADAPT):
        from numpyro.infer.hmc import hmc
        self.model, self.chains, self.warmup, self.draws = model, chains, warmup, draws
        self.adapt = adapt
        self.init_strategy = init_strategy
        self.kernel_options = {**adaptation.kernel_options(adapt), **kernel_options}
        self.chain_method = choose_chain_method(chains, chain_method)
        self.devices = jax.local_device_count() if self.chain_method == "parallel" else 1
        if self.chain_method == "parallel" and chains % self.devices:
            # pmap needs equal shares: use the largest device count that divides the chains
            self.devices = max(d for d in range(1, self.devices + 1) if chains % d == 0)
        # NumPyro's potential and constraining functions are built inside each compiled
        # function's trace (`_functions`), not from an eager `initialize_model` call, which
        # compiled some 95 single operations (3.6 s on eight schools) before any sampling
        self._init_kernel, self._sample_kernel = hmc(potential_fn_gen=lambda **observed: self._functions(observed)[0],
                                                     algo=algorithm)
        total = warmup + draws
        self.chunk = max(1, min(math.ceil(total / CHUNKS), MAX_CHUNK))
        self._template, self._template_observed = None, template_observed  # the fallback in `_functions`
        self._compiled_start = self._layout(self._start_one, (0, 0, None, 0))
        self._compiled_advance = self._layout(self._advance_one, (0, None))

    # -- the compiled pieces -------------------------------------------------------------
    def _functions(self, observed):
        """(potential_fn, postprocess_fn) of the model on `observed`, as NumPyro's
        `initialize_model` builds them (discrete sites enumerated, deterministic sites replayed),
        traced inside the calling compiled function."""
        from numpyro.handlers import seed, substitute

        try:  # NumPyro's own steps of initialize_model (private helpers of numpyro.infer.util)
            from numpyro.infer.util import _get_model_transforms, _prepare_model_for_potential, get_potential_fn
        except ImportError:  # a NumPyro without them: its eager initialize_model, called once
            if self._template is None:
                from numpyro.infer.util import initialize_model

                self._template = initialize_model(jax.random.PRNGKey(0), self.model, init_strategy=self.init_strategy,
                                                  model_kwargs=self._template_observed, dynamic_args=True)
            return self._template.potential_fn(**observed), self._template.postprocess_fn(**observed)
        traced = substitute(seed(self.model, 0), substitute_fn=self.init_strategy)
        with _enumeration_quiet():
            inv_transforms, replay, enum, model_trace = _get_model_transforms(traced, (), observed)
        prepared = _prepare_model_for_potential(self.model, model_trace, enum=enum)
        return get_potential_fn(prepared, inv_transforms, replay_model=replay, enum=enum, model_kwargs=observed)

    def _start_one(self, key, start, observed, warm):
        key_search, key_init = jax.random.split(key)
        if start is None:  # NumPyro's search for a start with a finite log density and gradient
            from numpyro.infer.util import initialize_model

            with _enumeration_quiet():
                start = initialize_model(key_search, self.model, init_strategy=self.init_strategy,
                                         model_kwargs=observed, dynamic_args=True).param_info.z
        tuned = {} if warm is None else {"step_size": warm["step_size"],
                                         "inverse_mass_matrix": warm["inverse_mass_matrix"]}
        with adaptation.adapting(self.adapt):  # the warm-up adapter NumPyro's kernel keeps
            return self._init_kernel(start, self.warmup, rng_key=key_init, model_kwargs=observed, **tuned,
                                     **self.kernel_options)

    def _advance_one(self, state, observed):
        postprocess = self._functions(observed)[1]

        def step(state, _):
            state = self._sample_kernel(state, model_kwargs=observed)
            values = postprocess(state.z)
            fields = (state.diverging, state.energy, state.num_steps, state.accept_prob,
                      state.adapt_state.step_size, state.potential_energy)
            return state, (values, fields)

        return jax.lax.scan(step, state, None, length=self.chunk)

    def _layout(self, function, in_axes):
        """vmap over chains (one device), under pmap over devices when parallel. One chain per
        device (parallel with as many devices as chains, or sequential) is traced without vmap:
        a batched NUTS turns every while loop's condition into a reduction and every branch into
        a select, which took the Old Faithful mixture's compilation from about 7 s to 14 s."""
        per_device = 1 if self.chain_method == "sequential" else self.chains // self.devices
        if per_device == 1:
            def vectorised(*args):
                one = [jax.tree.map(lambda x: x[0], a) if axis == 0 else a for a, axis in zip(args, in_axes)]
                return jax.tree.map(lambda x: x[None], function(*one))
        else:
            vectorised = jax.vmap(function, in_axes=in_axes)
        if self.devices > 1:
            # the data come replicated per device (`run`), in_axes 0: pmap's in_axes None
            # misassigns axes when the data dict is empty (a model bound to its data by argument)
            return jax.pmap(vectorised, in_axes=0)
        return jax.jit(vectorised)

    def _shard(self, tree):
        """(chains, ...) -> (devices, chains / devices, ...) when parallel."""
        if self.devices == 1:
            return tree
        # explicit sizes: a reshape with -1 is ambiguous for an empty site (shape (chains, K, 0))
        return jax.tree.map(lambda x: jnp.reshape(x, (self.devices, x.shape[0] // self.devices) + x.shape[1:]), tree)

    # -- driving them ----------------------------------------------------------------------
    def run(self, rng_key, observed: dict, starts: dict | None = None, progress: bool = False, describe: str = "",
            *, resume: "Resumed | None" = None, warm: dict | None = None, on_chunk=None,
            keep: bool = True) -> ChainOutput | None:
        """Warm up and sample all chains; return their draws (None when `keep` is False).

        starts: per-chain unconstrained starting points (leading chain axis), or None for the
        init strategy's. resume: carry on from a saved state (`gather_state`) after `done`
        iterations, exactly as if the run had not stopped. warm: per-chain step sizes and
        inverse mass matrices ({"step_size", "inverse_mass_matrix"}, leading chain axis) that
        the warm-up starts from instead of 1 and the identity (a warm start).
        on_chunk(done, values, fields, state): called after every chunk with the iterations
        done so far, that chunk's draws and fields kept ((chain, draw) axes, none during
        warm-up) and a function that gives the sampler state (`gather_state`): what a
        checkpoint writes.
        keep=False keeps no draws in memory (they went to `on_chunk`).
        """
        observed = {k: jnp.asarray(v) for k, v in observed.items()}
        if starts is not None:
            starts = {k: jnp.asarray(v) for k, v in starts.items()}
        keys = jax.random.split(rng_key, self.chains)
        if self.devices > 1:  # one copy of the data per device, made once for all chunks
            observed = jax.tree.map(lambda x: jnp.broadcast_to(x, (self.devices,) + x.shape), observed)
        if resume is None:
            state, done = self._start(keys, observed, starts, warm), 0
        else:
            state, done = self.scatter_state(resume.leaves, observed), resume.done
        total = self.warmup + self.draws
        bar = _progress_bar(total, self.chains, self.chain_method, describe, done) if progress else None
        kept_values, kept_fields = [], []
        try:
            while done < total:
                state, (values, fields) = self._advance(state, observed)
                # keep only this chunk's iterations that are draws (after warm-up, before the end)
                first, last = max(self.warmup - done, 0), min(total - done, self.chunk)
                if last > first:
                    values = {k: v[:, first:last] for k, v in values.items()}
                    fields = {name: f[:, first:last] for name, f in zip(FIELDS, fields)}
                else:  # warm-up only
                    values, fields = {}, {}
                done = min(done + self.chunk, total)
                if on_chunk is not None:  # the state is gathered from the devices only if it is saved
                    on_chunk(done, values, fields, lambda state=state: self.gather_state(state))
                if keep and last > first:
                    kept_values.append(values)
                    kept_fields.append(fields)
                if bar is not None:
                    bar.update(done - bar.n)
                    bar.set_description("warmup" if done < self.warmup else "sample")
        finally:
            if bar is not None:
                bar.close()
        if not keep:
            return None
        if not kept_values:  # resumed after the last draw: nothing new
            return ChainOutput({}, {})
        return ChainOutput({k: np.concatenate([v[k] for v in kept_values], axis=1) for k in kept_values[0]},
                           {k: np.concatenate([f[k] for f in kept_fields], axis=1) for k in FIELDS})

    def _start(self, keys, observed, starts, warm):
        """The initial states of all chains, laid out for `_advance` (sequential: one per chain)."""
        if self.chain_method == "sequential":
            one = lambda tree, c: None if tree is None else jax.tree.map(lambda x: x[c:c + 1], tree)  # noqa: E731
            states = [self._compiled_start(keys[c:c + 1], one(starts, c), observed, one(warm, c))
                      for c in range(self.chains)]
        else:
            states = [self._compiled_start(self._shard(keys), self._shard(starts), observed, self._shard(warm))]
        energy = np.concatenate([np.reshape(np.asarray(s.potential_energy), -1) for s in states])
        if not np.all(np.isfinite(energy)):
            if starts is None:  # NumPyro's own search, run eagerly, names the site that fails
                from numpyro.infer.util import initialize_model

                initialize_model(keys, self.model, init_strategy=self.init_strategy, model_kwargs=observed,
                                 dynamic_args=True)
            raise RuntimeError(f"{int((~np.isfinite(energy)).sum())} of {self.chains} chains start where the log "
                               "density is not finite")
        return states

    def _advance(self, states, observed):
        """One chunk of every chain: (new states, (values, fields)) with the outputs in host
        memory, laid out (chain, iteration, ...)."""
        results = [self._compiled_advance(state, observed) for state in states]
        # to host memory before slicing: slicing device arrays compiles a small program per
        # leaf and shape (some 80 of them, 3 s, on the Old Faithful mixture)
        outputs = jax.device_get([output for _, output in results])
        outputs = [jax.tree.map(self._chains_first, output) for output in outputs]
        # sequential: one output per chain, joined along the chain axis
        output = jax.tree.map(lambda *xs: np.concatenate(xs), *outputs) if len(outputs) > 1 else outputs[0]
        return [state for state, _ in results], output

    def _chains_first(self, x):
        """(devices, chains / devices, ...) -> (chains, ...) when parallel."""
        x = np.asarray(x)
        return np.reshape(x, (x.shape[0] * x.shape[1],) + x.shape[2:]) if self.devices > 1 else x

    # -- the sampler state, saved and restored ---------------------------------------------
    def gather_state(self, states) -> list[tuple[str, np.ndarray]]:
        """The sampler state of every chain as (path, array with a leading chain axis) pairs,
        in host memory: NumPyro's HMCState (position, gradient, step size, mass matrix,
        adaptation windows, random key), path as `jax.tree_util.keystr` names it."""
        host = jax.device_get(states)
        paired = [jax.tree_util.tree_flatten_with_path(s)[0] for s in host]
        return [(jax.tree_util.keystr(path), np.concatenate([self._chains_first(p[i][1]) for p in paired]))
                for i, (path, _) in enumerate(paired[0])]

    def state_template(self, observed) -> list[tuple[str, tuple, np.dtype]]:
        """(path, shape of one chain's leaf, dtype) of the sampler state, without running
        anything (`jax.eval_shape`). Tracing the start also fixes NumPyro's warm-up length in
        the kernel, which `advance` needs."""
        keys = jax.random.split(jax.random.PRNGKey(0), 1 if self.chain_method == "sequential" else self.chains)
        shapes = jax.eval_shape(self._compiled_start, self._shard(keys), None, observed, None)
        flat, _ = jax.tree_util.tree_flatten_with_path(shapes)
        self.state_treedef = jax.tree_util.tree_structure(shapes)
        skip = 1 if self.devices == 1 else 2
        return [(jax.tree_util.keystr(path), tuple(leaf.shape[skip:]), np.dtype(leaf.dtype)) for path, leaf in flat]

    def scatter_state(self, leaves: list[tuple[str, np.ndarray]], observed) -> list:
        """The layout `_advance` takes, from `gather_state`'s pairs (a saved checkpoint); an
        error names the first leaf whose path or shape differs from this program's state."""
        template = self.state_template(observed)
        check_state(leaves, template, self.chains)
        # sliced and reshaped in host memory: on device, each slice of each leaf compiles a program
        arrays = [np.asarray(value) for _, value in leaves]
        if self.chain_method == "sequential":
            return [jax.tree_util.tree_unflatten(self.state_treedef, [jax.device_put(a[c:c + 1]) for a in arrays])
                    for c in range(self.chains)]
        if self.devices > 1:
            arrays = [np.reshape(a, (self.devices, a.shape[0] // self.devices) + a.shape[1:]) for a in arrays]
        return [jax.tree_util.tree_unflatten(self.state_treedef, [jax.device_put(a) for a in arrays])]


@dataclass
class Resumed:
    """Where a saved run stopped: the sampler state (`ChainProgram.gather_state`) after `done`
    iterations (warm-up included)."""

    leaves: list
    done: int


def check_state(leaves, template, chains: int) -> None:
    """ValueError naming the first difference between a saved state and a program's."""
    if len(leaves) != len(template) or any(name != path for (name, _), (path, _, _) in zip(leaves, template)):
        saved = {name for name, _ in leaves}
        here = {path for path, _, _ in template}
        differ = sorted(saved ^ here) or [f"{len(leaves)} leaves saved, {len(template)} here"]
        raise ValueError(f"the saved sampler state is not this model's: it differs in {', '.join(differ[:4])}")
    for (name, value), (_, shape, _) in zip(leaves, template):
        if value.shape != (chains,) + shape:
            raise ValueError(f"the saved sampler state has {name} of shape {value.shape[1:]} for each of "
                             f"{value.shape[0]} chains; this run needs {shape} for each of {chains}")


@contextlib.contextmanager
def _enumeration_quiet():
    """NumPyro enumerates a model's discrete sites on its own and warns that it will one day ask
    for them to be marked; probgen's users need not mark them (DESIGN: discrete latents are
    marginalised). Silenced wherever NumPyro traces the model, compiled early or late."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some algorithms will automatically enumerate", category=FutureWarning)
        yield


def _progress_bar(total: int, chains: int, chain_method: str, describe: str, done: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="warmup", unit="it", leave=False,
                postfix=f"{chains} chains, {chain_method}{', ' + describe if describe else ''}")
