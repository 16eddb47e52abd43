#!/usr/bin/env bash
# openapi.yaml against the running server, so the document cannot drift from it:
#   * installs schemathesis (PyPI, infra/requirements-schemathesis.txt) into
#     .venv-schemathesis,
#   * builds (debug) and starts target/debug/devserver on a free loopback port with a fresh
#     temp DATA_DIR and no LOCAL_JWT_SECRET, reads the dev token it prints (tenant `demo`,
#     role owner) and creates an API key with every scope (POST /v1/api-keys), so routes
#     that take `X-Api-Key` are exercised too; provider APIs point at a closed loopback port,
#   * runs `schemathesis run` over the document the server serves (/openapi.yaml) with every
#     check, a fixed seed and a bounded number of examples: first every operation but
#     DELETE /v1/tenant as the owner, then every operation as an `agent` (owner/admin-only
#     ones must answer their documented 403), then DELETE /v1/tenant,
#   * fails on any failure, except the check/operation pairs listed with a reason in
#     infra/schemathesis-exclusions.txt (turned into `[[operations]]` entries of the
#     schemathesis.toml it runs with).
# Called by infra/test.sh; runs on its own too. Neither the token nor the key is printed
# (schemathesis masks `Authorization` and `X-Api-Key` in its output and reports).
#
# Knobs (environment):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 25: the CI budget,
#                              about a minute of schemathesis on 2 cores)
#   SCHEMATHESIS_SEED          the random seed (default 20261123); the same seed, budget and
#                              document generate the same cases, so a CI failure reproduces
# Arguments are extra `schemathesis run` options; with any, there is one run only (as the
# owner, of what they select), e.g. ./infra/schemathesis.sh --include-name 'POST /v1/clients'
# A long budget, e.g. before a release or after a big change (time grows about linearly
# with the budget: 120 examples took some 2 minutes of schemathesis here, 25 under 1):
#   SCHEMATHESIS_MAX_EXAMPLES=500 SCHEMATHESIS_SEED=$RANDOM ./infra/schemathesis.sh
# JUnit reports and the dev server's log land in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
SEED=${SCHEMATHESIS_SEED:-20261123}
EXCLUSIONS=infra/schemathesis-exclusions.txt
OUT=target/schemathesis

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

echo "==> starting the dev server (data in a fresh temp dir; log: $OUT/devserver.log)"
# The server's own stdout goes to a file only this script reads (it carries the token).
# Provider APIs, and through the proxy variables any URL a fuzzed config names, point at a
# closed loopback port, and tenant-chosen URLs may not name private addresses (the SSRF
# guard as in AWS): nothing the fuzzer makes up leaves the machine (see start_devserver).
start_devserver "$WORK" "$OUT/devserver.log"
echo "    listening on $BASE"

# The token is the last word of "dev token (tenant `demo`): <token>".
TOKEN=
for _ in $(seq 1 300); do
  TOKEN=$(sed -n 's/^dev token (tenant `demo`): \(.*\)$/\1/p' "$WORK/stdout" 2>/dev/null | head -n 1)
  [[ -n "$TOKEN" ]] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the dev server exited before printing its dev token; see $OUT/devserver.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$TOKEN" ]]; then
  echo "no 'dev token (tenant \`demo\`): …' line from the dev server within 30 s; see $OUT/devserver.log" >&2
  exit 1
fi

# An API key with every scope, for the routes that take X-Api-Key (its value never printed).
API_KEY=$(TOKEN="$TOKEN" python3 - "$BASE" <<'PY'
import json, os, sys, urllib.request
request = urllib.request.Request(
    sys.argv[1] + "/v1/api-keys",
    data=json.dumps({"name": "schemathesis",
                     "scopes": ["config:read", "messages:send", "leads:write"]}).encode(),
    headers={"Authorization": "Bearer " + os.environ["TOKEN"],
             "Content-Type": "application/json"},
    method="POST")
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.load(response)["key"])
except Exception as e:
    sys.exit(f"creating the API key failed: {e}")
PY
)

# The exclusions, as schemathesis's own per-operation check settings (a schemathesis.toml).
CONFIG="$WORK/schemathesis.toml"
python3 - "$EXCLUSIONS" > "$CONFIG" <<'PY'
import json, sys
CHECKS = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance",
          "negative_data_rejection", "positive_data_acceptance", "missing_required_header",
          "unsupported_method", "allow_header_conformance", "use_after_free",
          "ensure_resource_availability", "ignored_auth", "object_level_authorization"}
# Schemathesis's defaults for the checks whose accepted statuses can be widened.
DEFAULT_STATUSES = {
    "positive_data_acceptance": ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"],
}
METHODS = {"GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "HEAD"}
print('[auth.openapi.dashboardJwt]\nbearer = "${SCHEMATHESIS_TOKEN}"')
print('[auth.openapi.apiKey]\napi_key = "${SCHEMATHESIS_API_KEY}"')
# Stateful sequences follow the document's own `links` only: inferred ones feed request-body
# values (a lead id list, an empty id) into paths and report the server's answers as failures.
print('[phases.stateful.inference]\nalgorithms = []')
# No crash cache in .schemathesis/: a run replays nothing from an earlier one.
print('[cache]\nenabled = false')
per_operation = {}
for number, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    parts = line.split(None, 3)
    check, _, statuses = parts[0].partition("+")
    if (len(parts) < 4 or check not in CHECKS or parts[1] not in METHODS
            or not parts[2].startswith("/") or (statuses and check not in DEFAULT_STATUSES)):
        sys.exit(f"{sys.argv[1]}:{number}: expected `CHECK[+STATUS,...] METHOD PATH REASON`, got {line!r}")
    settings = per_operation.setdefault(f"{parts[1]} {parts[2]}", [])
    if statuses:
        accepted = DEFAULT_STATUSES[check] + statuses.split(",")
        settings.append(f"checks.{check}.expected-statuses = {json.dumps(accepted)}  # {parts[3]}")
    else:
        settings.append(f"checks.{check}.enabled = false  # {parts[3]}")
for name, settings in per_operation.items():
    print(f"\n[[operations]]\ninclude-name = {json.dumps(name)}")
    print("\n".join(settings))
PY

export SCHEMATHESIS_TOKEN="$TOKEN" SCHEMATHESIS_API_KEY="$API_KEY"
unset TOKEN API_KEY
st() {
  .venv-schemathesis/bin/schemathesis --config-file "$CONFIG" run "$BASE/openapi.yaml" \
    --url "$BASE" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --workers 2 \
    --request-timeout 20 \
    --no-color \
    --report junit \
    "$@"
}
echo "==> schemathesis $(.venv-schemathesis/bin/schemathesis --version | awk '{print $NF}') over $BASE/openapi.yaml ($MAX_EXAMPLES examples per operation and phase, seed $SEED)"
status=0
if [[ $# -gt 0 ]]; then
  st --report-junit-path "$OUT/junit.xml" "$@" || status=$?
else
  # DELETE /v1/tenant wipes the tenant, the API key included, so it runs last, on its own.
  st --report-junit-path "$OUT/junit.xml" --exclude-operation-id deleteTenant || status=$?
  # The same tenant as an `agent`: every owner/admin-only operation must answer its
  # documented 403 ROLE_REQUIRED (a token signed with the server's generated dev secret).
  AGENT_TOKEN=$(python3 - "$WORK/data/dev-jwt-secret" <<'PY'
import base64, hashlib, hmac, json, os, sys
b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
header, payload, _ = os.environ["SCHEMATHESIS_TOKEN"].split(".")
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
claims.update(role="agent", sub="schemathesis-agent")
signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
secret = open(sys.argv[1], "rb").read().strip()
print(f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}")
PY
)
  # A token the server refused would turn the pass into 401s, which are documented too.
  AGENT_TOKEN="$AGENT_TOKEN" python3 - "$BASE" <<'PY'
import json, os, sys, urllib.error, urllib.request
def status(path):
    request = urllib.request.Request(sys.argv[1] + path,
                                     headers={"Authorization": "Bearer " + os.environ["AGENT_TOKEN"]})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as e:
        return e.code, json.load(e).get("error", {}).get("code")
got = (status("/v1/profile"), status("/v1/api-keys"))
if got != ((200, None), (403, "ROLE_REQUIRED")):
    sys.exit(f"the agent token does not work as an agent (GET /v1/profile, GET /v1/api-keys: {got})")
PY
  echo "==> schemathesis as an agent (fuzzing, 5 examples per operation)"
  SCHEMATHESIS_TOKEN="$AGENT_TOKEN" st --report-junit-path "$OUT/junit-agent.xml" \
    --phases fuzzing --max-examples 5 || status=$?
  unset AGENT_TOKEN
  echo "==> schemathesis: DELETE /v1/tenant (last: it deletes everything the run made)"
  st --report-junit-path "$OUT/junit-delete-tenant.xml" --include-operation-id deleteTenant \
    --phases examples,coverage,fuzzing || status=$?
fi
if [[ $status -ne 0 ]]; then
  echo "schemathesis found failures. Fix openapi.yaml (or the server); a failure that is accepted" >&2
  echo "goes into $EXCLUSIONS with its reason." >&2
fi
exit "$status"
