"""The exact conjugate method (`--method exact`): for a model whose posterior has a closed form
(its `ConjugateUpdate` part: the n-gram language model's Dirichlet-multinomial), the posterior is
computed, not sampled or approximated.

The data are split like the minibatch trainer's (`probgen.infer.parts`): the posterior is
fitted to the training part (the prior's hyperparameters by maximum marginal likelihood, when
the family has any), and every part is scored; the validation part is kept apart so that
studies can choose between models on it and report the held-out part. The family's `evaluate`
returns the groups of the InferenceData, among them exact posterior draws of what it reports
(independent draws: nothing to converge, no R-hat).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from probgen.checks import diagnostics
from probgen.errors import InferenceError
from probgen.infer.methods import Method, Result, Setting, register
from probgen.infer.parts import DEFAULT_HOLDOUT, VALIDATION

@dataclasses.dataclass(frozen=True)
class ConjugateUpdate:
    """The part the exact method needs (`ModelSpec.parts`): a model whose posterior has a
    closed form (`probgen.infer.exact`): no sampling, no
    optimisation of the parameters, only of the prior's hyperparameters by maximum marginal
    likelihood where the family asks for it.

    fit:      (training ModelInputs, options, settings) -> posterior (a pytree of arrays: the
              conjugate update, e.g. Dirichlet counts, and the fitted hyperparameters).
    evaluate: (posterior, {part: ModelInputs}, options, settings, rng_key) -> {group:
              xarray.Dataset}: scores of every part (parts: "training", "validation",
              "held_out"), exact posterior draws of what the report shows, and the posterior
              itself as groups, so that a run folder holds everything `probgen report` and
              `probgen sample` need. It may take a keyword `progress`: a callable it calls with
              each part's name before scoring it, which moves the progress bar.
    """

    fit: Callable
    evaluate: Callable


SETTINGS = (
    Setting("draws", int, 200, "exact posterior draws of the model's probabilities at the held-out characters (their "
            "per-character intervals, and the held-out score of single draws)", minimum=1),
    VALIDATION,
)


def fit_exact(problem, settings: dict):
    """The exact posterior of `problem.spec` (by its `ConjugateUpdate`) on the training part, and
    every part scored; returns a `Result` whose posterior is the family's exact draws."""
    from tqdm.auto import tqdm

    spec = problem.spec
    update = spec.part(ConjugateUpdate)
    parts = list(problem.parts)
    takes_progress = "progress" in inspect.signature(update.evaluate).parameters
    with tqdm(total=1 + (len(parts) if takes_progress else 1), desc="exact posterior", unit="step",
              disable=not problem.progress, bar_format="{desc}: {n_fmt}/{total_fmt}{postfix} [{elapsed}]") as bar:
        bar.set_postfix_str("counting and choosing the prior (fit)")
        bar.refresh()  # shown at once: counting a large text takes seconds
        posterior = update.fit(problem.inputs, problem.options, settings)
        bar.update()
        scored = []

        def scoring(part: str):
            if scored:
                bar.update()
            scored.append(part)
            bar.set_postfix_str(f"scoring {part}" + (f" and drawing {settings['draws']} exact draws"
                                                     if part == "held_out" else ""))

        if takes_progress:
            groups = update.evaluate(posterior, problem.parts, problem.options, settings, problem.keys.root,
                                     progress=scoring)
        else:
            bar.set_postfix_str(f"scoring {', '.join(parts)} and drawing {settings['draws']} exact draws")
            groups = update.evaluate(posterior, problem.parts, problem.options, settings, problem.keys.root)
        bar.update()
        bar.set_postfix_str("done")
    if "posterior" not in groups:
        raise InferenceError(f"model '{spec.name}': ConjugateUpdate.evaluate returned no posterior group")
    return Result(groups.pop("posterior"), groups=groups)


class ExactMethod(Method):
    """The exact posterior of a conjugate model (the n-gram's Dirichlet-multinomial): no sampling."""

    name = "exact"
    title = "the exact conjugate posterior"
    settings = SETTINGS
    needs = (ConjugateUpdate,)
    traces_model = False  # the family's exact draws of what it reports, not a trace of the model
    default_holdout = DEFAULT_HOLDOUT
    posterior_report = True  # the standard report, on the exact draws of what the family reports
    gives_posterior_sample = False
    loss_label = "negative log marginal likelihood"

    def run(self, problem, settings):
        return fit_exact(problem, settings)

    def sbc_refit(self, spec, inputs, settings, structure):
        raise InferenceError(f"simulation-based calibration checks a sampler; model '{spec.name}''s posterior is exact")

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
        return [diagnostics.Verdict("exact", "pass", None, "closed-form posterior",
                                    "the posterior is conjugate and computed exactly: there is no sampler to converge "
                                    "and its draws are independent")]

    def trusted_summary(self, verdicts, settings) -> str:
        return ("The posterior is exact (conjugate): nothing to converge. Judge the model by its held-out score "
                "below.")


register(ExactMethod())
