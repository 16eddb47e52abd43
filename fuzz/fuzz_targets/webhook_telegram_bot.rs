//! The `telegram_bot` webhook provider: verify + parse (see `fuzz::webhook`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::webhook::run("telegram_bot", data));
}
