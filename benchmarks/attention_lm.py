"""Attention LM training throughput: probgen's minibatch trainer (`probgen.infer.amortized.train`:
NumPyro SVI over the model with `flax_module`, compiled chunks of `eval_every` steps, a
validation score after each) against a hand-written Flax + optax loop compiled the same way
(the same network, loss, Adam, minibatches drawn the same way, `jax.lax.scan` over the same
chunks, no validation). Both train on the same rows of tweets for the same number of steps
after one warm-up chunk (compilation) each. Prints one JSON line: predicted tokens per second
of each and the ratio probgen / hand-written (the issue asks for at least 0.95).

    python benchmarks/attention_lm.py [--steps 400] [--chunk 100] [--batch-size 32] [--documents 3000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    from probgen.infer import amortized
    from probgen.models._common.lm import networks
    from probgen.models._common.lm.neural import architecture_from, elbo
    from probgen.models._common.lm.text import PAD, Vocabulary, rows
    from probgen.data.text import load_text
    from _timing import device

    documents = load_text("trump_tweets").frame["text"].tolist()[:args.documents]
    vocabulary = Vocabulary.from_documents(documents, 3)
    options = {"architecture": "attention", "context": args.context, "block": args.context, "embedding": 32,
               "hidden": 128, "heads": 4, "layers": 3}
    architecture = architecture_from(options, vocabulary.size)
    x, _ = rows(documents, vocabulary, architecture.context, architecture.block)
    validation = x[:64]
    x = jnp.asarray(x)
    count, batch = x.shape[0], args.batch_size

    # ---- probgen: the minibatch trainer ---------------------------------------------------
    def model_kwargs(num_points, batch_size=None, kl_weight=1.0):
        return {"architecture": architecture, "bayesian_head": False, "prior_scale": 1.0, "num_points": num_points,
                "batch_size": batch_size, "kl_weight": kl_weight}

    def evaluate(params, rows_, key):
        return elbo(params, rows_, {"architecture": architecture, "bayesian_head": False}, key)

    settings = {"steps": args.chunk, "batch_size": batch, "eval_every": args.chunk, "patience": 10 ** 6,
                "learning_rate": 1e-3}

    def probgen_run(steps):
        return amortized.train(networks.lm_model, networks.lm_guide, model_kwargs, x, validation,
                               {**settings, "steps": steps}, jax.random.PRNGKey(0), evaluate, progress=False)

    # ---- hand-written Flax + optax ------------------------------------------------------------
    network, head = architecture.network(), nn.Dense(vocabulary.size)

    def initial(key):
        k1, k2 = jax.random.split(key)
        return {"network": network.init(k1, x[:1])["params"],
                "head": head.init(k2, jnp.zeros((1, architecture.hidden)))["params"]}

    optimiser = optax.adam(1e-3)

    def loss(params, rows_):
        features = network.apply({"params": params["network"]}, rows_)
        logits = head.apply({"params": params["head"]}, features).at[..., PAD].set(-1e9)
        targets = rows_[:, architecture.context:]
        log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
        return -jnp.sum(jnp.where(targets != PAD, log_p, 0.0)) * count / batch

    @jax.jit
    def chunk(params, state, key):
        def body(carry, key):
            params, state = carry
            picked = jax.random.choice(key, count, (batch,), replace=False)
            value, grads = jax.value_and_grad(loss)(params, x[picked])
            updates, state = optimiser.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value

        return jax.lax.scan(body, (params, state), jax.random.split(key, args.chunk))

    def hand_run(steps):
        params = initial(jax.random.PRNGKey(0))
        state = optimiser.init(params)
        key = jax.random.PRNGKey(1)
        for _ in range(steps // args.chunk):
            key, sub = jax.random.split(key)
            (params, state), values = chunk(params, state, sub)
        jax.block_until_ready(values)

    # probgen's trainer compiles its chunk on every call (each call is a new run), so each side's
    # speed is taken from the difference of a long and a short run: steps / (T(steps + chunk) - T(chunk))
    tokens_per_step = batch * architecture.block
    speed = {}
    for name, runner in (("probgen", probgen_run), ("hand_written", hand_run)):
        runner(args.chunk)  # compile (and warm the caches) once
        short, long = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            runner(args.chunk)
            short.append(time.perf_counter() - started)
            started = time.perf_counter()
            runner(args.steps + args.chunk)
            long.append(time.perf_counter() - started)
        speed[name] = args.steps * tokens_per_step / (float(np.median(long)) - float(np.median(short)))
    probgen_speed, hand_speed = speed["probgen"], speed["hand_written"]
    print(json.dumps({"benchmark": "attention_lm_training", "device": device(), "steps": args.steps,
                      "batch_size": batch, "context": args.context, "rows": int(count),
                      "probgen_tokens_per_s": probgen_speed, "hand_written_tokens_per_s": hand_speed,
                      "ratio": probgen_speed / hand_speed}))


if __name__ == "__main__":
    main()
