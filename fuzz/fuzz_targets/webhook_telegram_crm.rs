//! The `telegram_crm` webhook provider: verify + parse (see `fuzz::webhook`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::webhook::run("telegram_crm", data));
}
