"""What families share, so that no family is another's library: mixture components, priors,
starts and relabelling (`mixtures`: gmm, hmm), the table transforms and checks of the
generators (`tabular`: vae, made), their networks (`networks`: vae, gan), the generators'
shared report pieces (`generative`: vae, made, gan), and the language models' parts (`lm`:
ngram, neural_lm, attention_lm). Not a family: `probgen models` lists no name starting with _."""
