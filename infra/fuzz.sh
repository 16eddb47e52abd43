#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser and the HTTP edge (fuzz/): AFL++ through
# cargo-afl, on stable Rust. Installs what it needs into .tools/ (idempotently), builds the
# targets, runs each for FUZZ_SECONDS and prints one line per target and a total.
# Exits non-zero when any target crashed (or afl-fuzz failed).
#
#   infra/fuzz.sh                         # every target, 10 s each (CI-sized)
#   FUZZ_SECONDS=600 infra/fuzz.sh        # a long run
#   FUZZ_TARGETS="router phone" infra/fuzz.sh
#   FUZZ_REBUILD_CORPUS=1 infra/fuzz.sh   # rewrite fuzz/corpus/ from events/ and fixtures
#   FUZZ_STRICT=1 infra/fuzz.sh           # no tolerance for lambda_http's own panics
#                                         # (fuzz/src/known.rs)
#   FUZZ_PROFILE=ci infra/fuzz.sh         # the cargo profile of the targets (default
#                                         # release; `ci`: opt-level 1, a quicker build)
#
# The build is --locked: after a dependency change in the main workspace, update
# fuzz/Cargo.lock with `(cd fuzz && cargo tree -q >/dev/null)` and commit it.
# Findings: fuzz/out/<target>/default/{crashes,hangs}/; reproduce one with
#   fuzz/target/<profile>/<target> < fuzz/out/<target>/default/crashes/<file>
# Targets that could reach a network (the router: providers, CRMs, SMTP) run in a network
# namespace of their own (`unshare -n`, needs root); without it the router is skipped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.tools"
AFL_VERSION=0.18.2
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
FUZZ_TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-2000}
FUZZ_PROFILE=${FUZZ_PROFILE:-release}

export XDG_DATA_HOME="$TOOLS/xdg" # where cargo-afl keeps AFL++ (afl-fuzz, the runtime)
export PATH="$TOOLS/cargo-afl/bin:$PATH"

log() { printf '[fuzz] %s\n' "$*" >&2; }

afl_fuzz_path() {
  local rustc_version
  rustc_version=$(rustc -V | awk '{print $2}')
  compgen -G "$XDG_DATA_HOME/afl.rs/rustc-$rustc_version-*/afl.rs-$AFL_VERSION/afl/bin/afl-fuzz" | head -n1 || true
}

install_tools() {
  command -v make >/dev/null && command -v cc >/dev/null || {
    log "AFL++ needs make and a C compiler (Debian: apt-get install -y build-essential)"
    exit 1
  }
  if [[ "$(cargo-afl afl --version 2>/dev/null || true)" != *"$AFL_VERSION"* ]]; then
    log "installing cargo-afl $AFL_VERSION into .tools/cargo-afl"
    cargo install --locked --quiet --root "$TOOLS/cargo-afl" cargo-afl --version "$AFL_VERSION"
  fi
  if [[ -z "$(afl_fuzz_path)" ]]; then
    log "building AFL++ for $(rustc -V)"
    cargo afl config --build --force
  fi
  [[ -n "$(afl_fuzz_path)" ]] || { log "AFL++ was not built"; exit 1; }
}

stat_of() { # stat_of <fuzzer_stats file> <key>
  awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null
}

main() {
  install_tools
  cd "$ROOT/fuzz"
  log "building the targets (cargo afl build --profile $FUZZ_PROFILE)"
  local started=$SECONDS
  cargo afl build --locked --profile "$FUZZ_PROFILE" --bins --quiet
  log "built in $((SECONDS - started)) s"
  local bin="target/$FUZZ_PROFILE"

  if [[ ! -d corpus || -n "${FUZZ_REBUILD_CORPUS:-}" ]]; then
    log "writing the seed corpus (fuzz/corpus/)"
    FUZZ_DATA_DIR="$ROOT/fuzz/out/.corpus-data" "$bin/build_corpus" "$ROOT" "$ROOT/fuzz/corpus" >/dev/null
    rm -rf "$ROOT/fuzz/out/.corpus-data"
  fi

  local targets
  if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    targets=$FUZZ_TARGETS
  else
    targets=$(cd fuzz_targets && ls -- *.rs | sed 's/\.rs$//' | sort)
  fi

  local netns=()
  if unshare -n true 2>/dev/null; then
    netns=(unshare -n)
  fi

  export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
  export AFL_QUIET=1 AFL_IGNORE_SEED_PROBLEMS=1

  local total_execs=0 total_crashes=0 total_hangs=0 failed=0 lines=()
  for target in $targets; do
    local out="$ROOT/fuzz/out/$target"
    if [[ "$target" == router && ${#netns[@]} -eq 0 ]]; then
      lines+=("$(printf '%-28s skipped: needs a network namespace (unshare -n, root)' "$target")")
      continue
    fi
    rm -rf "$out"
    mkdir -p "$out/data"
    log "fuzzing $target for ${FUZZ_SECONDS}s"
    local rc=0
    FUZZ_DATA_DIR="$out/data" "${netns[@]}" cargo afl fuzz -V "$FUZZ_SECONDS" -t "${FUZZ_TIMEOUT_MS}+" -m none \
      -i "corpus/$target" -o "$out" -- "$bin/$target" >"$out/afl.log" 2>&1 || rc=$?
    rm -rf "$out/data"
    local stats="$out/default/fuzzer_stats"
    if [[ ! -f "$stats" ]]; then
      lines+=("$(printf '%-28s afl-fuzz failed (exit %s): see %s' "$target" "$rc" "${out#"$ROOT"/}/afl.log")")
      failed=1
      continue
    fi
    local execs crashes hangs
    execs=$(stat_of "$stats" execs_done)
    crashes=$(stat_of "$stats" saved_crashes)
    hangs=$(stat_of "$stats" saved_hangs)
    total_execs=$((total_execs + ${execs:-0}))
    total_crashes=$((total_crashes + ${crashes:-0}))
    total_hangs=$((total_hangs + ${hangs:-0}))
    lines+=("$(printf '%-28s execs %12s  crashes %4s  hangs %4s  corpus %5s  execs/s %8s' \
      "$target" "${execs:-?}" "${crashes:-?}" "${hangs:-?}" "$(stat_of "$stats" corpus_count)" \
      "$(stat_of "$stats" execs_per_sec)")")
  done

  printf '%s\n' "${lines[@]}"
  printf '%-28s execs %12s  crashes %4s  hangs %4s\n' TOTAL "$total_execs" "$total_crashes" "$total_hangs"
  if ((total_crashes > 0)); then
    log "crashes: fuzz/out/<target>/default/crashes/ (reproduce: fuzz/$bin/<target> < file)"
    exit 1
  fi
  exit "$failed"
}

main "$@"
