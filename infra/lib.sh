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
