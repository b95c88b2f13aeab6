"""Package discovery from the tree, so that no module can be left out of the wheel.

`probgen/` is installed as `probgen` and the top-level `models/` (one module or package per model
family) as `probgen.models`, so `import probgen.models.gmm` works after a plain `pip install .`
as well as an editable install. pyproject.toml's `[tool.setuptools]` cannot map a folder to a
package under another name *and* discover its subpackages, hence these few lines; every other
setting is in pyproject.toml. `tests/test_packaging.py` checks that the wheel holds every module
of the tree.
"""

from setuptools import find_packages, setup

# the HTML report's Jinja2 templates: a folder of data, which setuptools sees as an importable
# (namespace) package and warned about ("absent from the packages configuration") unless listed
TEMPLATES = "probgen.report.templates"
PACKAGES = (["probgen", *(f"probgen.{name}" for name in find_packages("probgen")), TEMPLATES]
            + ["probgen.models", *(f"probgen.models.{name}" for name in find_packages("models"))])

setup(packages=PACKAGES, package_dir={"probgen": "probgen", "probgen.models": "models"},
      package_data={TEMPLATES: ["*.j2"]})
