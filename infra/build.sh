#!/usr/bin/env bash
# Builds the stack as `sam deploy` ships it: installs AWS SAM CLI, cargo-lambda and zig from
# PyPI into project-local virtualenvs (no Docker), lints the template, and builds every
# function for Lambda (provided.al2023, arm64, release) with BuildMethod rust-cargolambda.
# Then: `sam deploy --guided --config-file infra/samconfig.toml` (README, Deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_venv .venv-lambda infra/requirements-lambda.txt
ensure_venv .venv-sam infra/requirements-sam.txt
# .venv-lambda first: cargo-lambda finds zig as `python3 -m ziglang`.
export PATH="$PWD/.venv-lambda/bin:$PWD/.venv-sam/bin:$PATH"
export SAM_CLI_TELEMETRY=0
export AWS_REGION="${AWS_REGION:-eu-central-1}"
if command -v rustup > /dev/null; then
  rustup target add aarch64-unknown-linux-gnu
fi
echo "==> sam validate --lint"
sam validate --lint --config-file infra/samconfig.toml
echo "==> sam build (cargo lambda build --release --arm64, one function at a time)"
sam build --config-file infra/samconfig.toml
for dir in .aws-sam/build/*Function; do
  printf '%-40s %s\n' "$dir/bootstrap" "$(du -h "$dir/bootstrap" | cut -f1)"
done
