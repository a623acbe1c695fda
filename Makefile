# Set-up is two commands: `make demo` and `make test`. Each creates .venv if missing and
# installs what it needs (torch pinned by constraints.txt to the CPU build).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint typecheck pytest bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[privacy]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[dev,bench,privacy]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/sparring demo

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	SPARRING_PROGRESS=0 $(VENV)/bin/pytest -n 2 --dist loadfile   # two workers, one file each at a time

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/evasion_pgd.py --threads 1
	$(PY) benchmarks/evasion_square.py --threads 1 --n 200
	$(PY) benchmarks/evasion_hsj.py --threads 1 --n 50
	$(PY) benchmarks/evasion_autoattack.py --threads 1 --n 30
	$(PY) benchmarks/evasion_transfer.py --threads 1
	$(PY) benchmarks/poisoning_detection.py --threads 1
	$(PY) benchmarks/backdoor_attacks.py --threads 1 --dataset mnist5k
	$(PY) benchmarks/backdoor_inference.py --threads 1 --n 500
	$(PY) benchmarks/model_inspection.py --threads 1
	$(PY) benchmarks/backdoor_training.py --threads 1
	$(PY) benchmarks/poisoning_gradient.py --threads 1
	$(PY) benchmarks/poisoning_clean_label.py --threads 1
	$(PY) benchmarks/federated.py --threads 1
	$(PY) benchmarks/sponge.py
	$(PY) benchmarks/privacy_membership.py --threads 1
	$(PY) benchmarks/privacy_references.py --threads 1 --dataset digits --test-fraction 0.5
	$(PY) benchmarks/privacy_references.py --threads 1 --dataset mnist5k --epochs 3
	$(PY) benchmarks/privacy_dp.py --threads 1
	$(PY) benchmarks/privacy_extraction.py --threads 1
	$(PY) benchmarks/privacy_inversion.py --threads 1 --deep
	$(PY) benchmarks/privacy_watermark.py --threads 1
	$(PY) benchmarks/privacy_attribute.py --threads 1
	$(PY) benchmarks/privacy_property.py --threads 1
	$(PY) benchmarks/gateway.py

clean:
	rm -rf $(VENV) sparring-report .pytest_cache .mypy_cache .ruff_cache
