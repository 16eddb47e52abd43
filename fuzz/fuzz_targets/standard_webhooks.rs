//! `shared::signing::StandardWebhooks` (see `fuzz::signing`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::signing::standard_webhooks(data));
}
