//! Every dev-server route with an embedded backend: no 5xx (see `fuzz::router`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::router::run(data));
}
