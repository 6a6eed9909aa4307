# Two entry points for a fresh machine: `make demo` and `make test`.
# Set-up makes .venv with the CPU build of torch 2.13.0 pinned in the same step as monai.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test corpus train-models benchmark app browser-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" "monai>=1.3" -e ".[corpus,app,bench,test]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/durr demo --out demo_output

test: setup browser-deps
	$(VENV)/bin/pytest -q

# Debian's chromium + chromium-driver for the end-to-end app test (root or sudo; skips if present).
browser-deps:
	bash scripts/install_browser.sh || echo "browser not installed: tests/test_app_browser.py will be skipped"

corpus: setup
	$(VENV)/bin/durr corpus build

train-models: corpus
	$(VENV)/bin/durr train all --family ct-lowdose --threads 2 --config models/ct-lowdose/train.yaml
	$(VENV)/bin/durr train all --family mr-rician --threads 2 --config models/mr-rician/train.yaml
	$(VENV)/bin/durr train all --family gaussian --threads 2 --config models/gaussian/train.yaml

benchmark: corpus
	$(VENV)/bin/durr benchmark --family ct-lowdose --out bench_results/ct-lowdose
	$(VENV)/bin/durr benchmark --family mr-rician --out bench_results/mr-rician

app: setup
	$(VENV)/bin/durr app

clean:
	rm -rf demo_output bench_results runs
