#!/usr/bin/env bash
# Benchmarks the first flow (signed webhook -> gateway -> RabbitMQ -> conversations)
# on a release build, beside this machine's raw RabbitMQ and Postgres rates, then the
# conversations store at scale (100,000 conversations, 5,000,000 messages) beside plain
# Postgres doing the same query shapes, and prints each figure next to its aim. Expects Postgres, Redis and RabbitMQ running (make bench
# starts them). Exits non-zero only when the bench itself fails, not on a missed aim.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

"$cargo" build --release -p ism -p ism-e2e --bin ism --bin bench
ISM_BIN="$target_dir/release/ism" "$target_dir/release/bench"
"$cargo" bench -p ism-conversations --bench scale
