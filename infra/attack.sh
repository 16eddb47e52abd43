#!/usr/bin/env bash
# The attack suite over every route (infra/attack.py; what it sends and what counts as a
# breach is described there):
#   * builds (debug) and starts target/debug/devserver as infra/schemathesis.sh does — a
#     free loopback port, a fresh temp DATA_DIR, provider APIs and proxies pointed at a
#     closed port, ALLOW_PRIVATE_TARGETS=false (start_devserver in infra/lib.sh) — but with a
#     LOCAL_JWT_SECRET generated here, so the script mints HS256 tokens for any tenant and
#     role itself; RUST_LOG=debug (default), so the log the secrets scan reads is the most
#     talkative one,
#   * runs infra/attack.py (stdlib + PyYAML, from .venv-schemathesis): set-up of tenants
#     `acme` and `rival`, rival's credentials on acme's ids over every operation of
#     openapi.yaml, bad tokens and roles, API key scope/revocation/deleted tenant, a check
#     that acme is unchanged, then — with the server stopped — a search for every secret
#     used or received in the server's stdout/stderr and the files of DATA_DIR,
#   * prints one summary line per part and a total; exits 1 on any breach, suspect 2xx,
#     wrong refusal, 5xx, change of acme or secret hit.
# No secret, token or key is printed (the secret reaches the server and the script through
# their environment only). The server's log lands in target/attack/devserver.log.
#
# Knobs (environment):
#   ATTACK_GUESSES  ids guessed per real id, each way (one character changed, same shape);
#                   default 2 (the CI budget: about 4,800 requests, some 15 s after the
#                   build). A long budget (about 30,000 requests, a minute here):
#                     ATTACK_GUESSES=50 ATTACK_SEED=$RANDOM ./infra/attack.sh
#   ATTACK_VERBOSE  1: one line per request (status, error code, request, credential kind)
#   ATTACK_SEED     the seed of the guesses (default 20261123)
#   RUST_LOG        the dev server's log filter (default debug)
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

OUT=target/attack

ensure_venv .venv-schemathesis infra/requirements-schemathesis.txt
cargo build --locked -p devserver

mkdir -p "$OUT"
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
RUST_LOG=${RUST_LOG:-debug} start_devserver "$WORK" "$OUT/devserver.log" "$JWT_SECRET"
echo "==> dev server on $BASE (data in a fresh temp dir; log: $OUT/devserver.log)"

status=0
ATTACK_JWT_SECRET="$JWT_SECRET" .venv-schemathesis/bin/python infra/attack.py \
  --base "$BASE" --openapi openapi.yaml --data-dir "$WORK/data" --server-pid "$SERVER_PID" \
  --log "$WORK/stdout" --log "$OUT/devserver.log" || status=$?
unset JWT_SECRET
exit "$status"
