"""The typed hooks of a `ModelSpec`: one `typing.Protocol` per hook, the return type of the
report hook (`ReportPart`), the held-out description (`HeldOut`), the parts a family gives in
`ModelSpec.parts` for jobs only some families have (`Relabel`, `Simulator`, `OriginalUnits`,
`FamilyPlots`, `DerivedGroups`, `JudgedOn`, `Predictor`, `TextGenerator`: each wraps one
function typed by its protocol), and `check_hooks`, which verifies that a spec's hooks take the
arguments their protocol passes.

A family sets only the hooks its mathematics demands; everything else has a generic answer:
options are checked from their `Option` metadata (type, choices, bounds), new rows come from
the model's posterior predictive draws unless a family has a faster simulator, and held-out
rows are drawn at random and prepared like the training rows unless `HeldOut` says otherwise.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, ClassVar, Mapping, Protocol

import pandas as pd


@dataclasses.dataclass(frozen=True)
class Section:
    """A report section: a title, a paragraph, and optionally a table."""

    title: str
    text: str
    table: pd.DataFrame | None = None


@dataclasses.dataclass(frozen=True)
class ReportPart:
    """Everything a model contributes to its report (`ModelSpec.report`).

    sections: extra sections, after the standard ones.
    metrics:  added to metrics.json.
    figures:  name -> matplotlib Figure, saved as plots/<name>.png and shown in the report.
    summary:  a table that replaces the posterior summary, for fits without a posterior of
              global parameters (a VAE: one row per latent dimension); None keeps ArviZ's.
    summary_title, summary_units: how the report heads and qualifies that table.
    verdicts: the family's own `probgen.checks.diagnostics.Verdict`s on what it can get wrong,
              judged after the fit (probabilistic PCA's retained dimensions against the held-out
              likelihood; a GAN's two-sample tests); they join the method's verdicts and decide
              the overall verdict with them.
    """

    sections: tuple[Section, ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    figures: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    summary: pd.DataFrame | None = None
    summary_title: str = "Posterior summary"
    summary_units: str = ""
    verdicts: tuple = ()


class Prepare(Protocol):
    def __call__(self, frame: pd.DataFrame, options: Mapping[str, Any]) -> Any:
        """The table (and resolved options) as the model's `ModelInputs`; `ModelError` names a
        bad column or option value."""


class Postprocess(Protocol):
    def __call__(self, samples: dict, inputs: Any) -> dict:
        """Latent draws with leading (chain, draw) axes -> draws (relabelling a mixture)."""


class Simulate(Protocol):
    def __call__(self, rng_key: Any, params: dict, num_points: int) -> Any:
        """(num_points, D) new rows from parameters with a leading draw axis. Only for a family
        with a faster or longer-reaching simulator than its stored predictive draws."""


class ToOriginalUnits(Protocol):
    def __call__(self, posterior: Any, loc: Any, scale: Any) -> Any:
        """The posterior Dataset in the data's units, undoing `--standardize`."""


class Plots(Protocol):
    def __call__(self, idata: Any) -> dict:
        """{name: matplotlib Figure}: the family's own plots."""


class Init(Protocol):
    def __call__(self, inputs: Any, rng_key: Any, num_chains: int) -> dict:
        """{latent site: (num_chains, ...) constrained values}: a start per chain."""


class Derived(Protocol):
    def __call__(self, draws: dict, inputs: Any, rng_key: Any) -> dict:
        """{group name: xarray Dataset} computed from flat posterior draws (state decoding)."""


class HeldOutInputs(Protocol):
    def __call__(self, training: pd.DataFrame, held_out: pd.DataFrame, options: Mapping[str, Any]) -> Any:
        """`ModelInputs` that score the held-out rows (given the training rows where a row's
        score depends on them: a time series' past, a scaling fitted on training rows)."""


class SequenceColumn(Protocol):
    def __call__(self, options: Mapping[str, Any]) -> str:
        """The column holding a sequence id ("" when all rows are one sequence)."""


class ConvergenceOn(Protocol):
    def __call__(self, idata: Any) -> Any:
        """An xarray Dataset of (chain, draw, ...) quantities that R-hat and ESS judge instead
        of the posterior's latent sites (a BNN's predictions)."""


class Report(Protocol):
    def __call__(self, idata: Any, config: dict) -> ReportPart:
        """The family's part of the report."""


class Predict(Protocol):
    def __call__(self, idata: Any, options: Mapping[str, Any], frame: pd.DataFrame, rng_key: Any) -> pd.DataFrame:
        """The posterior predictive at new inputs, one row per input row (`probgen predict`)."""


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """How `--holdout F` keeps rows out of a fit and scores them.

    inputs:   how the held-out rows become model inputs (default: `prepare` of those rows alone).
    sequence: the rows are time-ordered: keep out the last F of each sequence (a forecast
              split) instead of rows drawn at random; a `SequenceColumn`.
    """

    inputs: HeldOutInputs | None = None
    sequence: SequenceColumn | None = None


class Generate(Protocol):
    def __call__(self, idata: Any, config: dict, rng_key: Any, amount: int) -> Any:
        """New data drawn from a fitted run (`idata`, its `config`): `amount` rows as an
        (amount, D) array in the data's units (`Objective.generate`, `Game.generate`), or
        `amount` characters of text (`TextGenerator`, which also takes the keywords `prompt`
        and `temperature`). The one signature of "draw new data" from a run; `Simulate`
        draws from given parameters instead (simulation-based calibration, tests)."""


@dataclasses.dataclass(frozen=True)
class Hook:
    """A family's function for one job only some families have, given as a part
    (`ModelSpec.parts`) and read back by `ModelSpec.part(kind)` (or the spec attribute named
    `attribute`). Calling the part calls the function."""

    function: Callable
    protocol: ClassVar[type] = Protocol
    attribute: ClassVar[str] = ""

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


class Relabel(Hook):
    """Relabel latent draws before anything reads them (a mixture's components by their means)."""
    protocol, attribute = Postprocess, "postprocess"


class Simulator(Hook):
    """New rows from parameters, faster or further-reaching than the stored predictive draws."""
    protocol, attribute = Simulate, "simulate"


class OriginalUnits(Hook):
    """The posterior in the data's units, undoing `--standardize`, for the summary table."""
    protocol, attribute = ToOriginalUnits, "to_original_units"


class FamilyPlots(Hook):
    """The family's own plots beside the standard ones."""
    protocol, attribute = Plots, "plots"


class DerivedGroups(Hook):
    """Extra InferenceData groups computed from the posterior (an HMM's decoded states)."""
    protocol, attribute = Derived, "derived"


class JudgedOn(Hook):
    """What R-hat and ESS judge when the latent sites are not identified across chains."""
    protocol, attribute = ConvergenceOn, "convergence_on"


class Predictor(Hook):
    """The posterior predictive at new inputs (`probgen predict`)."""
    protocol, attribute = Predict, "predict"


class TextGenerator(Hook):
    """A continuation of a prompt from the fitted model (`probgen sample --prompt`)."""
    protocol, attribute = Generate, "generate_text"


HOOK_PARTS: tuple[type[Hook], ...] = (Relabel, Simulator, OriginalUnits, FamilyPlots, DerivedGroups, JudgedOn,
                                      Predictor, TextGenerator)

# hook field -> its protocol (the fields of ModelSpec that hold callables)
PROTOCOLS: dict[str, type] = {"prepare": Prepare, "init": Init, "report": Report}


def _positional_arity(function: Callable) -> tuple[int, float]:
    """(required, most) positional arguments `function` accepts."""
    parameters = inspect.signature(function).parameters.values()
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    most = float("inf") if any(p.kind is p.VAR_POSITIONAL for p in parameters) else len(positional)
    return required, most


def hook_problem(name: str, function: Callable, protocol: type) -> str | None:
    """Why `function` cannot serve as hook `name` (a `protocol`), or None."""
    if not callable(function):
        return f"{name} is a {type(function).__name__}, not a function"
    wanted = len(inspect.signature(protocol.__call__).parameters) - 1  # without self
    try:
        required, most = _positional_arity(function)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return None
    if not required <= wanted <= most:
        expected = ", ".join(list(inspect.signature(protocol.__call__).parameters)[1:])
        return f"{name} must take {wanted} argument(s) ({expected}); it takes {required}" + (
            "" if most == required else f" to {most:g}")
    return None


def check_hooks(spec) -> list[str]:
    """The problems with `spec`'s hooks (empty when each takes what its protocol passes)."""
    problems = [hook_problem(name, getattr(spec, name), protocol)
                for name, protocol in PROTOCOLS.items() if getattr(spec, name, None) is not None]
    kinds = [type(part).__name__ for part in getattr(spec, "parts", ())]
    problems += [f"parts holds more than one {kind}" for kind in sorted(set(kinds)) if kinds.count(kind) > 1]
    problems += [hook_problem(type(part).__name__, part.function, part.protocol)
                 for part in getattr(spec, "parts", ()) if isinstance(part, Hook)]
    problems += [hook_problem(f"{type(part).__name__}.generate", part.generate, Generate)  # a method's part
                 for part in getattr(spec, "parts", ()) if callable(getattr(part, "generate", None))]
    held_out = getattr(spec, "held_out", None)
    if held_out is not None:
        for field, protocol in (("inputs", HeldOutInputs), ("sequence", SequenceColumn)):
            if getattr(held_out, field) is not None:
                problems.append(hook_problem(f"held_out.{field}", getattr(held_out, field), protocol))
    return [problem for problem in problems if problem]
