# `make demo`: a full readiness run on the bundled example service.
# `make test`: lint, type checks and the test suite.
# Both set up everything they need on a fresh machine (virtualenv, pip and Debian packages).
# `make sanitize`: the load engine's tests against an ASan/UBSan build of the C extensions (not in `make test`).
# `make fuzz`: the C engine's response parser under libFuzzer for FUZZ_SECONDS (default 60; not in `make test`).

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
APT_GET := $(shell command -v apt-get 2>/dev/null)

.PHONY: demo demo-resilience test lint typecheck unit sanitize fuzz system-packages clean

$(STAMP): pyproject.toml setup.py examples/docservice/pyproject.toml $(wildcard src/gonogo/*/*/*.c src/gonogo/*/*.c)
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -e 'examples/docservice[test]'
	touch $(STAMP)

# From Debian: PostgreSQL (evidence-store tests against a real server, and the example's database
# behind the fault proxy); stress-ng (CPU, memory, disk and I/O stress faults); libfaketime (clock
# skew); iptables (packet loss and partitions inside a network namespace); chromium (report.html
# opened headless by Playwright in the tests; Playwright never downloads a browser of its own).
DEBIAN_PACKAGES := postgresql stress-ng faketime libfaketime iptables chromium
system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v stress-ng >/dev/null 2>&1 || missing="$$missing stress-ng"; \
	command -v faketime >/dev/null 2>&1 || missing="$$missing faketime libfaketime"; \
	command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing="$$missing iptables"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ -n "$(APT_GET)" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "missing Debian packages:$$missing, and apt-get is not available" >&2; exit 1; fi; \
	fi

demo: $(STAMP) system-packages
	cd examples/docservice && PATH="$(BIN):$$PATH" gonogo run gonogo.yaml

# The example on PostgreSQL behind the fault proxy, with a small disk (needs root).
demo-resilience: $(STAMP) system-packages
	cd examples/docservice && PATH="$(BIN):$$PATH" gonogo run resilience.yaml

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

# tests/cli mostly waits (services starting, experiment windows): two at a time, except those of
# the xdist group "cpu", which load the cores or judge timing. The rest judge timing too: alone.
unit: $(STAMP) system-packages
	PATH="$(BIN):$$PATH" $(BIN)/pytest -q -ra -n 2 --dist loadgroup tests/cli
	PATH="$(BIN):$$PATH" $(BIN)/pytest -q -ra --ignore=tests/cli

test: lint typecheck unit

# In a temporary copy with its own virtualenv (about 3 minutes); PYTEST_ARGS picks other tests.
sanitize:
	PYTHON=$(PYTHON) scripts/sanitize.sh $(PYTEST_ARGS)

# The C engine's response parser under libFuzzer, ASan and UBSan for FUZZ_SECONDS (clang, installed
# if missing; no virtualenv: the harness embeds $(PYTHON)). New inputs go to build/fuzz/corpus, crashes to build/fuzz/crashes (docs/testing.md).
FUZZ_SECONDS ?= 60
FUZZ_DIR ?= build/fuzz
fuzz:
	@command -v clang >/dev/null 2>&1 || { [ -n "$(APT_GET)" ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang; }
	$(PYTHON) tests/fuzz/fuzz_build.py libfuzzer $(FUZZ_DIR)
	mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(FUZZ_DIR)/parser_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_DIR)/crashes/ $(FUZZ_DIR)/corpus tests/fuzz/corpus

clean:
	rm -rf $(VENV) .gonogo examples/docservice/.gonogo
