//! `shared::domain::phone::normalize` (see `fuzz::domain`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::domain::phone(data));
}
