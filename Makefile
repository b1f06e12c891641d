# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv when missing
# and are idempotent (the install step is skipped while pyproject.toml is unchanged).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install clean chromium

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,sentence,serve,official]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depictqa demo

# the browser test drives the OS's Chromium (Playwright's own browser download cannot be assumed)
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest tests -m "not gpu" -p no:cacheprovider

clean:
	rm -rf $(VENV) demo_out runs
