//! The `instagram` webhook provider: verify + parse (see `fuzz::webhook`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::webhook::run("instagram", data));
}
