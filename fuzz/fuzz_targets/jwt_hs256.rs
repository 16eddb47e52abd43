//! `shared::http::auth::verify_hs256` (see `fuzz::jwt`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::jwt::hs256(data));
}
