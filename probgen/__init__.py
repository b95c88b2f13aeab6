"""probgen: generative models as NumPyro programs; fit them, check them, report on them."""

from probgen.errors import DataError, InferenceError, ModelError, ProbgenError, RunFolderError
from probgen.spec import ModelInputs, ModelSpec, Option, load_spec

__version__ = "0.1.0"


def fit(*args, **kwargs):
    """See `probgen.infer.fit` (imported lazily so that `import probgen` stays light)."""
    from probgen.infer import fit as _fit

    return _fit(*args, **kwargs)


__all__ = [
    "fit", "ModelSpec", "ModelInputs", "Option", "load_spec",
    "ProbgenError", "DataError", "ModelError", "InferenceError", "RunFolderError",
]
