"""The data set of the conjugate problem (`conjugate.py`), shared by the inference tests."""

import numpy as np
import pandas as pd
import pytest

from _seeds import seeded


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"x": np.random.default_rng(seeded(0)).normal(2.0, 1.0, size=50)})
