#!/usr/bin/env bash
# Benchmarks the first flow (signed webhook -> gateway -> RabbitMQ -> conversations) and
# the contacts service at 1,000,000 Contacts on a release build, beside this machine's raw
# RabbitMQ and Postgres rates for the same shapes, and prints each figure next to its aim.
# Expects Postgres, Redis and RabbitMQ running (make bench starts them). Exits non-zero
# only when a bench itself fails, not on a missed aim.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

# `scripts/bench.sh flow` or `scripts/bench.sh contacts` runs one of the two benches.
what=${1:-all}
"$cargo" build --release -p ism -p ism-e2e --bin ism --bin bench --bin bench_contacts
export ISM_BIN="$target_dir/release/ism"
if [[ $what == all || $what == flow ]]; then
    "$target_dir/release/bench"
fi
# The contacts service at 1,000,000 Contacts (filters, counts, streaming, import, resolve).
if [[ $what == all || $what == contacts ]]; then
    "$target_dir/release/bench_contacts"
fi
