"""The inference-method interface and its registry: the one place that knows which method ran.

A method (NUTS, HMC, SVI, MAP, Pathfinder, the minibatch trainer, the exact conjugate update,
adversarial training) is a `Method` subclass in its own module of `probgen/infer/`, registered
by name with `register`. It declares:

- `settings`: its `Setting`s (name, type, default, CLI help); the command line's flags are
  generated from them, and `resolve` checks given values against them;
- `run(problem, settings) -> Result`: the one driver (`probgen.infer.driver.fit`) loads and
  splits the data, reads the model's structure and hands the method a `Problem`; the method
  returns a `Result` (draws with (chain, draw) axes, sample statistics, an optimisation trace,
  extra InferenceData groups, and the `facts` of what happened: steps run, convergence, Pareto
  k), from which `probgen.infer.results.to_inference_data` builds the InferenceData the same
  way for every method. No method fits on its own;
- `sbc_refit`: one compiled program that refits the model to simulated data (SBC);
- `verdicts` and `trusted_summary`: the diagnostics that apply to its draws, read from the
  InferenceData, the settings asked for and the facts recorded;
- capabilities the rest of probgen asks about instead of testing names: whether it sums out
  discrete sites, whether its draws are Markov chains (rank plots), what its loss is called,
  whether the standard posterior report applies, whether and how it saves as it goes.

NumPyro's `MCMCKernel` and BlackJAX's `init`/`step` are the models for this split between a
runner and what varies per algorithm.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from probgen.errors import InferenceError

__all__ = ["Setting", "Keys", "Problem", "Result", "Method", "register", "get", "names", "for_spec", "for_config", "registered"]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of a method. `help` is the command-line flag's help (`--<name>` with dashes);
    None keeps the setting off the command line (a tuning constant settable from Python)."""

    name: str
    type: type
    default: Any
    help: str | None = None
    choices: tuple | None = None
    minimum: float | None = None  # values below are an error naming the flag

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Keys:
    """The random keys of a fit, all from its seed: `root` = PRNGKey(seed), and its three-way
    split into `inference` (the method's own draws), `results` (predictive draws after it) and
    `init` (starting points)."""

    root: Any
    inference: Any
    results: Any
    init: Any

    @classmethod
    def from_seed(cls, seed: int) -> "Keys":
        import jax

        root = jax.random.PRNGKey(seed)
        return cls(root, *jax.random.split(root, 3))


@dataclasses.dataclass
class Problem:
    """What the driver hands every method's `run`.

    spec, options: the model and its resolved options.
    parts:     part name -> `ModelInputs`: "training" (what the method fits), and where the split
               drew them "held_out" (scored after the fit), "validation" (for a method that
               `wants_validation`: early stopping; `--validation`) and "anomaly" (rows set apart, never fitted).
    dataset:   the training part's data set (what config.json records).
    seed, keys: the run's seed and the keys drawn from it.
    structure: one trace of the model on the training part (`ModelStructure`), or None for a
               method that does not draw the model's latent sites (`traces_model` False).
    progress:  show progress bars.
    checkpoint, init_from: where a `durable` method saves as it goes (an open
               `probgen.infer.durable.Checkpoint`: its folder, and whether it resumes what the
               folder holds), and a finished run a warm-starting method starts from; None
               otherwise.
    """

    spec: Any
    options: dict
    parts: dict
    dataset: Any
    seed: int
    keys: Keys
    structure: Any = None
    progress: bool = True
    checkpoint: Any = None
    init_from: Any = None

    @property
    def inputs(self):
        """The training part's `ModelInputs`."""
        return self.parts["training"]


@dataclasses.dataclass
class Result:
    """What every method's `run` returns.

    posterior:    latent site -> array with leading (chain, draw) axes, constrained values; or,
                  for a method that does not trace the model (`traces_model` False), an xarray
                  Dataset with (chain, draw) dimensions: the posterior group as it stands.
    sample_stats: name -> (chain, draw) array (MCMC's divergences and energy; importance
                  weights of a variational method), or None.
    optimization: {"loss": (steps,) array} for an optimiser, an xarray Dataset for a trainer
                  with its own record, or None.
    facts:        what happened, JSON-ready (steps run, converged, Pareto k, the chain method
                  used): recorded in config.json beside the settings, never mixed into them.
    groups:       further InferenceData groups (a trainer's networks, per-part scores).
    """

    posterior: Any
    sample_stats: dict | None = None
    optimization: Any = None
    facts: dict = dataclasses.field(default_factory=dict)
    groups: dict = dataclasses.field(default_factory=dict)


class Method:
    """Base class of an inference method; see the module docstring. Subclasses set the class
    attributes and implement `run` (and, for SBC, `sbc_refit`)."""

    name: str = ""
    cli_name: str | None = None  # what --method and config.json call it (default: name)
    title: str = ""  # how errors and the report name it ("--method nuts")
    settings: tuple[Setting, ...] = ()
    sums_discrete_sites: bool = False  # enumerates discrete latent sites (NumPyro's funsor enumeration)
    subsamples: bool = False  # fits a model whose plates draw minibatches (`plate(..., subsample_size=m)`): SVI
    markov_chains: bool = False  # draws are chains: rank plots and R-hat across them mean something
    loss_label: str = "loss"  # the y axis of the optimisation trace
    gives_posterior_sample: bool = True  # MAP does not: no SBC
    posterior_report: bool = True  # the standard report (summary, LOO, predictive checks) applies
    durable: bool = False  # saves its state (and draws) to a checkpoint folder as it goes (`probgen.infer.durable`):
    # checkpoint.json holds the request and `--resume` carries the run on
    keeps: tuple[str, ...] = ()  # what a finished durable run's folder keeps for a later --resume (its final state)
    extendable: tuple[str, ...] = ()  # settings a resumed run may raise (MCMC's draws, SVI's steps)
    stores_draws: bool = False  # durable, and its chunks hold the posterior draws (MCMC; SVI draws at the end)
    warm_starts: bool = False  # starts from a finished run's state (init_from / --init-from)
    needs: tuple[type, ...] = ()  # parts a family must provide (`ModelSpec.parts`) for this method to fit it; a
    # method that needs parts is the default for the families that provide them, and only theirs
    traces_model: bool = True  # its posterior holds draws of the model's latent sites: the driver traces the
    # model first (`Problem.structure`) and the results add predictive draws and the log-likelihood
    default_holdout: float = 0.0  # --holdout when none is given (a method judged by held-out scores needs some)
    sbc_defaults: Mapping[str, Any] = {}

    # ---- identity and settings ------------------------------------------------------------
    @property
    def command_name(self) -> str:
        return self.cli_name or self.name

    def describe(self) -> str:
        return self.title or f"--method {self.command_name}"

    @property
    def wants_validation(self) -> bool:
        """The split draws a validation part for it (early stopping, choosing among models):
        it has the `validation` setting (`probgen.infer.parts.VALIDATION`)."""
        return any(setting.name == "validation" for setting in self.settings)

    def defaults(self) -> dict[str, Any]:
        return {setting.name: setting.default for setting in self.settings}

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults updated with `given` (None values ignored); an unknown setting, a value
        outside its choices or below its minimum is an `InferenceError` naming it."""
        settings = self.defaults()
        unknown = [k for k in given if k not in settings]
        if unknown:
            raise InferenceError(f"method '{self.command_name}' has no setting {', '.join(repr(k) for k in unknown)} "
                                 f"(settings: {', '.join(settings)})")
        known = {setting.name: setting for setting in self.settings}
        for name, value in given.items():
            if value is None:
                continue
            setting = known[name]
            if setting.choices is not None and value not in setting.choices:
                raise InferenceError(f"{setting.flag} must be one of {', '.join(map(str, setting.choices))}, "
                                     f"got {value!r}")
            if setting.minimum is not None and value < setting.minimum:
                raise InferenceError(f"{setting.flag} must be >= {setting.minimum:g}, got {value}")
            settings[name] = value
        return settings

    @property
    def exclusive(self) -> bool:
        """Fits only the families that provide the parts it `needs`."""
        return bool(self.needs)

    def claims(self, spec) -> bool:
        """True when `spec` provides every part this method `needs` (and it needs some): the
        method is then the spec's default, and the only one that fits it unless it `shares`."""
        return self.exclusive and spec is not None and all(spec.part(kind) is not None for kind in self.needs)

    def missing_parts(self, spec) -> list[str]:
        """The names of the parts this method needs that `spec` does not provide."""
        return [kind.__name__ for kind in self.needs if spec.part(kind) is None]

    def shares(self, spec) -> bool:
        """True when a spec this method `claims` may also be fitted by the other methods (this
        one is then its default): pmf, whose minibatch SVI answers to --method svi beside NUTS
        and MAP."""
        return False

    # ---- fitting ----------------------------------------------------------------------------
    def run(self, problem: Problem, settings: dict) -> Result:
        """Fit `problem` (its training part) with `settings`; what happened goes in the
        `Result`'s facts, never into `settings`."""
        raise NotImplementedError(f"{type(self).__name__}.run")

    def set_apart(self, spec):
        """(frame, options, seed) -> (rows to fit, rows set apart or None), applied before the
        split (the VAE's anomaly class), or None."""
        return None

    def sbc_refit(self, spec, inputs, settings: dict, structure) -> Callable:
        """refit(fit_key, init_key, observed, current_inputs) -> (latent draws with (chain,
        draw) axes, number of divergent transitions): compiled once, called per simulation."""
        raise InferenceError(f"SBC needs a posterior sample; {self.describe()} does not give one")

    def new_rows(self, spec, idata, config, rng_key, num_rows):
        """New data rows drawn the method's own way (a VAE's decoder), or None: the spec's
        simulator (or the model's predictive) draws them."""
        return None

    # ---- diagnostics ------------------------------------------------------------------------
    def verdicts(self, idata, settings: Mapping, facts: Mapping, quantities=None) -> list:
        """The `probgen.checks.diagnostics.Verdict`s that apply to this method's draws, from the
        InferenceData, the settings asked for and the facts of the run (`Result.facts`)."""
        raise NotImplementedError(f"{type(self).__name__}.verdicts")

    def trusted_summary(self, verdicts, settings: Mapping) -> str:
        """The report's one-line reading when every verdict passed."""
        return "Every check passed."


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to the registry under its name (a later registration replaces an earlier
    one of the same name, so a user can swap in their own)."""
    if not method.name:
        raise ValueError(f"{type(method).__name__} has no name")
    _REGISTRY[method.name] = method
    return method


def registered() -> tuple[Method, ...]:
    """Every registered method, in registration order."""
    return tuple(_REGISTRY.values())


def resumable_runs() -> str:
    """The runs `probgen fit --resume` carries on, in words, from the registry: the methods that
    save their state as they go (`durable`). The resume messages name them from here, so they
    cannot drift from what resumes."""
    return _in_words(method.describe() for method in _REGISTRY.values() if method.durable)


def warm_starting_runs() -> str:
    """The methods whose finished runs `--init-from` starts a new run from (`warm_starts`), in
    words, from the registry."""
    return _in_words(method.describe() for method in _REGISTRY.values() if method.warm_starts)


def _in_words(items) -> str:
    """"a, b and c"."""
    items = list(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def names() -> tuple[str, ...]:
    """The names --method accepts (a command name shared by several methods appears once)."""
    return tuple(dict.fromkeys(method.command_name for method in _REGISTRY.values()))


def get(name: str) -> Method:
    """The method registered as `name`."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise InferenceError(f"unknown method '{name}' (choose from {', '.join(names())})")


def for_spec(name: str | None, spec=None) -> Method:
    """The method that fits `spec` when the user asks for `name` (None: the default, NUTS, or
    the method that claims the spec)."""
    claiming = next((method for method in _REGISTRY.values() if method.claims(spec)), None)
    if claiming is not None:
        if name not in (None, claiming.command_name) and claiming.shares(spec):
            return get(name)
        if name not in (None, claiming.command_name):
            raise InferenceError(f"model '{spec.name}' is fitted by {claiming.describe()} only: use --method "
                                 f"{claiming.command_name} (not {name})")
        return claiming
    return get(name or "nuts")


def fitting(spec) -> list[Method]:
    """The methods that can fit `spec`: the one that claims it (and, if it shares, every method
    that needs no part), else every method that needs no part."""
    claiming = next((method for method in _REGISTRY.values() if method.claims(spec)), None)
    open_methods = [method for method in _REGISTRY.values() if not method.exclusive]
    if claiming is None:
        return open_methods
    return [claiming, *open_methods] if claiming.shares(spec) else [claiming]


def for_config(config: Mapping) -> Method:
    """The method that wrote a run folder's config: the registered method its facts name (several
    methods may share a command name: the minibatch trainer answers to --method svi), else the
    one its "method" names."""
    ran = facts_of(config).get("method")
    if ran is None and (config.get("settings") or {}).get("amortized"):  # a run folder from before facts
        ran = "minibatch"
    return _REGISTRY[ran] if ran in _REGISTRY else get(config["method"])


def facts_of(config: Mapping) -> dict:
    """What happened in a run (`Result.facts`), from its config; a run folder from before facts
    were kept apart has them mixed into its settings."""
    facts = config.get("facts")
    return dict(facts) if facts is not None else dict(config.get("settings") or {})
