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
from probgen.report.runfolder import load_run
from probgen.spec import load_spec


def posterior_parameters(idata) -> dict[str, np.ndarray]:
    """Posterior variables with (chain, draw) flattened into one leading axis."""
    posterior = idata.posterior
    return {
        name: values.values.reshape((-1,) + values.shape[2:])
        for name, values in posterior.data_vars.items()
    }


def predictive_rows(idata, rng_key, num_rows: int) -> tuple[np.ndarray, list[str]]:
    """`num_rows` rows of the stored posterior predictive draws of the first observed site,
    each from a posterior draw and a row chosen at random: new data from the model itself, for
    a family without a simulator of its own. Returns ((num_rows, D) values, column names)."""
    if "posterior_predictive" not in idata.groups() or "observed_data" not in idata.groups():
        raise ModelError("the run holds no posterior predictive draws to take new rows from, and the model has "
                         "no simulator (ModelSpec.simulate)")
    name = next(iter(idata.observed_data.data_vars))
    draws = idata.posterior_predictive[name]
    has_features = draws.dims[-1] == "feature"
    values = np.asarray(draws.values)
    values = values.reshape((values.shape[0] * values.shape[1], -1, values.shape[-1] if has_features else 1))
    if "feature" in draws.dims and has_features:
        columns = [str(c) for c in draws["feature"].values]
    else:
        columns = [name]
    generator = np.random.default_rng(np.asarray(jax.random.key_data(rng_key)).ravel().tolist())
    which_draw = generator.integers(values.shape[0], size=num_rows)
    which_row = generator.integers(values.shape[1], size=num_rows)
    return values[which_draw, which_row], columns


def continued_text(run_dir, prompt: str | None, num_symbols: int, temperature: float, seed: int = 0) -> str | None:
    """`prompt` continued by `num_symbols` characters drawn from a language model's run
    (`ModelSpec.generate_text`), or None when the run's model writes no text."""
    idata, config = load_run(run_dir)
    spec = load_spec(config["model"]["reference"])
    if spec.generate_text is None:
        return None
    return spec.generate_text(idata, config, jax.random.PRNGKey(seed), int(num_symbols), prompt=prompt or "",
                              temperature=float(temperature))


def posterior_predictive_table(run_dir, num_rows: int, seed: int = 0) -> pd.DataFrame:
    """`num_rows` new rows, each simulated from a posterior draw chosen at random: by the
    fitting method's own generator (a VAE's decoder), the family's simulator, or the stored
    posterior predictive draws."""
    from probgen.infer import methods

    idata, config = load_run(run_dir)
    spec = load_spec(config["model"]["reference"])
    key = jax.random.PRNGKey(seed)
    values = methods.for_config(config).new_rows(spec, idata, config, key, num_rows)
    columns = (config.get("data") or {}).get("columns")
    if values is None and spec.simulate is not None:
        values = spec.simulate(key, posterior_parameters(idata), num_rows)
    elif values is None and spec.predict is not None:
        raise ModelError(f"model '{spec.name}' models a target given inputs; `probgen predict RUN_DIR --data NEW` "
                         "draws it at new inputs")
    elif values is None:
        values, columns = predictive_rows(idata, key, num_rows)
    values = np.asarray(values)
    observed = idata.observed_data[next(iter(idata.observed_data.data_vars))]
    if "feature" in observed.dims and observed.sizes["feature"] == values.shape[-1]:
        columns = [str(c) for c in observed["feature"].values]  # e.g. without an HMM's sequence column
    standardization = (config.get("data") or {}).get("standardization")
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
