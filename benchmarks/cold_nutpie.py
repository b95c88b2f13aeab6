"""nutpie as a user starts it: a fresh Python process that imports PyMC and nutpie, builds the
PyMC model, compiles it (numba) and samples 4 chains x (1000 + 1000). `benchmarks/samplers.py
--command-only` times this process from start to exit, beside the whole `probgen fit` command.

    python benchmarks/cold_nutpie.py BUILDER ARGS.pickle

BUILDER is a function of benchmarks/pymc_ports.py; ARGS.pickle holds its arguments (NumPy
arrays and plain values, so that unpickling imports neither JAX nor probgen)."""

import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(builder: str, arguments: str, target_accept: float) -> None:
    import nutpie
    import pymc_ports

    model = getattr(pymc_ports, builder)(*pickle.loads(Path(arguments).read_bytes()))
    compiled = nutpie.compile_pymc_model(model)
    nutpie.sample(compiled, chains=4, tune=1000, draws=1000, seed=1, progress_bar=False, target_accept=target_accept)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.8)
