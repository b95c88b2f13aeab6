# probgen: `make run` and `make test` are all a fresh machine with Python 3.11 and make needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers: most test time is single-threaded XLA compilation, so two processes
# nearly halve the suite on 2 cores (15:47 -> 11:09 measured); a whole file (or test class) goes
# to one worker so that module fixtures (a fitted run) are built once, and the README's command
# blocks (tests/test_readme.py, two classes) run on both. `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope)

.PHONY: run test test-wheel test-install test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python analyses/faithful_gmm.py --out runs/faithful_gmm --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not install and not wheel" --durations=15 $(XDIST) $(PYTEST_ARGS)

# the wheel installed in a fresh venv outside the checkout (tests marked `wheel`): every module in
# it, every family listed, and every family's tiny fit, report and sample/predict run by that
# venv's `probgen` (about 4 minutes on 2 cores; .ci/run runs it after `make test`)
test-wheel: $(STAMP)
	$(BIN)/python -m pytest -m "wheel and not slow" --durations=5 $(XDIST) $(PYTEST_ARGS)

# every shell command of README.md, run from the wheel installed in a fresh venv outside the
# checkout (tests marked `install`; about 10 minutes on 2 cores, so not part of `make test`)
test-install: $(STAMP)
	$(BIN)/python -m pytest -m install --durations=10 $(XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not install and not wheel" $(XDIST) $(PYTEST_ARGS); status=$$?; [ $$status -eq 5 ] && exit 0 || exit $$status

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/samplers.py
	$(BIN)/python benchmarks/gmm.py
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/hmm.py
	$(BIN)/python benchmarks/vae.py
	$(BIN)/python benchmarks/bnn.py
	$(BIN)/python benchmarks/pmf.py

clean:
	rm -rf $(VENV) runs .pytest_cache
