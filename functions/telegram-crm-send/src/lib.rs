//! telegram-crm-send: `POST /v1/messages/telegram-crm` — one `telegram_crm` integration,
//! by user id then phone. The same in-process code as telegram-send's fallback chain.
#![forbid(unsafe_code)]

use std::sync::Arc;

pub use shared::outbound::api::Deps;
use shared::outbound::api::Endpoint;

pub fn router(deps: Arc<Deps>) -> shared::http::Router {
    shared::outbound::api::router(deps, Endpoint::TelegramCrm)
}
