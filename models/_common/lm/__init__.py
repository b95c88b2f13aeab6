"""What probgen's language models share (`ngram`, `neural_lm`, `attention_lm`): the character
vocabulary and the encoding of documents, n-gram counting, the Flax networks, scoring in bits
per character, sampling and the report. Private: the families are the public modules."""
