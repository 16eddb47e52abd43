//! The OIDC verifier's claim checks, no network (see `fuzz::jwt`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::jwt::oidc(data));
}
