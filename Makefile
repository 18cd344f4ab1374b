# make train: set up .venv and train with conf/base.yaml (MNIST, 2fc-1200 BBB).
# make test:  set up .venv and run the test suite on the shipped fixtures.
# DATA_DIR:   a folder with mnist/ (and fashion-mnist/, notmnist/) holding MNIST-format files;
#             they are copied into Paddle's cache, where the loaders look by default.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(wildcard ../shared/data)
CONFIG ?= conf/base.yaml
ARGS ?=
PADDLE_CACHE := $(HOME)/.cache/paddle/dataset

.PHONY: train test data bench fixtures test-paddle26 clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

data:
ifneq ($(strip $(DATA_DIR)),)
	@for set in mnist fashion-mnist notmnist; do \
	  if [ -d "$(DATA_DIR)/$$set" ]; then \
	    mkdir -p "$(PADDLE_CACHE)/$$set"; \
	    for f in "$(DATA_DIR)/$$set"/*-ubyte.gz; do \
	      cmp -s "$$f" "$(PADDLE_CACHE)/$$set/$$(basename $$f)" || cp "$$f" "$(PADDLE_CACHE)/$$set/"; \
	    done; \
	  fi; \
	done
	@echo "data: $(DATA_DIR) -> $(PADDLE_CACHE)"
endif

train: $(VENV)/.installed data
	$(PY) main.py --config $(CONFIG) --mode train $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) bench/speed.py

fixtures: $(VENV)/.installed
	$(PY) tools/make_fixtures.py

# The same suite on Paddle 2.6.2, the version paddlepaddle-gpu installs.
test-paddle26:
	$(PYTHON) -m venv .venv26
	.venv26/bin/python -m pip install --quiet --upgrade pip
	.venv26/bin/python -m pip install --quiet paddlepaddle==2.6.2 $$(grep -v -e '^#' -e '^paddlepaddle' requirements.txt)
	.venv26/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) .venv26 .pytest_cache
