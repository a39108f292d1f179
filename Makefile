# Every target sets itself up: a fresh machine needs only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The official client pins boto3/Pillow ranges that clash with moto and ours,
# so each version the conformance tests drive lives in a virtualenv of its
# own, run as a subprocess: the current release and the 0.18 line.
NUCLEUS_VENV := .venv-nucleus
NUCLEUS_CLIENT := scale-nucleus==0.22.3
NUCLEUS_018_VENV := .venv-nucleus-0.18
NUCLEUS_018_CLIENT := scale-nucleus==0.18.4
NUCLEUS_ENV = SEGCLI_NUCLEUS_PYTHON=$(abspath $(NUCLEUS_VENV))/bin/python \
	SEGCLI_NUCLEUS_018_PYTHON=$(abspath $(NUCLEUS_018_VENV))/bin/python

.PHONY: all venv nucleus-venv lint types test demo bench soak clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	touch $@

$(NUCLEUS_VENV)/bin/.installed: Makefile
	$(PYTHON) -m venv $(NUCLEUS_VENV)
	$(NUCLEUS_VENV)/bin/python -m pip install --quiet '$(NUCLEUS_CLIENT)'
	touch $@

$(NUCLEUS_018_VENV)/bin/.installed: Makefile
	$(PYTHON) -m venv $(NUCLEUS_018_VENV)
	$(NUCLEUS_018_VENV)/bin/python -m pip install --quiet '$(NUCLEUS_018_CLIENT)'
	touch $@

venv: $(BIN)/.installed

nucleus-venv: $(NUCLEUS_VENV)/bin/.installed $(NUCLEUS_018_VENV)/bin/.installed

lint: venv
	$(BIN)/ruff check segcli tests scripts
	$(BIN)/ruff format --check segcli tests scripts

types: venv
	$(BIN)/mypy

# The browser tests (tests/integration/test_report_browser.py) drive Debian's
# chromium and chromedriver: run when both are installed, left out with a plain
# line saying so when not; BROWSER_TESTS=required (CI) makes their absence fail.
BROWSER_MISSING = $(shell for p in chromium chromedriver; do command -v $$p >/dev/null || printf '%s ' $$p; done)

test: venv nucleus-venv lint types
ifeq ($(strip $(BROWSER_MISSING)),)
	$(NUCLEUS_ENV) $(BIN)/pytest -q
else ifeq ($(BROWSER_TESTS),required)
	@echo "browser tests cannot run: not installed: $(strip $(BROWSER_MISSING)) (apt-get install chromium chromium-driver)" >&2
	@exit 1
else
	@echo "browser tests did not run: not installed: $(strip $(BROWSER_MISSING)) (apt-get install chromium chromium-driver)"
	$(NUCLEUS_ENV) $(BIN)/pytest -q -m 'not soak and not browser'
endif

# The long versions of the reliability tests (faults, kills, outages): ~10 min.
soak: venv nucleus-venv
	$(NUCLEUS_ENV) $(BIN)/pytest -q -m soak

demo: venv
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) $(NUCLEUS_VENV) $(NUCLEUS_018_VENV) .mypy_cache .ruff_cache .pytest_cache .demo

bench: venv nucleus-venv
	$(NUCLEUS_ENV) $(BIN)/python scripts/bench.py
