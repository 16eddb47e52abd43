//! The `vk` webhook provider: verify + parse (see `fuzz::webhook`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::webhook::run("vk", data));
}
