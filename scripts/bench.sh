#!/usr/bin/env bash
# Benchmarks the first flow (signed webhook -> gateway -> RabbitMQ -> conversations)
# and the gateway alone (webhook acceptance across providers, outbound to a provider
# stand-in, per-channel rate limits) on a release build, beside this machine's raw
# rates, and prints each figure next to its aim. Expects Postgres, Redis and RabbitMQ
# running (make bench starts them). Exits non-zero only when a bench itself fails, not
# on a missed aim.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

"$cargo" build --release -p ism -p ism-e2e --bin ism --bin bench --bin gateway_bench
export ISM_BIN="$target_dir/release/ism"
"$target_dir/release/bench"
"$target_dir/release/gateway_bench"
