#!/usr/bin/env bash
# The whole test suite, on a fresh machine:
#   * installs moto (local AWS emulator) and cfn-lint into the project-local .venv,
#   * starts moto on a free loopback port and stops it on exit,
#   * runs cargo fmt --check, clippy (-D warnings), every workspace test, cfn-lint.
# The AWS half of the conformance suite talks to moto through AWS_ENDPOINT_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=infra/requirements-test.txt
stamp="$venv/.installed-requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  echo "==> installing test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

mkdir -p target
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
echo "==> starting moto on 127.0.0.1:$port"
# Single-threaded, so conditional writes are serialized as in DynamoDB (see the script).
"$venv/bin/python" infra/moto_server.py 127.0.0.1 "$port" > target/moto.log 2>&1 &
moto_pid=$!
stop_moto() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
}
trap stop_moto EXIT
python3 - "$port" <<'PY'
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
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml
echo "==> all checks passed"
