#!/usr/bin/env bash
# Benchmarks, on a release build, each printing its figures next to the aim and to this
# machine's baseline measured in the same run:
#  - token verification: a token's first verification, the auth layer alone, and a unary
#    gRPC call with and without it;
#  - the first flow (signed webhook -> gateway -> RabbitMQ -> conversations), beside the
#    raw RabbitMQ and Postgres rates;
#  - the gateway alone: webhook acceptance across providers beside a bare HTTP handler,
#    outbound to a provider stand-in beside raw confirmed publishes, per-channel limits;
#  - the conversations store at scale (100,000 conversations, 5,000,000 messages), beside
#    plain Postgres doing the same query shapes.
# Expects Postgres, Redis and RabbitMQ running (make bench starts them). Exits non-zero only
# when a bench itself fails, not on a missed aim.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

echo "==> Token verification (cargo bench -p ism-platform --bench auth)"
"$cargo" bench -p ism-platform --bench auth

"$cargo" build --release -p ism -p ism-e2e --bin ism --bin bench --bin gateway_bench
export ISM_BIN="$target_dir/release/ism"
echo "==> First flow"
"$target_dir/release/bench"
echo "==> Gateway"
"$target_dir/release/gateway_bench"

echo "==> Conversations at scale (cargo bench -p ism-conversations --bench scale)"
"$cargo" bench -p ism-conversations --bench scale
