#!/usr/bin/env bash
# Every event in events/ through the functions' Lambda binaries, as Lambda runs them:
#   * installs cargo-lambda (PyPI) into .venv-lambda and moto into .venv,
#   * starts moto, creates the stack's table, queues and KMS key in it and seeds the tenant
#     the events name (infra/lambda-local),
#   * runs `cargo lambda watch` with BACKEND=aws and `cargo lambda invoke <fn> --data-file`
#     for each case of events/invoke.json, checking every answer.
# Called by infra/test.sh; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_venv .venv infra/requirements-test.txt
ensure_venv .venv-lambda infra/requirements-lambda.txt
export PATH="$PWD/.venv-lambda/bin:$PATH"
if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
  start_moto .venv
fi
# The functions as `cargo lambda watch` runs them (debug profile), built before the clock
# of the first invocation starts.
cargo build --locked --bins -p config-api -p webhook-receiver -p telegram-send \
  -p telegram-crm-send -p outbound-worker -p inbox-api -p auto-integration -p lead-delivery
cargo run --locked -p lambda-local
