"""Adversarial training (`--method adversarial`): for a model trained as a two-player game
(its `Game` part: the GAN), not by likelihood or posterior.

The data are split like the minibatch trainer's (`probgen.infer.parts`): the family trains on
the training part and scores the others (sample quality and coverage against held-out rows).
The verdicts are the game's own failures, read from the training history the family stores:
mode collapse, oscillation and missed modes (`probgen.models.gan.evaluation.diagnose`); the
family's report adds what it measures on the final generator's rows (sample quality, two-sample
tests: `ReportPart.verdicts`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from probgen.errors import InferenceError
from probgen.hooks import Generate
from probgen.infer.methods import Method, Result, Setting, register
from probgen.infer.parts import DEFAULT_HOLDOUT, VALIDATION

@dataclasses.dataclass(frozen=True)
class Game:
    """The part adversarial training needs (`ModelSpec.parts`): a model trained as a two-player
    game, not by likelihood (a GAN: `probgen.infer.adversarial`,
    `--method adversarial`). It has no log-likelihood to report; the family reports sample
    quality and coverage instead.

    fit:      ({part: ModelInputs}, options, settings, rng_key, progress) -> {group: xarray.Dataset}:
              train on the training part and return everything the run folder keeps: the
              trained networks ("parameters"), the generator as a one-draw "posterior", the
              training history ("adversarial_training", whose attrs say `collapse`, `oscillation`
              and a `reading`), and scores of the other parts.
    generate: a `probgen.hooks.Generate`, (idata, config, rng_key, num_rows) -> (num_rows, D) new
              rows in the data's units.
    """

    fit: Callable
    generate: Generate



SETTINGS = (
    Setting("steps", int, 5000, "training steps (one discriminator and one generator update each)", minimum=1),
    Setting("batch_size", int, 256, "rows (and latent draws) per step", minimum=1),
    Setting("learning_rate", float, 1e-3, "Adam learning rate of the generator (beta1 = 0.5)"),
    Setting("discriminator_learning_rate", float, 0.0, "Adam learning rate of the discriminator (0: the same)"),
    Setting("eval_every", int, 250, "steps between coverage evaluations", minimum=1),
    Setting("eval_samples", int, 1000, "generated rows per coverage evaluation (the same latent draws each time)",
            minimum=10),
    VALIDATION,
)


def fit_adversarial(problem, settings: dict):
    """Train the family's `Game` on the problem's parts; returns a `Result` with the
    family's posterior (its generated rows), networks and training history."""
    spec = problem.spec
    groups = spec.part(Game).fit(problem.parts, problem.options, settings, problem.keys.root, problem.progress)
    for name in ("posterior", "parameters", "adversarial_training"):
        if name not in groups:
            raise InferenceError(f"model '{spec.name}': Game.fit returned no '{name}' group")
    attrs = groups["adversarial_training"].attrs
    facts = {"collapse": bool(attrs["collapse"]), "oscillation": bool(attrs["oscillation"])}
    return Result(groups.pop("posterior"), facts=facts, groups=groups)


class AdversarialMethod(Method):
    """Alternating generator and discriminator updates, for models with a `Game` part."""

    name = "adversarial"
    title = "adversarial training (a two-player game)"
    settings = SETTINGS
    needs = (Game,)
    traces_model = False  # no likelihood to trace: the family's generated rows stand as its posterior
    default_holdout = DEFAULT_HOLDOUT
    posterior_report = False  # no likelihood, no posterior: the model reports samples and coverage
    gives_posterior_sample = False
    loss_label = "discriminator and generator losses"

    def run(self, problem, settings):
        return fit_adversarial(problem, settings)

    def sbc_refit(self, spec, inputs, settings, structure):
        raise InferenceError(f"simulation-based calibration needs a posterior; model '{spec.name}' is trained as a game")

    def new_rows(self, spec, idata, config, rng_key, num_rows):
        return spec.part(Game).generate(idata, config, rng_key, num_rows)

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
        from probgen.checks.diagnostics import Verdict

        history = idata.adversarial_training
        attrs = history.attrs
        final, modes = float(attrs["final_modes_hit"]), int(attrs["num_modes"])
        verdicts = [
            Verdict("mode_collapse", "fail" if attrs["collapse"] else "pass", final,
                    f"coverage at the end >= {attrs['collapse_coverage']:g} of the {modes} modes and not fallen from "
                    "its peak by a quarter of them", attrs["collapse_reading"]),
            Verdict("oscillation", "warn" if attrs["oscillation"] else "pass", float(attrs["mode_movement"]),
                    f"mass moving between modes <= {attrs['oscillation_tv']:g} (total variation between evaluations)",
                    attrs["oscillation_reading"]),
        ]
        if not attrs["collapse"]:  # short of a collapse, a missed mode is still a mode the generator never draws
            missed = modes - final
            verdicts.append(Verdict(
                "modes_covered", "pass" if missed <= 0 else "warn", final, f"all {modes} modes hit at the end",
                f"all {modes} modes hit at the end of training" if missed <= 0 else
                f"{missed:g} of the {modes} modes missed at the end of training: the generator never draws them"))
        return verdicts

    def trusted_summary(self, verdicts, settings) -> str:
        return "Training neither collapsed nor oscillated, and every mode is hit."


register(AdversarialMethod())
