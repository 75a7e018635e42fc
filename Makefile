# IS-Messenger developer entry points. `make run` and `make test` work on a fresh
# Debian/Ubuntu machine: they install and start Postgres, Redis and RabbitMQ as needed.
CARGO ?= cargo
BUF   ?= npx --yes @bufbuild/buf@1.75.0
ISM   := target/debug/ism

.PHONY: run test lint bench infra infra-stats build migrate fmt lint-rust lint-proto lint-deploy

## infra: install (if missing) and start Postgres, Redis and RabbitMQ; create role and databases
infra:
	@scripts/dev-infra.sh

## infra-stats: `infra`, with pg_stat_statements loaded (one restart of Postgres, once per
##              machine): the write budgets in `make test` and the benchmarks count statements
infra-stats:
	@scripts/dev-infra.sh stats

## build: the ism binary (debug)
build:
	$(CARGO) build -p ism

## migrate: create and migrate every service's database
migrate: infra build
	$(ISM) migrate all

## run: serve the whole platform locally and print how to use it
run: infra build
	@scripts/run.sh

## test: unit, integration and end-to-end tests against real Postgres, Redis and RabbitMQ
# One feature resolution for the binary and the tests: building `-p ism` alone would
# resolve features differently and compile most dependencies twice.
# Four tests at a time on any machine: the end-to-end scenarios mostly wait on their
# platforms, so a 2-core machine runs four of them at once.
test: infra-stats
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast -- --test-threads 4

## lint: rustfmt, clippy -D warnings, buf lint and breaking changes, Helm chart and Kubernetes manifests
lint: lint-rust lint-proto lint-deploy

lint-rust:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The API may grow but not break: every commit is checked against its parent (a clone
# without history has nothing to compare with and says so).
lint-proto:
	$(BUF) lint
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
		$(BUF) breaking --against '.git#ref=HEAD~1' && echo "buf breaking: nothing broken since HEAD~1"; \
	else echo "buf breaking: no parent commit in this clone; skipped"; fi

lint-deploy:
	@scripts/lint-deploy.sh

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## bench: (with pg_stat_statements loaded, see scripts/dev-infra.sh stats) every benchmark (auth, flow, gateway, contacts, conversations, broadcasts, webhooks) beside this machine's
##        baselines; BENCH="flow contacts" runs only those named
bench: infra-stats
	@scripts/bench.sh $(BENCH)
