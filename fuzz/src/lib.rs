//! Shared harness code of the fuzz targets (`fuzz_targets/*.rs`, one binary each) and of
//! `build_corpus`, which writes their seed inputs from `events/` and the webhook fixtures.
//!
//! Every target asserts its invariants with `assert!`/`panic!`: under AFL++ a panic aborts
//! the process, which afl-fuzz records as a crash. Outside afl-fuzz each binary reads one
//! input from stdin, so `target/release/<target> < crash-file` reproduces a crash.

pub mod domain;
pub mod input;
pub mod jwt;
pub mod known;
pub mod lambda;
pub mod router;
pub mod signing;
pub mod webhook;

/// The time the JWT and OIDC targets check tokens at (2026-01-01T00:00:00Z).
pub const NOW_SECS: i64 = 1_767_225_600;
