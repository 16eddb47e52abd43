//! telegram-send: `POST /v1/messages/telegram` (SPEC §5, §6 "Telegram send"). The routing,
//! fallback chain, attempt log and queueing live in `shared::outbound`, shared with
//! `telegram-crm-send` and `outbound-worker`.
#![forbid(unsafe_code)]

use std::sync::Arc;

pub use shared::outbound::api::Deps;
use shared::outbound::api::Endpoint;

pub fn router(deps: Arc<Deps>) -> shared::http::Router {
    shared::outbound::api::router(deps, Endpoint::Telegram)
}
