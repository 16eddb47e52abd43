# Helpers sourced by the infra scripts (bash). Everything they install goes into
# project-local virtualenvs, so a fresh machine needs only Rust and Python 3.

# ensure_venv DIR REQUIREMENTS: creates DIR and installs REQUIREMENTS into it, once per
# change of the requirements file.
ensure_venv() {
  local venv=$1 requirements=$2
  local stamp="$venv/.installed-requirements"
  if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    echo "==> installing $(grep -cv '^\s*#' "$requirements") tool(s) from $requirements into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
  fi
}

# start_moto VENV: starts the local AWS emulator on a free loopback port, stops it when the
# calling script exits, and points the AWS SDKs at it (AWS_ENDPOINT_URL, static test keys).
start_moto() {
  local venv=$1
  mkdir -p target
  MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  echo "==> starting moto on 127.0.0.1:$MOTO_PORT"
  # Single-threaded, so conditional writes are serialized as in DynamoDB (see the script).
  "$venv/bin/python" infra/moto_server.py 127.0.0.1 "$MOTO_PORT" > target/moto.log 2>&1 &
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true' EXIT
  python3 - "$MOTO_PORT" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(150):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto did not start; see target/moto.log")
PY
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
}

# start_devserver WORK LOG [JWT_SECRET]: starts target/debug/devserver (built by the caller)
# on a free loopback port with a fresh DATA_DIR=WORK/data, its stdout in WORK/stdout (only
# the caller reads it: it may carry the dev token) and its stderr in LOG, and waits until it
# listens. Provider APIs, and through the proxy variables any URL a config names, point at
# a closed loopback port, and tenant-chosen URLs may not name private addresses (the SSRF
# guard as in AWS): nothing leaves the machine. Sets PORT, BASE and SERVER_PID (the caller
# stops it). Without JWT_SECRET, LOCAL_JWT_SECRET is unset (the server generates a secret
# and prints a dev token); with it, it is the server's LOCAL_JWT_SECRET, passed through the
# environment (a function argument is on no command line). RUST_LOG defaults to warn.
start_devserver() {
  local work=$1 log=$2 secret=${3:-} nowhere=http://127.0.0.1:9
  local keep_secret=(-u LOCAL_JWT_SECRET)
  [[ -n "$secret" ]] && keep_secret=()
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  BASE="http://127.0.0.1:$PORT"
  LOCAL_JWT_SECRET="$secret" env "${keep_secret[@]}" \
    -u BACKEND -u JWT_ISSUER -u JWT_AUDIENCE -u PUBLIC_BASE_URL -u NO_PROXY -u no_proxy \
    HTTP_PROXY=$nowhere HTTPS_PROXY=$nowhere ALL_PROXY=$nowhere \
    ALLOW_PRIVATE_TARGETS=false \
    PORT="$PORT" DATA_DIR="$work/data" RUST_LOG="${RUST_LOG:-warn}" \
    TELEGRAM_API_BASE=$nowhere WAPPI_API_BASE=$nowhere MAX_API_BASE=$nowhere \
    WHATSAPP_API_BASE=$nowhere VIBER_API_BASE=$nowhere VK_API_BASE=$nowhere \
    AMOCRM_API_BASE=$nowhere SMTP_HOST=127.0.0.1 SMTP_PORT=9 \
    target/debug/devserver > "$work/stdout" 2> "$log" &
  SERVER_PID=$!
  local _
  for _ in $(seq 1 300); do
    grep -q '^devserver listening on ' "$work/stdout" 2>/dev/null && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "the dev server exited before it listened; see $log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "the dev server did not listen within 30 s; see $log" >&2
  return 1
}
