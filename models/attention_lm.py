"""Small attention language model: a causal transformer over characters (--layers pre-norm
blocks of --heads-head self-attention, width --hidden, each prediction seeing up to --context
characters of its own document), a softmax head that may be Bayesian (`--head bayesian`).
Trained by probgen's one minibatch trainer (`probgen.infer.amortized`), as the neural LM and
the VAE are. Shared code: `models/_common/lm/`."""

from probgen.models._common.lm.neural import spec

SPEC = spec("attention_lm", "attention", context=128, block=128, hidden=128,
            description="small attention language model (causal transformer over characters), minibatch SVI "
                        "(--method svi); text corpora or .txt files")
