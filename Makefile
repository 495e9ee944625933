# kvsim: the README's two commands are `make server` and `make test`.

CARGO ?= cargo
VENV  ?= .venv
PY    := $(VENV)/bin/python
# Extra flags for `make server`, e.g. SERVER_ARGS="--base-port 9100".
SERVER_ARGS ?=

.PHONY: build server test lint unit-test wire-test browser-test script-test readme-test demo demo-failover demo-dynamo run-consistency-test bench clean

build:
	$(CARGO) build --release

server: build
	./target/release/kvsim server $(SERVER_ARGS)

# Everything CI runs: formatting, lints, docs, Rust tests, the boto3 wire tests, the web
# console in headless Chromium, the scripts, and the README's own commands.
test: lint unit-test wire-test browser-test script-test readme-test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

unit-test:
	$(CARGO) test --all-targets

# A virtualenv with boto3, created on first use and refreshed when requirements change.
$(VENV)/.installed: tests/wire/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/wire/requirements.txt
	touch $@

wire-test: $(VENV)/.installed
	$(CARGO) build
	KVSIM_BIN=target/debug/kvsim $(PY) tests/wire/test_boto3.py
	KVSIM_MODE=dynamo KVSIM_BIN=target/debug/kvsim $(PY) tests/wire/test_boto3.py

# The web console in a real browser: Debian's chromium and chromium-driver (`.ci/run`
# installs them; elsewhere: apt-get install chromium chromium-driver).
browser-test: $(VENV)/.installed
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "browser-test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver" >&2; exit 1; }
	$(CARGO) build
	KVSIM_BIN=target/debug/kvsim $(PY) tests/wire/test_console.py

# The demo and the consistency test against a debug build (what CI runs).
script-test:
	$(CARGO) build
	KVSIM=target/debug/kvsim scripts/demo.sh
	KVSIM=target/debug/kvsim scripts/demo_failover.sh
	KVSIM=target/debug/kvsim ./test_eventual_consistency.sh
	KVSIM=target/debug/kvsim scripts/demo_dynamo.sh
	KVSIM=target/debug/kvsim ./test_eventual_consistency.sh --mode dynamo

# The README as a newcomer follows it: `make server`, then every command it shows, in order,
# with their output compared to what the README pastes (tests/readme_walk.py).
readme-test: $(VENV)/.installed
	$(PY) tests/readme_walk.py

# The seed's demo scenario against a fresh server, which it stops at the end.
demo: build
	KVSIM=target/release/kvsim scripts/demo.sh

# Crash the leader, watch a new one get elected, restart the old one and watch it catch up.
demo-failover: build
	KVSIM=target/release/kvsim scripts/demo_failover.sh

# The leaderless engine: partition, write both sides, heal and watch the merge; crash a node,
# write, restart it and watch its hints handed back.
demo-dynamo: build
	KVSIM=target/release/kvsim scripts/demo_dynamo.sh

# Delay a follower, write at the leader, read the follower (stale), heal, watch it converge.
run-consistency-test: build
	KVSIM=target/release/kvsim ./test_eventual_consistency.sh

# Throughput and latency against a running server (see README, "Benchmarks").
bench: build
	./target/release/kvsim bench $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(VENV)
