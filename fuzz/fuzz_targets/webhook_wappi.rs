//! The `wappi` webhook provider: verify + parse (see `fuzz::webhook`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::webhook::run("wappi", data));
}
