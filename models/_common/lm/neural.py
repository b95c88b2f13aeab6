"""What the two neural language models (`neural_lm`, `attention_lm`) share: options, data
preparation, what the minibatch trainer (`probgen.infer.amortized`) asks of them (a per-row
validation score and per-part scores), sampling and the report. `spec(kind, ...)` builds
each family's ModelSpec."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np

from probgen.errors import DataError
from probgen.models._common.lm import networks
from probgen.models._common.lm.scoring import per_document, token_predictive
from probgen.models._common.lm.text import PAD, Vocabulary, documents_of, text_options, rows

TRAINING_ROWS_SCORED = 2000  # the training part's score is taken on this many rows drawn at random (a full pass
# costs an epoch); the report says so
POSTERIOR_DRAWS = 20  # head draws for the Bayesian head's posterior predictive


def architecture_from(options, size: int) -> networks.Architecture:
    return networks.Architecture(options["architecture"], size, int(options["context"]), int(options["block"]),
                                 int(options["embedding"]), int(options["hidden"]), int(options["heads"]),
                                 int(options["layers"]))


def _inputs(documents, vocabulary: Vocabulary, options):
    from probgen.spec import ModelInputs

    architecture = architecture_from(options, vocabulary.size)
    x, owner = rows(documents, vocabulary, architecture.context, architecture.block)
    return ModelInputs(
        kwargs={"architecture": architecture, "bayesian_head": options["head"] == "bayesian",
                "prior_scale": float(options["prior_scale"]), "characters": vocabulary.to_json(),
                "num_documents": len(documents)},
        observed={"x": x}, dims={"x": ["obs_id", "column"], "owner": ["obs_id", "position"]}, labels={"owner": owner})


def prepare(frame, options):
    documents = documents_of(frame)
    if options["architecture"] == "attention" and int(options["hidden"]) % int(options["heads"]):
        raise DataError(f"--hidden {options['hidden']} must be a multiple of --heads {options['heads']}")
    return _inputs(documents, Vocabulary.from_documents(documents, int(options["min_count"])), options)


def held_out_inputs(training, held_out, options):
    vocabulary = Vocabulary.from_documents(documents_of(training), int(options["min_count"]))
    return _inputs(documents_of(held_out), vocabulary, options)


def _chunk_log_probs(architecture, variables, head, part):
    """(chunk, block) log p of each target of `part` rows (S leading draws when the head has them)."""
    targets = part[:, architecture.context:]
    features = architecture.network().apply(variables, part)
    if head["bias"].ndim == 2:
        logits = jnp.einsum("rth,shv->srtv", features, head["kernel"]) + head["bias"][:, None, None, :]
    else:
        logits = features @ head["kernel"] + head["bias"]
    logits = logits.at[..., PAD].set(-1e9)
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.broadcast_to(targets, logits.shape[:-1])[..., None],
                                axis=-1)[..., 0]
    return jnp.where(targets != PAD, log_p, 0.0)


_compiled_chunk = jax.jit(_chunk_log_probs, static_argnums=0)


def target_log_probs(architecture, params, x, head, chunk: int = 32, eager: bool = False):
    """(R, block) natural-log probabilities of each row's targets (0 where nothing is
    predicted). head: {kernel, bias}, with a leading draw axis S for posterior draws, in which
    case the posterior predictive log mean_s p_s is returned and also (S, R, block) per draw.
    Traced (inside the trainer's compiled step): a `lax.map` over chunks of rows; eager (the
    final scores): one compiled chunk called chunk by chunk, so parts of any size share it."""
    variables = networks.network_params(params)
    rows_ = x.shape[0]
    padded = -(-rows_ // chunk) * chunk
    x = jnp.concatenate([x, jnp.full((padded - rows_, x.shape[1]), PAD, x.dtype)]) if padded > rows_ else x
    draws = head["bias"].ndim == 2
    if eager:
        parts = [_compiled_chunk(architecture, variables, head, x[start:start + chunk]) for start in range(0, padded, chunk)]
        out = jnp.stack(parts)
    else:
        out = jax.lax.map(lambda part: _chunk_log_probs(architecture, variables, head, part),
                          x.reshape(-1, chunk, x.shape[1]))
    if draws:
        per_draw = jnp.moveaxis(out, 1, 0).reshape((head["bias"].shape[0], padded, -1))[:, :rows_]
        return jax.nn.logsumexp(per_draw, axis=0) - math.log(per_draw.shape[0]), per_draw
    return out.reshape(padded, -1)[:rows_]


def elbo(params, x, kwargs, rng_key):
    """Per-row validation score for early stopping: the log-likelihood at the head's mean."""
    head = networks.head_mean(params, kwargs["bayesian_head"])
    return target_log_probs(kwargs["architecture"], params, x, head).sum(axis=1)


def evaluate(params, inputs: dict, options: dict, rng_key) -> dict:
    """{part}_scores: bits (document,) and symbols (document,) for every part (the training
    part on TRAINING_ROWS_SCORED of its rows drawn at random with a fixed seed, which the
    group's attrs record); with a Bayesian head, the posterior
    predictive, and held_out_score_draws: the held-out bits per character under each of
    POSTERIOR_DRAWS head draws (the uncertainty of the score)."""
    import xarray as xr

    kwargs = inputs["training"].kwargs
    architecture, bayesian = kwargs["architecture"], kwargs["bayesian_head"]
    head = networks.head_draws(params, rng_key, POSTERIOR_DRAWS) if bayesian else networks.head_mean(params, False)
    groups = {"vocabulary": xr.Dataset({"symbol_id": ("symbol", np.arange(architecture.size))},
                                       attrs={"characters": kwargs["characters"]})}
    for part, part_inputs in inputs.items():
        x, owner = part_inputs.observed["x"], part_inputs.labels["owner"]
        attrs = {}
        if part == "training" and len(x) > TRAINING_ROWS_SCORED:
            chosen = np.sort(np.random.default_rng(0).choice(len(x), TRAINING_ROWS_SCORED, replace=False))
            attrs = {"rows_scored": TRAINING_ROWS_SCORED, "rows": int(len(x))}
            x, owner = x[chosen], owner[chosen]
        log_p = target_log_probs(architecture, params, jnp.asarray(x), head, eager=True)
        if bayesian:
            log_p, per_draw = log_p
        documents = int(part_inputs.kwargs["num_documents"])
        bits, symbols = per_document(-np.asarray(log_p).reshape(-1) / math.log(2), owner.reshape(-1), documents)
        keep = symbols > 0
        groups[f"{part}_scores"] = xr.Dataset({"bits": ("document", bits[keep]), "symbols": ("document", symbols[keep])},
                                              attrs=attrs)
        if part == "held_out":
            targets = owner.reshape(-1) >= 0
            token_symbols = np.asarray(x)[:, architecture.context:].reshape(-1)[targets]
            log_draws = None
            if bayesian:
                totals = -np.asarray(per_draw).sum(axis=(1, 2)) / math.log(2) / symbols.sum()
                groups["held_out_score_draws"] = xr.Dataset({"held_out_bits_per_char": ("draw", totals)})
                log_draws = np.asarray(per_draw).reshape(per_draw.shape[0], -1)[:, targets]
            groups["held_out_tokens"] = token_predictive(token_symbols, np.asarray(log_p).reshape(-1)[targets], log_draws)
    return groups


def stored(idata, config):
    """(architecture, params, bayesian head, vocabulary) of a fitted run."""
    from probgen.infer.amortized import params_from_dataset

    options = config["model"]["options"]
    vocabulary = Vocabulary(tuple(json.loads(idata.vocabulary.attrs["characters"])))
    return (architecture_from(options, vocabulary.size), params_from_dataset(idata.parameters),
            options["head"] == "bayesian", vocabulary)


def next_probabilities(idata, config):
    """(vocabulary, context, next(histories (B, context)) -> (B, V)) of a fitted run (the
    Bayesian head at its mean)."""
    architecture, params, bayesian, vocabulary = stored(idata, config)
    head = networks.head_mean(params, bayesian)
    module = architecture.network()
    variables = networks.network_params(params)

    @jax.jit
    def next_symbol(histories):
        row = jnp.concatenate([histories, jnp.full((histories.shape[0], 1), PAD, histories.dtype)], axis=1)
        logits = module.apply(variables, row)[:, 0] @ head["kernel"] + head["bias"]
        return jax.nn.softmax(logits.at[:, PAD].set(-1e9))

    return vocabulary, architecture.context, lambda histories: np.asarray(next_symbol(jnp.asarray(histories, jnp.int32)))


def generate_text(idata, config, rng_key, num_symbols: int, *, prompt: str = "", temperature: float = 1.0) -> str:
    """`prompt` continued by `num_symbols` characters drawn from the fitted model (a `Generate`)."""
    from probgen.models._common.lm.sampling import continue_text

    vocabulary, context, next_symbol = next_probabilities(idata, config)
    rng = np.random.default_rng(np.asarray(rng_key).ravel().tolist())
    return continue_text(next_symbol, vocabulary, prompt, num_symbols, temperature, rng, context)


def attention_figures(idata, config) -> dict:
    """The attention maps of every layer and head on the first held-out document, and how far
    back each layer looks (attention-weighted mean distance)."""
    import matplotlib.pyplot as plt

    architecture, params, _, vocabulary = stored(idata, config)
    if architecture.kind != "attention" or "held_out_data" not in idata.groups():
        return {}
    from probgen.models._common.lm.report import part_documents

    document = part_documents(idata.held_out_data)[0][:min(64, architecture.context)]
    row = np.concatenate([[PAD], document, [PAD]]).astype(np.int32)
    weights = np.asarray(jax.jit(lambda r: networks.attention_weights(architecture, params, r))(jnp.asarray(row)))  # (L, H, n, n)
    length = len(document) + 1
    weights = weights[:, :, :length, :length]
    figure, axes = plt.subplots(weights.shape[0], weights.shape[1], figsize=(2.6 * weights.shape[1], 2.6 * weights.shape[0]),
                                squeeze=False)
    for layer in range(weights.shape[0]):
        for head in range(weights.shape[1]):
            axis = axes[layer, head]
            axis.imshow(weights[layer, head], cmap="viridis", vmin=0, vmax=1)
            axis.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle("attention on a held-out document: " + repr(vocabulary.decode(document[:40]))[:60], fontsize=9)
    figure.tight_layout()
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    reach = (weights * distance).sum(-1).mean(-1)  # (L, H): mean distance looked back
    reach_figure, axis = plt.subplots(figsize=(5, 3.2))
    for layer in range(reach.shape[0]):
        axis.plot(np.arange(1, reach.shape[1] + 1), reach[layer], "o-", label=f"layer {layer + 1}")
    axis.set_xlabel("head")
    axis.set_ylabel("mean distance attended (characters)")
    axis.legend()
    reach_figure.tight_layout()
    return {"attention_maps": figure, "attention_reach": reach_figure}


def report(idata, config):
    from probgen.models._common.lm.report import language_model_report

    vocabulary, context, next_symbol = next_probabilities(idata, config)
    options = config["model"]["options"]
    label = (f"{'Bengio MLP' if options['architecture'] == 'bengio' else 'attention'} LM, context {options['context']}"
             + (", Bayesian head" if options["head"] == "bayesian" else ""))
    return language_model_report(idata, config, (vocabulary, context, next_symbol), label=label,
                                 extra_figures=attention_figures)


def spec(name: str, kind: str, context: int, block: int, hidden: int, description: str):
    """The ModelSpec of a neural language model of `kind` ("bengio" or "attention")."""
    from probgen.infer.amortized import Objective
    from probgen.spec import Bound, Headline, HeldOut, ModelSpec, Option, TextGenerator

    return ModelSpec(
        name=name,
        model=networks.lm_model,
        guide=networks.lm_guide,
        prepare=prepare,
        options=(
            Option("architecture", str, kind, "the network: bengio (an MLP on the last --context characters) or "
                                              "attention (a causal transformer)", ("bengio", "attention")),
            Option("context", int, context, "characters each prediction sees", minimum=1),
            Option("block", int, block, "predictions per training row (rows are --context + --block characters)",
                   minimum=1),
            Option("embedding", int, 32, "bengio: size of a character's embedding", minimum=1),
            Option("hidden", int, hidden, "bengio: hidden units; attention: model width", minimum=1),
            Option("heads", int, 4, "attention heads per layer", minimum=1),
            Option("layers", int, 3, "attention layers", minimum=1),
            Option("head", str, "point", "the softmax layer: a point estimate (MAP) or Bayesian (Normal prior, "
                                         "mean-field Normal posterior by SVI)", ("point", "bayesian")),
            Option("prior_scale", float, 1.0, "sd of the Bayesian head's Normal prior", above=0),
            *text_options(),
        ),
        held_out=HeldOut(inputs=held_out_inputs),
        parts=(Objective(elbo=elbo, evaluate=evaluate), TextGenerator(generate_text),
               Headline(Bound("language_model/bits_per_char/*/value", 0, "language_model/bits_ceiling", stated=True))),
        report=report,
        data_kind="text",
        description=description,
    )
