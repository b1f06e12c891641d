# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv when missing
# and are idempotent (the install step is skipped while pyproject.toml is unchanged).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,sentence]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depictqa demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest tests -m "not gpu" -p no:cacheprovider

clean:
	rm -rf $(VENV) demo_out runs
