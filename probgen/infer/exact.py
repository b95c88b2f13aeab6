"""The exact conjugate method (`--method exact`): for a model whose posterior has a closed form
(`ModelSpec.conjugate`: the n-gram language model's Dirichlet-multinomial), the posterior is
computed, not sampled or approximated.

The data are split like the minibatch trainer's (`probgen.infer.parts`): the posterior is
fitted to the training part (the prior's hyperparameters by maximum marginal likelihood, when
the family has any), and every part is scored; the validation part is kept apart so that
studies can choose between models on it and report the held-out part. The family's `evaluate`
returns the groups of the InferenceData, among them exact posterior draws of what it reports
(independent draws: nothing to converge, no R-hat).
"""

from __future__ import annotations

import time

import jax

from probgen import diagnostics
from probgen.errors import InferenceError
from probgen.infer.methods import Method, Setting, register
from probgen.infer.parts import DEFAULT_HOLDOUT, part_inputs, parts_inference_data, split_parts

SETTINGS = (
    Setting("draws", int, 200, "exact posterior draws of the held-out score (4 chains of draws / 4, independent)",
            minimum=1),
)


def fit_exact(spec, dataset, options: dict, settings: dict, seed: int, holdout: float, *, reference=None):
    """Fit `spec` (which has a `Conjugate`) exactly; returns a `Fit`."""
    from probgen.infer.results import Fit

    holdout = float(holdout) or DEFAULT_HOLDOUT
    parts = split_parts(spec, dataset, options, holdout, seed)
    inputs = part_inputs(spec, parts, options)
    started = time.perf_counter()
    posterior = spec.conjugate.fit(inputs["training"], options, settings)
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    groups = spec.conjugate.evaluate(posterior, inputs, options, settings, jax.random.PRNGKey(seed))
    if "posterior" not in groups:
        raise InferenceError(f"model '{spec.name}': Conjugate.evaluate returned no posterior group")
    train = inputs["training"]
    idata = parts_inference_data(groups.pop("posterior"), inputs, groups)
    record = {**settings, "holdout": holdout, "exact": True}
    return Fit(idata=idata, spec=spec, inputs=train, method="exact", settings=record, seed=int(seed), options=options,
               model_reference=reference or spec.name, dataset=parts["training"],
               timings={"inference": fitted, "results": time.perf_counter() - started})


class ExactMethod(Method):
    """The exact posterior of a conjugate model (the n-gram's Dirichlet-multinomial): no sampling."""

    name = "exact"
    title = "the exact conjugate posterior"
    settings = SETTINGS
    exclusive = True
    posterior_report = True  # the standard report, on the exact draws of what the family reports
    gives_posterior_sample = False
    loss_label = "negative log marginal likelihood"

    def claims(self, spec) -> bool:
        return getattr(spec, "conjugate", None) is not None

    def fit(self, spec, data, settings, *, options, seed=0, progress=True, columns=None, standardize=False,
            holdout=0.0, sets=None, reference=None, checkpoint_dir=None, resume=None, init_from=None):
        from probgen.infer.driver import _as_dataset

        if sets:
            raise InferenceError(f"--set gives arguments by name; model '{spec.name}' takes its data as a whole")
        if init_from is not None:
            raise InferenceError("--init-from starts a sampler from a finished run; the exact posterior needs no start")
        dataset = _as_dataset(data, columns, standardize, spec, options)
        return fit_exact(spec, dataset, options, settings, seed, holdout, reference=reference)

    def sbc_refit(self, spec, inputs, settings, structure):
        raise InferenceError(f"simulation-based calibration checks a sampler; model '{spec.name}''s posterior is exact")

    def verdicts(self, idata, settings, quantities=None) -> list:
        return [diagnostics.Verdict("exact", "pass", None, "closed-form posterior",
                                    "the posterior is conjugate and computed exactly: there is no sampler to converge "
                                    "and its draws are independent")]

    def trusted_summary(self, verdicts, settings) -> str:
        return ("The posterior is exact (conjugate): nothing to converge. Judge the model by its held-out score "
                "below.")


register(ExactMethod())
