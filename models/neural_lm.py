"""Neural character language model (Bengio et al. 2003): embeddings of the last --context
characters, a tanh hidden layer, a softmax. A NumPyro model whose network is a Flax module
(`flax_module`: MAP) and whose softmax layer may be Bayesian (`--head bayesian`:
`random_flax_module`, mean-field SVI), trained by probgen's one minibatch trainer
(`probgen.infer.amortized`: early stopping on validation documents, checkpoints, --resume).
Shared code: `models/_common/lm/` (text, networks, scoring, report)."""

from probgen.models._common.lm.neural import spec

SPEC = spec("neural_lm", "bengio", context=16, block=64, hidden=256,
            description="neural character language model (Bengio MLP on the last --context characters), minibatch "
                        "SVI (--method svi); text corpora or .txt files")
