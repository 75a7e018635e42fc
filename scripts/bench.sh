#!/usr/bin/env bash
# Benchmarks, on a release build, each printing its figures next to the aim and to this
# machine's baseline measured in the same run:
#  - auth: a token's first verification, the auth layer alone, and a unary gRPC call with
#    and without it;
#  - flow: the first flow (signed webhook -> gateway -> RabbitMQ -> conversations), beside
#    the raw RabbitMQ and Postgres rates;
#  - gateway: webhook acceptance across providers beside a bare HTTP handler, outbound to a
#    provider stand-in beside raw confirmed publishes, per-channel limits;
#  - contacts: the contacts service at 1,000,000 Contacts (filters, counts, streaming,
#    import, resolve) beside plain Postgres doing the same shapes;
#  - conversations: the conversations store at 100,000 conversations and 5,000,000
#    messages beside plain Postgres doing the same query shapes;
#  - broadcasts: 100,000 recipients unthrottled beside the gateway's own outbound rate on
#    the same channel, the whole broadcast's time and the broadcasts process's memory;
#  - webhooks: deliveries/s and event-to-receiver p99 beside a bare HTTP client posting the
#    same bodies, and one slow receiver's effect on another endpoint;
#  - workflows: runs/s and step p99 of message -> branch -> tag -> reply beside n8n (the
#    npm package, installed under target/peers on first use) running the same flow.
# `scripts/bench.sh` runs them all; `scripts/bench.sh flow contacts` runs those named.
# Expects Postgres, Redis and RabbitMQ running (make bench starts them). Exits non-zero only
# when a bench itself fails, not on a missed aim.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
selected=("${@:-all}")
wanted() { [[ " ${selected[*]} " == *" all "* || " ${selected[*]} " == *" $1 "* ]]; }

if wanted auth; then
    echo "==> Token verification"
    "$cargo" bench -p ism-platform --bench auth
fi

"$cargo" build --release -p ism -p ism-e2e --bin ism --bin bench --bin gateway_bench --bin bench_contacts --bin broadcasts_bench --bin webhooks_bench --bin workflows_bench
export ISM_BIN="$target_dir/release/ism"
if wanted flow; then
    echo "==> First flow"
    "$target_dir/release/bench"
fi
if wanted gateway; then
    echo "==> Gateway"
    "$target_dir/release/gateway_bench"
fi
if wanted contacts; then
    echo "==> Contacts at 1,000,000"
    "$target_dir/release/bench_contacts"
fi
if wanted conversations; then
    echo "==> Conversations at scale"
    "$cargo" bench -p ism-conversations --bench scale
fi
if wanted broadcasts; then
    echo "==> Broadcasts at 100,000 recipients"
    "$target_dir/release/broadcasts_bench"
fi
if wanted webhooks; then
    echo "==> Webhooks to a local receiver"
    "$target_dir/release/webhooks_bench"
fi
if wanted workflows; then
    echo "==> Workflow runs beside n8n"
    CARGO_TARGET_DIR="$target_dir" "$target_dir/release/workflows_bench"
fi
