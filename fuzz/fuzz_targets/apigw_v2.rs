//! API Gateway v2 events ⇄ ApiRequest/ApiResponse (see `fuzz::lambda`).
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::lambda::run(data));
}
