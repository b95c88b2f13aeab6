"""New data from a fitted model: the posterior predictive as a table (data augmentation).

Reads a run folder, draws parameter sets from its posterior and runs the model's simulator;
the result is in the data's original units and column names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from probgen.data import standardization_arrays
from probgen.errors import ModelError
from probgen.runfolder import load_run
from probgen.spec import load_spec


def posterior_parameters(idata) -> dict[str, np.ndarray]:
    """Posterior variables with (chain, draw) flattened into one leading axis."""
    posterior = idata.posterior
    return {
        name: values.values.reshape((-1,) + values.shape[2:])
        for name, values in posterior.data_vars.items()
    }


def posterior_predictive_table(run_dir, num_rows: int, seed: int = 0) -> pd.DataFrame:
    """`num_rows` new rows, each simulated from a posterior draw chosen at random."""
    idata, config = load_run(run_dir)
    spec = load_spec(config["model"]["reference"])
    if spec.amortized is not None and spec.amortized.generate is not None:  # a VAE: its decoder draws them
        values = np.asarray(spec.amortized.generate(idata, config, jax.random.PRNGKey(seed), num_rows))
    elif spec.simulate is None:
        raise ModelError(f"model '{spec.name}' has no simulator (ModelSpec.simulate), so it cannot draw new data")
    else:
        values = np.asarray(spec.simulate(jax.random.PRNGKey(seed), posterior_parameters(idata), num_rows))
    columns = config["data"]["columns"]
    observed = idata.observed_data[next(iter(idata.observed_data.data_vars))]
    if "feature" in observed.dims and observed.sizes["feature"] == values.shape[-1]:
        columns = [str(c) for c in observed["feature"].values]  # e.g. without an HMM's sequence column
    standardization = config["data"].get("standardization")
    if standardization:
        loc, scale = standardization_arrays(standardization, columns)
        values = values * scale + loc
    return pd.DataFrame(values, columns=columns)


def write_csv(table: pd.DataFrame, out) -> Path:
    """Write `table` to `out` through a temporary file and a rename: never half a file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.partial-", dir=out.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            table.to_csv(stream, index=False)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out
