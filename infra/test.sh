#!/usr/bin/env bash
# The whole test suite, on a fresh machine:
#   * installs moto (local AWS emulator) and cfn-lint into .venv, cargo-lambda into
#     .venv-lambda (project-local virtualenvs, from PyPI),
#   * starts moto on a free loopback port and stops it on exit,
#   * runs cargo fmt --check, clippy (-D warnings), every workspace test, schemathesis over
#     openapi.yaml against the dev server (infra/schemathesis.sh, .venv-schemathesis), the
#     attack suite over every route (infra/attack.sh), every fuzz target for 5 s
#     (infra/fuzz.sh: cargo-afl and AFL++ into .tools/), cfn-lint,
#     every event in events/ through the functions' Lambda binaries under
#     `cargo lambda watch` (infra/lambda-events.sh), and `sam validate --lint` + `sam build`
#     of every function for Lambda arm64 (infra/build.sh; AWS SAM CLI into .venv-sam).
# The AWS half of the conformance suite talks to moto through AWS_ENDPOINT_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_venv .venv infra/requirements-test.txt
start_moto .venv

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> the Lambda functions do not link the embedded backend (redb, aes-gcm)"
for function in functions/*/; do
  name=$(basename "$function")
  if cargo tree -p "$name" -e normal --prefix none --locked | grep -qE '^(redb|aes-gcm) '; then
    echo "$name links the embedded backend: the \`embedded\` feature of shared must stay off in functions" >&2
    exit 1
  fi
done
echo "==> cargo test"
cargo test --workspace --locked
echo "==> schemathesis over openapi.yaml"
./infra/schemathesis.sh
echo "==> attack suite over every route (cross-tenant, tokens, API keys, secrets)"
./infra/attack.sh
echo "==> fuzzing every parser and the HTTP edge, 5 s a target (infra/fuzz.sh, AFL++)"
FUZZ_SECONDS=5 FUZZ_PROFILE=ci ./infra/fuzz.sh
echo "==> cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml
echo "==> events through the Lambda binaries (cargo lambda watch + invoke)"
./infra/lambda-events.sh
echo "==> sam validate --lint, sam build (release, arm64)"
./infra/build.sh
echo "==> all checks passed"
