# probgen: `make run` and `make test` are all a fresh machine with Python 3.11 and make needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python analyses/faithful_gmm.py --out runs/faithful_gmm --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --durations=15 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS); status=$$?; [ $$status -eq 5 ] && exit 0 || exit $$status

bench: $(STAMP)
	$(BIN)/python benchmarks/gmm.py
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/hmm.py
	$(BIN)/python benchmarks/vae.py

clean:
	rm -rf $(VENV) runs .pytest_cache
