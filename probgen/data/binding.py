"""Binding data to a plain NumPyro model by argument name, the way NumPyro users call models.

`def model(J, sigma, y=None)` with data `{"J": 8, "sigma": [...], "y": [...]}` is called as
`model(J=8, sigma=array, y=array)`. The rules:

- Each argument of the model takes the data entry of the same name; an argument with a default
  that the data lacks keeps its default; one without a default that the data lacks is an error
  that names it and lists what the data holds.
- Data entries the model does not take are ignored (as cmdstan does) and named once.
- Integers stay integers: a scalar becomes a Python int (so it can size a plate or an array),
  an integer array int32; other numbers become float32 (JAX's default precision).
- Which sites are observed is read from the model's trace (sample sites with `obs`), not from
  the arguments' names. Every argument is bound to the model; predictive draws un-condition
  the observed sites (`probgen.tracing.uncondition`), so `obs=y[K:]` works and a model
  never needs `y=None`.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from probgen.data import NamedData
from probgen.errors import DataError
from probgen.spec import ModelInputs, describe_function


def model_arguments(model: Callable) -> tuple[list[str], list[str]]:
    """(required, optional) argument names of `model` (no *args/**kwargs)."""
    required, optional = [], []
    for name, parameter in inspect.signature(model).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        (required if parameter.default is parameter.empty else optional).append(name)
    return required, optional


def as_model_value(name: str, value: Any, label: str):
    """A data value as the model receives it: Python int/float for scalars, JAX int32 or float32
    arrays otherwise; a `DataError` naming the key for text, ragged lists or non-finite numbers."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise DataError(f"'{name}' in {label} is {value}; probgen needs finite numbers")
        return float(value)
    try:
        array = np.asarray(value)
        if array.dtype == object:  # JSON null is a missing value: NaN in a float array
            array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        array = None
    if array is None or array.dtype == object:
        raise DataError(f"'{name}' in {label} is not a rectangular array of numbers (ragged nested lists or mixed "
                        "types)")
    if array.dtype.kind in "USO":
        first = array.reshape(-1)[0] if array.size else ""
        raise DataError(f"'{name}' in {label} is not numeric: value {first!r}")
    if array.dtype.kind == "b":
        return jnp.asarray(array)
    if array.dtype.kind in "iu":
        return int(array) if array.ndim == 0 else jnp.asarray(array, jnp.int32)
    if array.dtype.kind != "f":
        raise DataError(f"'{name}' in {label} has unsupported type {array.dtype}")
    infinite = np.isinf(array)
    if infinite.any():
        where = np.argwhere(infinite)[0].tolist()
        raise DataError(f"'{name}' in {label} has {int(infinite.sum())} infinite value(s) (first at index {where}); "
                        "probgen needs finite numbers (a missing value is NaN, an empty cell or JSON null)")
    # NaN (JSON null, an empty CSV cell) is a missing value: bound as NaN for the model to mask or
    # impute (obs_mask); `bind` checks that the model's log density stays finite with them
    if array.ndim == 0:
        return float(array)
    # JAX arrays, not NumPy's: a model may index them with traced values (y[t] inside a scan)
    return jnp.asarray(array, jnp.float32)


def bind(model: Callable, data: NamedData) -> ModelInputs:
    """The model's arguments from `data` by name (see the module's rules), all in `kwargs`."""
    required, optional = model_arguments(model)
    missing = [name for name in required if name not in data.values]
    if missing:
        held = ", ".join(sorted(data.values)) or "nothing"
        raise DataError(f"{describe_function(model)} needs argument{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(m) for m in missing)}, which {data.label} lacks (it holds: {held}); "
                        "add it to the data or give it with --set NAME=VALUE")
    taken = set(required) | set(optional)
    kwargs = {name: as_model_value(name, data.values[name], data.label) for name in (*required, *optional)
              if name in data.values}
    unused = tuple(sorted(name for name in data.values if name not in taken))
    inputs = ModelInputs(kwargs=kwargs, observed={}, unused=unused, missing=missing_values(kwargs))
    if inputs.missing:
        check_missing_values_are_handled(model, inputs, data.label)
    return inputs


def missing_values(kwargs) -> dict[str, dict]:
    """{argument: {"count": NaN entries, "first": the first one's index}} over the bound arrays."""
    found = {}
    for name, value in kwargs.items():
        if hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.floating):
            missing = np.isnan(np.asarray(value))
            if missing.any():
                found[name] = {"count": int(missing.sum()), "first": np.argwhere(missing)[0].tolist()}
    return found


def check_missing_values_are_handled(model: Callable, inputs: ModelInputs, label: str) -> None:
    """The model's log density and its gradient must be finite with the missing values bound
    as NaN (the model masks them, `obs_mask`, or imputes them); otherwise a `DataError` names
    the argument, the count and the first index, and shows the two lines that mask them."""
    import jax
    from numpyro.infer.util import initialize_model

    try:
        initialize_model(jax.random.PRNGKey(0), inputs.bound_model(model))
        return
    except RuntimeError:  # NumPyro found no point with a finite log density and gradient
        pass
    except Exception:  # the model fails on these data for another reason: the fit names it, file and line
        return
    name, where = next(iter(inputs.missing.items()))
    raise DataError(
        f"'{name}' in {label} has {where['count']} missing value(s) (first at index {where['first']}) and "
        f"{describe_function(model)} does not mask them: its log density is not finite. Observe '{name}' with "
        f"NumPyro's obs_mask, for example:\n    mask = ~jnp.isnan({name})\n"
        f"    numpyro.sample(\"{name}\", dist.Normal(mu, sigma), obs={name}, obs_mask=mask)")


def conditioned_spec(spec, data: NamedData):
    """A model bound by name, recast so that its observed sites are its call arguments: the
    shape simulation-based calibration (`probgen.checks.sbc`) refits, drawing each site's data from
    the prior predictive and conditioning on them (NumPyro's `condition`), whatever the model's
    arguments are called. A site passed as None is drawn (un-conditioned)."""
    from numpyro import handlers

    from probgen.tracing import model_structure, uncondition
    from probgen.spec import ModelSpec

    inputs = bind(spec.model, data)
    bound = inputs.bound_model(spec.model)
    observed = dict(model_structure(bound, {}).observed)

    def conditioned(**sites):
        given = {name: value for name, value in sites.items() if value is not None}
        drawn = tuple(name for name, value in sites.items() if value is None)
        return uncondition(handlers.condition(bound, data=given), drawn)()

    def prepare(frame, options) -> ModelInputs:
        return ModelInputs(kwargs={}, observed=observed)

    return ModelSpec(name=spec.name, model=conditioned, prepare=prepare, description=spec.description)
