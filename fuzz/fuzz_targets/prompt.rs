//! The prompt template functions (see `fuzz::domain`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::domain::prompt(data));
}
