"""probgen: generative models as NumPyro programs; fit them, check them, report on them."""

import warnings

# ArviZ 0.23 announces its 1.x refactor with a FutureWarning at import; probgen pins arviz<1
# (pyproject.toml), so the notice asks nothing of a probgen user and is not shown to them
warnings.filterwarnings("ignore", message="\nArviZ is undergoing a major refactor", category=FutureWarning)

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
