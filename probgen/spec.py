"""`ModelSpec`: everything probgen needs to know about a model, and how models are found.

A model is a plain NumPyro function. Its spec says how a table of data becomes the model's
arguments, which of them are observed, and the optional extras: a guide for SVI, a
post-processing step for the posterior draws (e.g. mixture relabelling), a simulator, a
conversion back to the data's original units and model-specific plots. The spec knows nothing
about inference.

Model lookup (`load_spec`): a name from `probgen.models` (the repository's `models/` folder),
or a path to a user's `.py` file holding `SPEC` (a `ModelSpec`) or a function named `model`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from probgen.errors import ModelError
from probgen.hooks import (  # noqa: F401  (re-exported: the hook types a family writes against)
    HOOK_PARTS, ConvergenceOn, Derived, DerivedGroups, FamilyPlots, HeldOut, Init, JudgedOn, OriginalUnits, Plots,
    Postprocess, Predict, Predictor, Prepare, Relabel, Report, ReportPart, Section, Simulate, Simulator,
    TextGenerator, ToOriginalUnits, check_hooks,
)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A headline figure of metrics.json and its plausible range (`ModelSpec.headline`).

    path:   keys into metrics.json joined by "/" ("recommendation_held_out/coverage_90"); "*"
            stands for every element of a list or every value of a mapping ("states/*/share_of_time").
    low, high: numbers, or paths of other figures of the same metrics.json ("gan/training/num_modes");
            None for no bound on that side.
    stated: the report must state the figure (the same number at the precision it shows).
    """

    path: str
    low: float | str | None = None
    high: float | str | None = None
    stated: bool = False


class Headline:
    """A family's headline figures, `Headline(Bound(...), ...)`: a part of its spec (`parts`),
    read back as `ModelSpec.headline`."""

    def __init__(self, *bounds: Bound):
        if not all(isinstance(bound, Bound) for bound in bounds):
            raise TypeError("Headline takes Bound(path, low, high, stated) arguments")
        self.bounds = tuple(bounds)

    def __repr__(self) -> str:
        return f"Headline{self.bounds!r}"


@dataclasses.dataclass(frozen=True)
class Option:
    """A model option, exposed as `--<name>` on the CLI (underscores become dashes).

    choices, minimum (inclusive), above (exclusive): the values allowed; `ModelSpec.resolve_options`
    checks them, so a family's `prepare` need not."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    above: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def problem(self, value) -> str | None:
        """Why `value` is not allowed for this option, or None."""
        if self.type is int and not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)):
            kind = "an integer" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
            return f"{self.flag} must be {kind}, got {value!r}"
        if self.type is float and not isinstance(value, (int, float, np.integer, np.floating)):
            return f"{self.flag} must be a number, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{self.flag} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.minimum is not None and not value >= self.minimum:
            kind = "an integer " if self.type is int else ""
            return f"{self.flag} must be {kind}>= {self.minimum:g}, got {value!r}"
        if self.above is not None and not value > self.above:
            return f"{self.flag} must be > {self.above:g}, got {value!r}"
        return None


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """The arguments of one model call, split by role.

    kwargs:   bound into the model with `functools.partial`: configuration (ints, strings) and
              small constant arrays (prior hyperparameters). Never observed.
    observed: name -> array of the observed sites. Set to None to draw from the model
              (prior or posterior predictive).
    coords, dims: ArviZ coordinates and dimension names for the InferenceData.
    masks:    observed name -> bool array over its rows (the dims before "feature"), True for
              rows that are data: padded sequences mark their padding False, and held-out
              inputs that carry their training history along mark only the held-out rows.
              Stored beside the values as `<name>_mask`; the checks and scores skip the rest.
    labels:   what describes the data without being a model argument (the HMM's time of each
              step), for derived groups, plots and readings.
    unused:   data entries the model takes no argument for (binding by name ignores them, as
              cmdstan does; the run records them).
    missing:  argument -> {"count", "first"}: NaN entries (JSON null, empty CSV cells) bound for
              the model to mask or impute (`obs_mask`); the run records them.
    """

    kwargs: Mapping[str, Any]
    observed: Mapping[str, Any]
    coords: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dims: Mapping[str, list[str]] = dataclasses.field(default_factory=dict)
    masks: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    unused: tuple[str, ...] = ()
    missing: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def bound_model(self, model: Callable, subsample: bool = False) -> Callable:
        """The model with `kwargs` bound; call it with `**observed` (or observed=None).

        A subsampling plate (`plate(..., subsample_size=m)`) runs over all its entries
        (`tracing.full_plates`): the exact log density, predictive and log-likelihood of the whole
        data. subsample=True keeps the model's minibatches: the SVI loss (NumPyro's scaled ELBO).

        Returns the same object for the same model, so that compiled programs keyed on it
        (NumPyro's kernels, probgen's results builder) are compiled once per fit, not per call.
        """
        bound = self.__dict__.setdefault("_bound_models", {})
        if (model, subsample) not in bound:
            from probgen.tracing import full_plates, unmask_imputed

            made = functools.partial(model, **self.kwargs)
            if self.missing:  # obs_mask's imputation sites get a proper density (`tracing.unmask_imputed`)
                made = unmask_imputed(made)
            bound[model, subsample] = made if subsample else full_plates(made)
        return bound[model, subsample]

    @property
    def num_points(self) -> int:
        """Number of observations (leading axis of the first observed array)."""
        first = next(iter(self.observed.values()))
        return int(np.shape(first)[0])


def describe_function(function: Callable) -> str:
    """'model() in eight_schools.py' (or the bare name for a function without a file)."""
    code = getattr(function, "__code__", None)
    name = getattr(function, "__name__", type(function).__name__)
    return f"{name}() in {Path(code.co_filename).name}" if code is not None else f"{name}()"


def takes_x_array(spec: "ModelSpec", keys) -> bool:
    """Whether `spec` gets its data through the `x`-array contract (`_default_prepare`): a model
    without a SPEC of its own whose function takes `x`, given data with no entry named `x` (a
    table whose columns are the features). Every other plain model is bound by name."""
    return (getattr(spec.prepare, "x_array_contract", False) and "x" in inspect.signature(spec.model).parameters
            and "x" not in keys)


def is_plain_model(spec: "ModelSpec") -> bool:
    """A model without a `prepare` of its own (a model file with no SPEC, a function given to
    `probgen.fit`): it is bound to its data by argument name, unless it takes the `x` array
    (`takes_x_array`)."""
    return getattr(spec.prepare, "x_array_contract", False)


def _default_prepare(model: Callable) -> Callable:
    """Prepare for a bare `model(x, ...)`: the selected columns as `x`, shape (N, D) float32,
    and `num_points` = N and `num_dims` = D for a model that takes them."""
    parameters = inspect.signature(model).parameters

    def prepare(frame: pd.DataFrame, options: Mapping[str, Any]) -> ModelInputs:
        if "x" not in parameters:
            raise ModelError(
                f"model function {model.__name__}() must take the data as an argument named "
                "'x' (an (N, D) array), or its file must define SPEC = ModelSpec(...)"
            )
        x = frame.to_numpy(dtype=np.float32)
        sizes = {"num_points": x.shape[0], "num_dims": x.shape[1]}
        kwargs = {name: size for name, size in sizes.items() if name in parameters}
        return ModelInputs(
            kwargs=kwargs,
            observed={"x": x},
            coords={"obs_id": np.arange(x.shape[0]), "feature": list(frame.columns)},
            dims={"x": ["obs_id", "feature"]},
        )

    prepare.x_array_contract = True
    return prepare


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model and what probgen needs to fit it, check it and report on it.

    name:      short name used in run folders and reports.
    model:     the NumPyro model function, called as `model(**inputs.kwargs, **observed)`.
    prepare:   (DataFrame, options) -> ModelInputs. Validates options against the data and
               raises `ModelError` naming the bad option.
    options:   model options (CLI flags such as `--num-components`).
    guide:     optional hand-written guide for SVI (same signature as the model).
    summary_vars: posterior variables for the summary table (default: all latent sites).
    init:      optional (inputs, rng_key, num_chains) -> {latent site: (num_chains, ...)
               constrained values}: a starting point per chain for MCMC (the first one for
               SVI). Without it, chains start at NumPyro's uniform(-2, 2) in unconstrained
               space, which is poor for parameters in data units and for multimodal models.
    held_out:  optional `HeldOut`: how `--holdout` keeps rows out and scores them: `sequence`
               (options -> sequence column) for time-ordered rows, so that the last F of each
               sequence are kept out (a forecast split) instead of rows drawn at random;
               `inputs` (training frame, held-out frame, options) -> ModelInputs, e.g. held-out
               steps that carry the training rows before them (masked out, `masks`) so that
               each is scored given its past. Default: random rows, `prepare`d alone.
    report:    optional (idata, config) -> `ReportPart`: the model's own part of the report (a
               BNN's held-out RMSE, coverage, calibration; a VAE's whole report).
    parts:     what only some families provide, one part of each kind; `part(kind)` finds one.
               Jobs of the family's own (`probgen.hooks`, each wrapping one function typed by
               its protocol; the spec attribute in brackets reads the function back):
               - `Relabel` (`postprocess`): (samples with leading (chain, draw) axes, inputs)
                 -> samples, applied to latent draws before anything else reads them;
               - `Simulator` (`simulate`): (rng_key, params with a leading draw axis,
                 num_points) -> (num_points, D) new rows from given (or posterior) parameters;
               - `OriginalUnits` (`to_original_units`): (posterior Dataset, loc, scale) ->
                 Dataset, undoing the data layer's standardisation for the summary table;
               - `FamilyPlots` (`plots`): (idata) -> {name: matplotlib Figure};
               - `DerivedGroups` (`derived`): (flat posterior draws, inputs, rng_key) ->
                 {group: Dataset}: extra groups from the posterior (an HMM's state decoding);
               - `JudgedOn` (`convergence_on`): (idata) -> Dataset of (chain, draw, ...)
                 quantities that R-hat and ESS judge instead of latent sites that are not
                 identified across chains (a BNN's weights);
               - `Predictor` (`predict`): (idata, options, frame, rng_key) -> DataFrame: the
                 posterior predictive at new inputs (`probgen predict`);
               - `Headline` (`headline`): the `Bound`s of the family's headline figures in
                 metrics.json (held-out bits per character within [0, log2 of the vocabulary],
                 a coverage within [0, 1]); `probgen.report.consistency` enforces them, and
                 that the report states each one marked `stated`;
               - `TextGenerator` (`generate_text`): a `Generate`, (idata, config, rng_key,
                 num_symbols, prompt=, temperature=) -> str (`probgen sample --prompt`).
               And what a method that needs more than the model asks for (`Method.needs`):
               `probgen.infer.amortized.Objective` (the minibatch trainer: VAE, MADE, pmf,
               the network LMs), `probgen.infer.exact.ConjugateUpdate` (the exact method:
               the n-gram), `probgen.infer.adversarial.Game` (adversarial training: the GAN).
    data_kind: a kind of `probgen.data.kinds.KINDS`, which reads it: "table" (a numeric table,
               the default), "text" (documents: `probgen.data.text`;
               the frame `prepare` gets has one column, `text`) or "ratings" ((user, item,
               rating[, time]) rows: `probgen.data.ratings`, columns named by the options
               user_column, item_column, rating_column, time_column, duplicates, max_users,
               min_item_ratings).
    description: one line for `probgen models`.
    """

    name: str
    model: Callable
    prepare: Prepare | None = None
    options: tuple[Option, ...] = ()
    guide: Callable | None = None
    summary_vars: tuple[str, ...] | None = None
    init: Init | None = None
    held_out: HeldOut | None = None
    report: Report | None = None
    parts: tuple = ()
    data_kind: str = "table"
    description: str = ""

    def __post_init__(self):
        if self.prepare is None:
            object.__setattr__(self, "prepare", _default_prepare(self.model))
        problems = check_hooks(self)
        from probgen.data.kinds import KINDS

        if self.data_kind not in KINDS:
            problems.append(f"data_kind must be one of {', '.join(map(repr, KINDS))}, got {self.data_kind!r}")
        if problems:
            raise ModelError(f"ModelSpec '{self.name}': " + "; ".join(problems))

    def hooks(self) -> tuple[str, ...]:
        """The hooks this spec sets beyond its model (what its family had to write)."""
        fields = ("prepare", "guide", "init", "held_out", "report")
        return tuple(name for name in fields if getattr(self, name) is not None
                     and not (name == "prepare" and is_plain_model(self))) + tuple(type(p).__name__ for p in self.parts)

    def part(self, kind: type):
        """The part of type `kind` this spec provides (`parts`), or None."""
        return next((part for part in self.parts if isinstance(part, kind)), None)

    @property
    def headline(self) -> tuple:
        """The `Bound`s of the family's `Headline` part (empty without one)."""
        part = self.part(Headline)
        return () if part is None else part.bounds

    def _hook(self, kind: type):
        part = self.part(kind)
        return None if part is None else part.function

    # the function of each hook part, or None (`probgen.hooks.HOOK_PARTS`)
    postprocess = property(lambda self: self._hook(Relabel), doc="the `Relabel` part's function, or None")
    simulate = property(lambda self: self._hook(Simulator), doc="the `Simulator` part's function, or None")
    to_original_units = property(lambda self: self._hook(OriginalUnits),
                                 doc="the `OriginalUnits` part's function, or None")
    plots = property(lambda self: self._hook(FamilyPlots), doc="the `FamilyPlots` part's function, or None")
    derived = property(lambda self: self._hook(DerivedGroups), doc="the `DerivedGroups` part's function, or None")
    convergence_on = property(lambda self: self._hook(JudgedOn), doc="the `JudgedOn` part's function, or None")
    predict = property(lambda self: self._hook(Predictor), doc="the `Predictor` part's function, or None")
    generate_text = property(lambda self: self._hook(TextGenerator), doc="the `TextGenerator` part's function, or None")

    def default_options(self) -> dict[str, Any]:
        return {option.name: option.default for option in self.options}

    def resolve_options(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated with `given`; an unknown option name, or a value outside the
        option's type, choices or bounds, is a `ModelError` naming it."""
        options = self.default_options()
        for name, value in (given or {}).items():
            if name not in options:
                known = ", ".join(options) or "none"
                raise ModelError(f"model '{self.name}' has no option '{name}' (options: {known})")
            if value is not None:
                options[name] = value
        for option in self.options:
            problem = option.problem(options[option.name])
            if problem:
                raise ModelError(problem)
        return options


def builtin_model_names() -> list[str]:
    """Names of the model families in `probgen.models`."""
    import probgen.models as package

    return sorted(
        info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")
    )


def _spec_from_module(module, label: str) -> ModelSpec:
    spec = getattr(module, "SPEC", None)
    if spec is not None:
        if not isinstance(spec, ModelSpec):
            raise ModelError(f"{label}: SPEC is a {type(spec).__name__}, not a probgen.ModelSpec")
        return spec
    model = getattr(module, "model", None)
    if callable(model):
        return ModelSpec(name=Path(getattr(module, "__file__", label)).stem, model=model,
                         description=(inspect.getdoc(model) or "").split("\n")[0])
    raise ModelError(f"{label} defines neither SPEC (a probgen.ModelSpec) nor a function named 'model'")


def load_spec(reference: str) -> ModelSpec:
    """The spec named by `reference`: a built-in model name or a path to a `.py` file."""
    path = Path(reference)
    if reference.endswith(".py") or path.suffix == ".py" or "/" in reference:
        if not path.is_file():
            raise ModelError(f"model file '{reference}' does not exist")
        module_name = f"probgen_user_model_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ModelError(f"model file '{reference}' cannot be imported as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: report what broke, where
            from probgen.errors import user_exception

            del sys.modules[module_name]
            where = user_exception(exc, filename=str(path))
            if isinstance(exc, SyntaxError) and exc.lineno:
                where = f"model file '{path.name}', line {exc.lineno}: SyntaxError: {exc.msg}"
            raise ModelError(f"{where or f'model file {reference!r}'} (while importing it)" if where else
                             f"model file '{reference}' failed to import: {type(exc).__name__}: {exc}") from exc
        return _spec_from_module(module, f"model file '{reference}'")
    names = builtin_model_names()
    if reference not in names:
        raise ModelError(
            f"unknown model '{reference}': not a built-in model ({', '.join(names)}) "
            "nor a path to a .py file"
        )
    module = importlib.import_module(f"probgen.models.{reference}")
    return _spec_from_module(module, f"model '{reference}'")
