# The README's contract: `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo demo-update test bench setup clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

setup: $(STAMP)

# System packages the tests need (root installs them; see the script).
$(VENV)/.system: tests/setup/system.sh | $(BIN)/python
	bash tests/setup/system.sh && touch $@

# Two workers, a test file each at a time: most tests wait on real time (ptys, timers), so two
# run side by side in about the time of one; a file's tests share its fixtures.
test: $(STAMP) $(VENV)/.system
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

bench: $(STAMP) $(VENV)/.system
	$(BIN)/python -m bench

demo: $(STAMP)
	$(BIN)/python -m sim.demo

# With `make demo` running: a package of the tree, one version up, through the demo's /BIN.
demo-update: $(STAMP)
	$(BIN)/python -m sim.demo_update

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
