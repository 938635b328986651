# Every target sets itself up: a fresh clone needs nothing installed by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lock clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import resnet, torch, torchvision" 
	@touch $(STAMP)

setup: $(STAMP)

# The main job: train a ResNet-20 on the embedded digits (no download), evaluate it, keep checkpoint and curves.
demo: $(STAMP)
	$(BIN)/resnet train --data digits --out runs/demo --overwrite
	$(BIN)/resnet eval runs/demo --data digits

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

# Regenerate the full lock from the top-level pins in requirements.in.
lock:
	rm -rf /tmp/resnet-lock-venv && $(PYTHON) -m venv /tmp/resnet-lock-venv
	/tmp/resnet-lock-venv/bin/pip install --quiet -r requirements.in
	/tmp/resnet-lock-venv/bin/pip freeze > requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
