#!/usr/bin/env bash
# The fault-injection soak at its long budget (issue 20, part 3): exactly once under a bad
# day. `cargo test --workspace` (infra/test.sh) runs the same two tests at their CI scale.
#   * starts moto (the soak's DynamoDB + SQS part runs against it),
#   * tests/tests/soak.rs: the dev server on ports wrapped by shared::faults (10 % of
#     table and queue operations fail, before or after the call, seeded), 16 senders that
#     redeliver every non-2xx: 10 000 Telegram webhooks, 2 000 sends with Idempotency-Keys
#     to a Bot API failing 30 % with 5xx/429, 500 leads × 3 targets failing 30 %, and
#     500 webhooks on moto; each part prints one `SOAK …` line and fails on any duplicate
#     or missing item,
#   * infra/devserver/tests/kill9.rs: the real binary killed with SIGKILL mid-storm and
#     restarted on the same DATA_DIR while 3 000 webhooks are redelivered.
#
#   ./infra/soak.sh                        # the long run (debug build, as cargo test)
#   SOAK_SCALE=ci ./infra/soak.sh          # the CI sizes
#   SOAK_SEED=7 SOAK_FAULT_RATE=0.2 ./infra/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_venv .venv infra/requirements-test.txt
start_moto .venv
export SOAK_SCALE=${SOAK_SCALE:-long}

echo "==> soak ($SOAK_SCALE): webhooks, sends, leads (embedded) and webhooks (moto)"
cargo test --locked -p e2e-tests --test soak -- --nocapture --test-threads 1 2>&1 |
  grep -E 'SOAK |^test result|panicked|FAILED|left:|right:'
echo "==> kill -9 mid-soak ($SOAK_SCALE)"
cargo test --locked -p devserver --test kill9 -- --nocapture 2>&1 |
  grep -E 'SOAK |^test result|panicked|FAILED|left:|right:'
