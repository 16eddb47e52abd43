//! The providers' APIs, as far as the events reach them, on one local server: Wappi knows
//! no one (every send answers `Peer not found`), the Telegram CRM gateway delivers, and
//! the Bot API knows only the lead target's chat. So `send-text` takes the seed's own
//! fallback path — Wappi by id, Wappi by phone, then the CRM account — as in production.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use shared::testing::{FakeServer, Recorded};

use crate::seed::{CRM_TOKEN, LEAD_BOT_TOKEN, LEAD_CHAT, WAPPI_TOKEN};

pub async fn start() -> std::io::Result<FakeServer> {
    let ids = Arc::new(AtomicU64::new(1000));
    FakeServer::start(move |req| respond(req, ids.fetch_add(1, Ordering::Relaxed))).await
}

fn respond(req: &Recorded, id: u64) -> (u16, Value) {
    if req.path.starts_with("/tapi/sync/") {
        if req.header("authorization") != Some(WAPPI_TOKEN) {
            return (401, json!({"status": "error", "detail": "Unauthorized"}));
        }
        return (
            400,
            json!({"status": "error", "detail": "Peer not found", "timestamp": 1700000000}),
        );
    }
    if req.path == "/crm/messages" {
        if req.header("authorization") != Some(format!("Bearer {CRM_TOKEN}").as_str()) {
            return (
                401,
                json!({"error": {"code": "UNAUTHORIZED", "message": "bad token"}}),
            );
        }
        return (200, json!({"message_id": id}));
    }
    if let Some((token, method)) = req
        .path
        .strip_prefix("/bot")
        .and_then(|r| r.split_once('/'))
    {
        if token != LEAD_BOT_TOKEN {
            return (
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        let chat = match &req.body["chat_id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !matches!(method, "sendMessage" | "sendPhoto" | "sendDocument") || chat != LEAD_CHAT {
            return (
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            );
        }
        return (
            200,
            json!({"ok": true, "result": {"message_id": id, "date": 1700000000,
                                           "chat": {"id": -100123, "type": "supergroup"}}}),
        );
    }
    (
        404,
        json!({"error": "no such path on the local provider server"}),
    )
}
