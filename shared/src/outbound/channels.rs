//! Channel providers for the bot platforms: MAX, WhatsApp Cloud API, Viber and VK. Each
//! addresses a user or a chat by its id on the network; only WhatsApp also addresses a
//! phone (the phone's digits are the WhatsApp id). A file these APIs cannot take by URL is
//! refused with a reason that says so — a message is never sent without its file.

use async_trait::async_trait;

use super::channel::{ChannelProvider, FileRef, Outgoing, Recipient, RecipientKind};
use crate::providers::ProviderError;
use crate::providers::max::{MaxApi, MaxRecipient};
use crate::providers::viber::ViberApi;
use crate::providers::vk::{VkApi, random_id_for};
use crate::providers::whatsapp::{MediaByLink, WhatsAppApi};
use crate::repo::integrations::OpenConfig;
use crate::secret::Secret;

/// A required config field; its absence is a broken integration, not a bad request.
fn field<'a>(config: &'a OpenConfig, name: &str) -> Result<&'a Secret<String>, ProviderError> {
    config
        .get(name)
        .filter(|v| !v.expose().is_empty())
        .ok_or_else(|| ProviderError::Auth(format!("the integration's config lacks {name}")))
}

fn is_image(file: &FileRef) -> bool {
    file.mime_type
        .as_deref()
        .is_some_and(|m| m.trim().to_ascii_lowercase().starts_with("image/"))
}

/// A MAX bot: to a chat (`chat_id`) or a user's dialog (`user_id`); never by phone.
/// Images go by URL; other files are refused (MAX takes them only after an upload).
pub struct Max(pub MaxApi);

#[async_trait]
impl ChannelProvider for Max {
    fn name(&self) -> &'static str {
        "max"
    }

    fn addresses(&self, kind: RecipientKind) -> bool {
        kind != RecipientKind::Phone
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        let target = match to.kind {
            RecipientKind::Chat => MaxRecipient::Chat(&to.value),
            RecipientKind::UserId => MaxRecipient::User(&to.value),
            RecipientKind::Phone => {
                return Err(ProviderError::RecipientUnreachable(
                    "a MAX bot cannot write to a phone number".into(),
                ));
            }
        };
        let image = match &message.file {
            None => None,
            Some(file) if is_image(file) => Some(file.url.as_str()),
            Some(_) => {
                return Err(ProviderError::Rejected(
                    "MAX cannot send files by URL: only images (image/*) go by link, other files need an upload".into(),
                ));
            }
        };
        self.0
            .send_message(
                field(config, "access_token")?,
                target,
                message.text.as_deref(),
                image,
            )
            .await
    }
}

/// WhatsApp Cloud API: to a WhatsApp id; a phone number is its digits without `+`.
pub struct WhatsApp(pub WhatsAppApi);

#[async_trait]
impl ChannelProvider for WhatsApp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn addresses(&self, _: RecipientKind) -> bool {
        true
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        let wa_id = match to.kind {
            RecipientKind::Phone => to.value.trim_start_matches('+'),
            RecipientKind::UserId | RecipientKind::Chat => to.value.as_str(),
        };
        if let Some(template) = &message.template {
            return self
                .0
                .send_template(
                    field(config, "phone_number_id")?.expose(),
                    field(config, "access_token")?,
                    wa_id,
                    &template.name,
                    &template.language,
                )
                .await;
        }
        self.0
            .send(
                field(config, "access_token")?,
                field(config, "phone_number_id")?.expose(),
                wa_id,
                message.text.as_deref(),
                message.file.as_ref().map(|f| MediaByLink {
                    url: &f.url,
                    name: f.name.as_deref(),
                    mime_type: f.mime_type.as_deref(),
                }),
            )
            .await
    }
}

/// The sender name a Viber message shows when the config names none.
pub const VIBER_DEFAULT_SENDER: &str = "Bot";

/// A Viber bot: to a subscribed user's id; never by phone. Images go as `picture`; other
/// files are refused (a Viber `file` message requires the size in bytes).
pub struct Viber(pub ViberApi);

#[async_trait]
impl ChannelProvider for Viber {
    fn name(&self) -> &'static str {
        "viber"
    }

    fn addresses(&self, kind: RecipientKind) -> bool {
        kind != RecipientKind::Phone
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        if to.kind == RecipientKind::Phone {
            return Err(ProviderError::RecipientUnreachable(
                "a Viber bot cannot write to a phone number".into(),
            ));
        }
        let image = match &message.file {
            None => None,
            Some(file) if is_image(file) => Some(file.url.as_str()),
            Some(_) => {
                return Err(ProviderError::Rejected(
                    "Viber needs the file size to send a file; only images (image/*) can be sent by URL".into(),
                ));
            }
        };
        // The registry has no `sender_name` field today; an integration that carries one
        // (say, added later) is honoured.
        let sender = config
            .get("sender_name")
            .map(|s| s.expose().trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(VIBER_DEFAULT_SENDER);
        self.0
            .send(
                field(config, "auth_token")?,
                &to.value,
                sender,
                message.text.as_deref(),
                image,
            )
            .await
    }
}

/// A VK community: to a user id or a chat's peer id; never by phone. Files are refused:
/// VK takes only media uploaded to VK first.
pub struct Vk(pub VkApi);

impl Vk {
    /// The dedupe key of a send: the message's own id when the caller gave one (every
    /// send of the outbound sender does), else the recipient, the text and the file's URL
    /// (then two identical texts sent on purpose within VK's window would collapse).
    pub fn dedupe_key(to: &Recipient, message: &Outgoing) -> String {
        if let Some(key) = &message.dedupe_key {
            return format!("vk\n{key}");
        }
        format!(
            "vk\n{}\n{}\n{}",
            to.value,
            message.text.as_deref().unwrap_or_default(),
            message
                .file
                .as_ref()
                .map(|f| f.url.as_str())
                .unwrap_or_default()
        )
    }
}

#[async_trait]
impl ChannelProvider for Vk {
    fn name(&self) -> &'static str {
        "vk"
    }

    fn addresses(&self, kind: RecipientKind) -> bool {
        kind != RecipientKind::Phone
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        if to.kind == RecipientKind::Phone {
            return Err(ProviderError::RecipientUnreachable(
                "a VK community cannot write to a phone number".into(),
            ));
        }
        if message.file.is_some() {
            return Err(ProviderError::Rejected(
                "VK cannot send a file by URL; upload is not supported".into(),
            ));
        }
        self.0
            .send(
                field(config, "access_token")?,
                &to.value,
                random_id_for(&Self::dedupe_key(to, message)),
                message.text.as_deref(),
                None,
            )
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::config::ProviderUrls;
    use crate::outbound::channel::ChannelProviders;
    use crate::providers::http_client;
    use crate::testing::{FakeServer, Recorded};

    fn config(pairs: &[(&str, &str)]) -> OpenConfig {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
            .collect()
    }

    fn to(kind: RecipientKind, value: &str) -> Recipient {
        Recipient {
            kind,
            value: value.into(),
        }
    }

    fn text(t: &str) -> Outgoing {
        Outgoing {
            text: Some(t.into()),
            ..Default::default()
        }
    }

    fn with_file(t: Option<&str>, url: &str, name: Option<&str>, mime: &str) -> Outgoing {
        Outgoing {
            text: t.map(Into::into),
            file: Some(FileRef {
                url: url.into(),
                name: name.map(Into::into),
                mime_type: Some(mime.into()),
            }),
            ..Default::default()
        }
    }

    async fn answering(status: u16, body: Value) -> FakeServer {
        FakeServer::start(move |_| (status, body.clone()))
            .await
            .unwrap()
    }

    /// The query parameter `name` of a recorded request.
    fn query_param(req: &Recorded, name: &str) -> Option<String> {
        req.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// Decodes an `application/x-www-form-urlencoded` body.
    fn form(raw: &[u8]) -> Vec<(String, String)> {
        fn decode(s: &str) -> String {
            let bytes = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'+' => out.push(b' '),
                    b'%' => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 2;
                    }
                    b => out.push(b),
                }
                i += 1;
            }
            String::from_utf8(out).unwrap()
        }
        std::str::from_utf8(raw)
            .unwrap()
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect()
    }

    fn is_auth(e: &ProviderError) -> bool {
        matches!(e, ProviderError::Auth(_))
    }
    fn is_unreachable(e: &ProviderError) -> bool {
        matches!(e, ProviderError::RecipientUnreachable(_))
    }
    fn is_transient(e: &ProviderError) -> bool {
        matches!(e, ProviderError::Transient { .. })
    }
    fn is_rejected(e: &ProviderError) -> bool {
        matches!(e, ProviderError::Rejected(_))
    }

    #[test]
    fn bots_address_users_and_chats_and_only_whatsapp_a_phone() {
        let http = http_client();
        let providers: [Box<dyn ChannelProvider>; 4] = [
            Box::new(Max(MaxApi::new(http.clone(), "http://x"))),
            Box::new(WhatsApp(WhatsAppApi::new(http.clone(), "http://x"))),
            Box::new(Viber(ViberApi::new(http.clone(), "http://x"))),
            Box::new(Vk(VkApi::new(http, "http://x"))),
        ];
        for p in &providers {
            assert!(p.addresses(RecipientKind::Chat), "{}", p.name());
            assert!(p.addresses(RecipientKind::UserId), "{}", p.name());
            assert_eq!(
                p.addresses(RecipientKind::Phone),
                p.name() == "whatsapp",
                "{}",
                p.name()
            );
        }
    }

    #[test]
    fn the_registry_finds_every_new_provider() {
        let urls = ProviderUrls {
            telegram: "http://t".into(),
            wappi: "http://w".into(),
            max: "http://m".into(),
            whatsapp: "http://wa".into(),
            viber: "http://v".into(),
            vk: "http://vk".into(),
            amocrm: None,
            smtp_host: None,
            smtp_port: None,
            smtp_tls: Default::default(),
        };
        let providers = ChannelProviders::new(crate::egress::TargetClient::local(), &urls);
        for name in ["max", "whatsapp", "viber", "vk", "wappi", "telegram_bot"] {
            assert_eq!(providers.find(name).map(|p| p.name()), Some(name));
        }
    }

    // ---- MAX -------------------------------------------------------------------------

    const MAX_TOKEN: &str = "f9LHodD0cOJoiuLLTLt6zkOsfBmp1-xn0bkLz7asBJ7";

    fn max_sent(mid: &str) -> Value {
        json!({"message": {
            "recipient": {"chat_id": -72057589, "chat_type": "dialog", "user_id": 5465382},
            "timestamp": 1739184000000i64,
            "sender": {"user_id": 9007199254740993i64, "name": "Shop", "is_bot": true},
            "body": {"mid": mid, "seq": 113953477863936000i64, "text": "Hello"}
        }})
    }

    #[tokio::test]
    async fn max_sends_a_text_to_a_chat_or_a_user_with_the_token_header() {
        let server = answering(200, max_sent("mid.000000000cc3d1ef019f83db9ad30172")).await;
        let max = Max(MaxApi::new(http_client(), &server.base));
        let cfg = config(&[("access_token", MAX_TOKEN)]);
        let id = max
            .send(&cfg, &to(RecipientKind::Chat, "-72057589"), &text("Hello"))
            .await
            .unwrap();
        assert_eq!(id, "mid.000000000cc3d1ef019f83db9ad30172");
        max.send(&cfg, &to(RecipientKind::UserId, "5465382"), &text("Hi"))
            .await
            .unwrap();
        let requests = server.requests();
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/messages");
        assert_eq!(requests[0].query.as_deref(), Some("chat_id=-72057589"));
        assert_eq!(requests[0].header("authorization"), Some(MAX_TOKEN));
        assert_eq!(requests[0].body, json!({"text": "Hello"}));
        assert_eq!(requests[1].query.as_deref(), Some("user_id=5465382"));
        assert_eq!(requests[1].body, json!({"text": "Hi"}));
    }

    #[tokio::test]
    async fn max_refuses_a_text_over_4000_characters_before_any_call() {
        let server = answering(200, max_sent("mid.1")).await;
        let max = Max(MaxApi::new(http_client(), &server.base));
        let cfg = config(&[("access_token", MAX_TOKEN)]);
        let long = "я".repeat(crate::providers::max::MAX_TEXT + 1);
        let err = max
            .send(&cfg, &to(RecipientKind::Chat, "1"), &text(&long))
            .await
            .unwrap_err();
        assert!(is_rejected(&err), "{err:?}");
        assert!(server.requests().is_empty());
        let exact = "я".repeat(crate::providers::max::MAX_TEXT);
        max.send(&cfg, &to(RecipientKind::Chat, "1"), &text(&exact))
            .await
            .unwrap();
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn max_sends_an_image_by_url_and_refuses_other_files() {
        let server = answering(200, max_sent("mid.2")).await;
        let max = Max(MaxApi::new(http_client(), &server.base));
        let cfg = config(&[("access_token", MAX_TOKEN)]);
        let image = with_file(
            Some("Photo"),
            "https://cdn.example.com/p.jpg",
            Some("p.jpg"),
            "image/jpeg",
        );
        assert_eq!(
            max.send(&cfg, &to(RecipientKind::Chat, "7"), &image)
                .await
                .unwrap(),
            "mid.2"
        );
        assert_eq!(
            server.requests()[0].body,
            json!({"text": "Photo", "attachments": [{"type": "image", "payload": {"url": "https://cdn.example.com/p.jpg"}}]})
        );
        let pdf = with_file(
            Some("Invoice"),
            "https://cdn.example.com/i.pdf",
            Some("i.pdf"),
            "application/pdf",
        );
        let err = max
            .send(&cfg, &to(RecipientKind::Chat, "7"), &pdf)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::Rejected(ref r) if r.starts_with("MAX cannot send files by URL")),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 1, "a refused file makes no call");
    }

    #[tokio::test]
    async fn max_errors_are_classified() {
        // The chat id picks the documented failure the fake answers with.
        let server = FakeServer::start(|req: &Recorded| {
            match query_param(req, "chat_id").as_deref() {
                Some("401") => (
                    401,
                    json!({"code": "verify.token", "message": "Invalid access_token"}),
                ),
                Some("404") => (
                    404,
                    json!({"code": "chat.not.found", "message": "Chat 404 not found"}),
                ),
                Some("403") => (
                    403,
                    json!({"code": "chat.denied", "message": "Key: error.dialog.suspended, args: [403,]."}),
                ),
                Some("429") => (
                    429,
                    json!({"code": "too.many.requests", "message": "Too many requests"}),
                ),
                Some("503") => (
                    503,
                    json!({"code": "service.unavailable", "message": "Service unavailable"}),
                ),
                _ => (
                    400,
                    json!({"code": "proto.payload", "message": "Invalid request payload"}),
                ),
            }
        })
        .await
        .unwrap();
        let max = Max(MaxApi::new(http_client(), &server.base));
        let cfg = config(&[("access_token", MAX_TOKEN)]);
        let send = |chat: &'static str| {
            let max = &max;
            let cfg = &cfg;
            async move {
                max.send(cfg, &to(RecipientKind::Chat, chat), &text("x"))
                    .await
                    .unwrap_err()
            }
        };
        let auth = send("401").await;
        assert_eq!(
            auth,
            ProviderError::Auth("verify.token: Invalid access_token".into())
        );
        assert!(!auth.to_string().contains(MAX_TOKEN));
        assert!(is_unreachable(&send("404").await));
        assert!(is_unreachable(&send("403").await));
        assert!(is_transient(&send("429").await));
        assert!(is_transient(&send("503").await));
        assert!(is_rejected(&send("400").await));
        let missing = max
            .send(&config(&[]), &to(RecipientKind::Chat, "1"), &text("x"))
            .await
            .unwrap_err();
        assert!(is_auth(&missing), "{missing:?}");
    }

    // ---- WhatsApp --------------------------------------------------------------------

    const WA_TOKEN: &str = "EAAJB0wa-token";
    const WA_PHONE_ID: &str = "106540352242922";

    fn wa_config() -> OpenConfig {
        config(&[("access_token", WA_TOKEN), ("phone_number_id", WA_PHONE_ID)])
    }

    fn wa_sent(to: &str) -> Value {
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"}]
        })
    }

    #[tokio::test]
    async fn whatsapp_sends_a_text_to_a_phone_as_its_digits() {
        let server = answering(200, wa_sent("79990001122")).await;
        let wa = WhatsApp(WhatsAppApi::new(http_client(), &server.base));
        let id = wa
            .send(
                &wa_config(),
                &to(RecipientKind::Phone, "+79990001122"),
                &text("Hello"),
            )
            .await
            .unwrap();
        assert_eq!(
            id,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
        );
        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, format!("/{WA_PHONE_ID}/messages"));
        assert_eq!(req.query, None);
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {WA_TOKEN}").as_str())
        );
        assert_eq!(
            req.body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "79990001122",
                "type": "text",
                "text": {"preview_url": false, "body": "Hello"}
            })
        );
        wa.send(
            &wa_config(),
            &to(RecipientKind::UserId, "79990001122"),
            &text("Again"),
        )
        .await
        .unwrap();
        assert_eq!(server.requests()[1].body["to"], "79990001122");
    }

    #[tokio::test]
    async fn whatsapp_sends_files_by_link_as_their_type() {
        let server = answering(200, wa_sent("79990001122")).await;
        let wa = WhatsApp(WhatsAppApi::new(http_client(), &server.base));
        let recipient = to(RecipientKind::Phone, "+79990001122");
        let image = with_file(
            Some("Photo"),
            "https://cdn.example.com/p.jpg",
            Some("p.jpg"),
            "image/jpeg",
        );
        wa.send(&wa_config(), &recipient, &image).await.unwrap();
        let pdf = with_file(
            Some("Invoice"),
            "https://cdn.example.com/i.pdf",
            Some("invoice.pdf"),
            "application/pdf",
        );
        wa.send(&wa_config(), &recipient, &pdf).await.unwrap();
        let video = with_file(None, "https://cdn.example.com/v.mp4", None, "video/mp4");
        wa.send(&wa_config(), &recipient, &video).await.unwrap();
        let requests = server.requests();
        assert_eq!(requests[0].body["type"], "image");
        assert_eq!(
            requests[0].body["image"],
            json!({"link": "https://cdn.example.com/p.jpg", "caption": "Photo"})
        );
        assert_eq!(requests[1].body["type"], "document");
        assert_eq!(
            requests[1].body["document"],
            json!({"link": "https://cdn.example.com/i.pdf", "caption": "Invoice", "filename": "invoice.pdf"})
        );
        assert_eq!(requests[2].body["type"], "video");
        assert_eq!(
            requests[2].body["video"],
            json!({"link": "https://cdn.example.com/v.mp4"})
        );
        assert_eq!(requests[2].body["recipient_type"], "individual");
    }

    #[tokio::test]
    async fn whatsapp_graph_errors_are_classified() {
        // The recipient picks the documented Graph error the fake answers with.
        let server = FakeServer::start(|req: &Recorded| {
            let error = |code: i64, message: &str, details: &str| {
                json!({"error": {
                    "message": message,
                    "type": "OAuthException",
                    "code": code,
                    "error_data": {"messaging_product": "whatsapp", "details": details},
                    "fbtrace_id": "AbCdEf123"
                }})
            };
            match req.body["to"].as_str().unwrap_or_default() {
                "1" => (
                    400,
                    error(
                        131047,
                        "(#131047) Re-engagement message",
                        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
                    ),
                ),
                "2" => (
                    401,
                    json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "AbC"}}),
                ),
                "3" => (
                    400,
                    error(
                        130429,
                        "(#130429) Rate limit hit",
                        "Cloud API message throughput has been reached.",
                    ),
                ),
                "4" => (
                    400,
                    error(
                        131026,
                        "(#131026) Message undeliverable",
                        "Message Undeliverable.",
                    ),
                ),
                "5" => (500, error(1, "An unknown error occurred", "")),
                _ => (
                    400,
                    error(
                        100,
                        "(#100) Invalid parameter",
                        "Parameter value is not valid",
                    ),
                ),
            }
        })
        .await
        .unwrap();
        let wa = WhatsApp(WhatsAppApi::new(http_client(), &server.base));
        let cfg = wa_config();
        let send = |who: &'static str| {
            let wa = &wa;
            let cfg = &cfg;
            async move {
                wa.send(cfg, &to(RecipientKind::UserId, who), &text("x"))
                    .await
                    .unwrap_err()
            }
        };
        let closed = send("1").await;
        assert!(
            matches!(closed, ProviderError::Rejected(ref r) if r.starts_with("WHATSAPP_WINDOW_CLOSED") && r.contains("24 hours")),
            "{closed:?}"
        );
        let auth = send("2").await;
        assert!(
            matches!(auth, ProviderError::Auth(ref r) if r.contains("Session has expired")),
            "{auth:?}"
        );
        assert!(!auth.to_string().contains(WA_TOKEN));
        assert!(is_transient(&send("3").await));
        assert!(is_unreachable(&send("4").await));
        assert!(is_transient(&send("5").await));
        assert!(is_rejected(&send("6").await));
    }

    #[tokio::test]
    async fn whatsapp_sends_a_template() {
        let server = answering(200, wa_sent("79990001122")).await;
        let api = WhatsAppApi::new(http_client(), &server.base);
        let id = api
            .send_template(
                WA_PHONE_ID,
                &Secret::new(WA_TOKEN.to_owned()),
                "79990001122",
                "order_update",
                "ru",
            )
            .await
            .unwrap();
        assert!(id.starts_with("wamid."));
        let req = &server.requests()[0];
        assert_eq!(req.path, format!("/{WA_PHONE_ID}/messages"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {WA_TOKEN}").as_str())
        );
        assert_eq!(
            req.body,
            json!({
                "messaging_product": "whatsapp",
                "to": "79990001122",
                "type": "template",
                "template": {"name": "order_update", "language": {"code": "ru"}}
            })
        );
    }

    // ---- Viber -----------------------------------------------------------------------

    const VIBER_TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";
    const VIBER_USER: &str = "01234567890A=";

    #[tokio::test]
    async fn viber_sends_a_text_and_keeps_the_64_bit_token_exact() {
        // 5741311803571721087 > 2^53: a double would round it.
        let server = FakeServer::start(|_: &Recorded| {
            let body: Value = serde_json::from_str(
                r#"{"status":0,"status_message":"ok","message_token":5741311803571721087,"chat_hostname":"SN-CHAT-05_","billing_status":1}"#,
            )
            .unwrap();
            (200, body)
        })
        .await
        .unwrap();
        let viber = Viber(ViberApi::new(http_client(), &server.base));
        let id = viber
            .send(
                &config(&[("auth_token", VIBER_TOKEN)]),
                &to(RecipientKind::UserId, VIBER_USER),
                &text("Hello world!"),
            )
            .await
            .unwrap();
        assert_eq!(id, "5741311803571721087");
        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/send_message");
        assert_eq!(req.query, None);
        assert_eq!(req.header("x-viber-auth-token"), Some(VIBER_TOKEN));
        assert_eq!(
            req.body,
            json!({
                "receiver": VIBER_USER,
                "min_api_version": 1,
                "sender": {"name": "Bot"},
                "type": "text",
                "text": "Hello world!"
            })
        );
        viber
            .send(
                &config(&[("auth_token", VIBER_TOKEN), ("sender_name", "Shop")]),
                &to(RecipientKind::Chat, VIBER_USER),
                &text("Hi"),
            )
            .await
            .unwrap();
        assert_eq!(server.requests()[1].body["sender"], json!({"name": "Shop"}));
    }

    #[tokio::test]
    async fn viber_sends_an_image_as_a_picture_and_refuses_other_files() {
        let server = answering(
            200,
            json!({"status": 0, "status_message": "ok", "message_token": 4912661846655238145u64}),
        )
        .await;
        let viber = Viber(ViberApi::new(http_client(), &server.base));
        let cfg = config(&[("auth_token", VIBER_TOKEN)]);
        let recipient = to(RecipientKind::UserId, VIBER_USER);
        let image = with_file(
            Some("Photo description"),
            "https://www.images.com/img.jpg",
            Some("img.jpg"),
            "image/jpeg",
        );
        assert_eq!(
            viber.send(&cfg, &recipient, &image).await.unwrap(),
            "4912661846655238145"
        );
        let body = &server.requests()[0].body;
        assert_eq!(body["type"], "picture");
        assert_eq!(body["media"], "https://www.images.com/img.jpg");
        assert_eq!(body["text"], "Photo description");
        let bare = with_file(None, "https://www.images.com/img.png", None, "image/png");
        viber.send(&cfg, &recipient, &bare).await.unwrap();
        assert_eq!(
            server.requests()[1].body["text"],
            "",
            "a picture's text is required; empty when there is none"
        );
        let doc = with_file(
            Some("Contract"),
            "https://www.images.com/file.doc",
            Some("file.doc"),
            "application/msword",
        );
        let err = viber.send(&cfg, &recipient, &doc).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Rejected(ref r) if r.starts_with("Viber needs the file size to send a file")),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 2, "a refused file makes no call");
    }

    #[tokio::test]
    async fn viber_failure_statuses_are_classified() {
        // The receiver picks the documented failure status the fake answers with.
        let server = FakeServer::start(|req: &Recorded| {
            let failure = |status: i64, name: &str| {
                (
                    200,
                    json!({"status": status, "status_message": name, "chat_hostname": "SN-CHAT-05_"}),
                )
            };
            match req.body["receiver"].as_str().unwrap_or_default() {
                "2" => failure(2, "invalidAuthToken"),
                "5" => failure(5, "receiverNotRegistered"),
                "6" => failure(6, "receiverNotSubscribed"),
                "12" => failure(12, "tooManyRequests"),
                "500" => (500, json!({})),
                _ => failure(3, "badData"),
            }
        })
        .await
        .unwrap();
        let viber = Viber(ViberApi::new(http_client(), &server.base));
        let cfg = config(&[("auth_token", VIBER_TOKEN)]);
        let send = |who: &'static str| {
            let viber = &viber;
            let cfg = &cfg;
            async move {
                viber
                    .send(cfg, &to(RecipientKind::UserId, who), &text("x"))
                    .await
                    .unwrap_err()
            }
        };
        let auth = send("2").await;
        assert_eq!(auth, ProviderError::Auth("2 invalidAuthToken".into()));
        assert!(is_unreachable(&send("5").await));
        assert!(is_unreachable(&send("6").await));
        assert!(is_transient(&send("12").await));
        assert!(is_transient(&send("500").await));
        assert!(is_rejected(&send("3").await));
    }

    // ---- VK --------------------------------------------------------------------------

    const VK_TOKEN: &str = "vk1.a.community-token-QWERTY";

    fn vk_config() -> OpenConfig {
        config(&[("group_id", "229876543"), ("access_token", VK_TOKEN)])
    }

    #[tokio::test]
    async fn vk_sends_a_form_with_a_random_id_that_a_retry_repeats() {
        let server = answering(200, json!({"response": 45})).await;
        let vk = Vk(VkApi::new(http_client(), &server.base));
        let recipient = to(RecipientKind::UserId, "743784474");
        let message = text("Привет, мир & co");
        let id = vk.send(&vk_config(), &recipient, &message).await.unwrap();
        assert_eq!(id, "45");
        vk.send(&vk_config(), &recipient, &message).await.unwrap();
        vk.send(&vk_config(), &recipient, &text("Другое"))
            .await
            .unwrap();
        let requests = server.requests();
        let req = &requests[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/messages.send");
        assert_eq!(req.query, None, "the token never goes in the URL");
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let expected_random = random_id_for(&Vk::dedupe_key(&recipient, &message)).to_string();
        assert_eq!(
            form(&req.raw),
            vec![
                ("access_token".to_owned(), VK_TOKEN.to_owned()),
                ("v".to_owned(), "5.199".to_owned()),
                ("peer_id".to_owned(), "743784474".to_owned()),
                ("random_id".to_owned(), expected_random.clone()),
                ("message".to_owned(), "Привет, мир & co".to_owned()),
            ]
        );
        let random_of = |r: &Recorded| {
            form(&r.raw)
                .into_iter()
                .find(|(k, _)| k == "random_id")
                .map(|(_, v)| v)
        };
        assert_eq!(
            random_of(&requests[1]),
            Some(expected_random.clone()),
            "a retry sends the same random_id"
        );
        assert_ne!(random_of(&requests[2]), Some(expected_random));
    }

    #[tokio::test]
    async fn vk_reads_the_message_id_of_a_peer_ids_answer() {
        let server = answering(
            200,
            json!({"response": [{"peer_id": 2000000001, "message_id": 46, "conversation_message_id": 12}]}),
        )
        .await;
        let vk = Vk(VkApi::new(http_client(), &server.base));
        let id = vk
            .send(
                &vk_config(),
                &to(RecipientKind::Chat, "2000000001"),
                &text("Hi"),
            )
            .await
            .unwrap();
        assert_eq!(id, "46");
    }

    #[tokio::test]
    async fn vk_refuses_a_file_by_url_without_a_call() {
        let server = answering(200, json!({"response": 1})).await;
        let vk = Vk(VkApi::new(http_client(), &server.base));
        let err = vk
            .send(
                &vk_config(),
                &to(RecipientKind::UserId, "1"),
                &with_file(
                    Some("Look"),
                    "https://cdn.example.com/p.jpg",
                    None,
                    "image/jpeg",
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Rejected("VK cannot send a file by URL; upload is not supported".into())
        );
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn vk_errors_are_classified() {
        // The peer id picks the documented error the fake answers with (HTTP 200, as VK).
        let server = FakeServer::start(|req: &Recorded| {
            let peer = form(&req.raw)
                .into_iter()
                .find(|(k, _)| k == "peer_id")
                .map(|(_, v)| v)
                .unwrap_or_default();
            let (code, message) = match peer.as_str() {
                "5" => (5, "User authorization failed: invalid access_token (4)."),
                "27" => (
                    27,
                    "Group authorization failed: method is unavailable with group auth.",
                ),
                "6" => (6, "Too many requests per second"),
                "9" => (9, "Flood control"),
                "10" => (10, "Internal server error"),
                "901" => (901, "Can't send messages for users without permission"),
                "902" => (
                    902,
                    "Can't send messages to this user due to their privacy settings",
                ),
                "7" => (7, "Permission to perform this action is denied"),
                "900" => (900, "Can't send messages for users from blacklist"),
                "500" => return (502, json!({})),
                _ => (
                    100,
                    "One of the parameters specified was missing or invalid: peer_id",
                ),
            };
            (
                200,
                json!({"error": {
                    "error_code": code,
                    "error_msg": message,
                    "request_params": [
                        {"key": "method", "value": "messages.send"},
                        {"key": "oauth", "value": "1"},
                        {"key": "v", "value": "5.199"}
                    ]
                }}),
            )
        })
        .await
        .unwrap();
        let vk = Vk(VkApi::new(http_client(), &server.base));
        let cfg = vk_config();
        let send = |peer: &'static str| {
            let vk = &vk;
            let cfg = &cfg;
            async move {
                vk.send(cfg, &to(RecipientKind::UserId, peer), &text("x"))
                    .await
                    .unwrap_err()
            }
        };
        let auth = send("5").await;
        assert!(is_auth(&auth), "{auth:?}");
        assert!(!auth.to_string().contains(VK_TOKEN));
        assert!(is_auth(&send("27").await));
        assert!(is_transient(&send("6").await));
        assert!(is_transient(&send("9").await));
        assert!(is_transient(&send("10").await));
        assert!(is_unreachable(&send("901").await));
        assert!(is_unreachable(&send("902").await));
        assert!(is_unreachable(&send("7").await));
        let blacklisted = send("900").await;
        assert!(is_rejected(&blacklisted), "{blacklisted:?}");
        assert!(is_transient(&send("500").await));
        assert!(is_rejected(&send("100").await));
    }
}

#[cfg(test)]
mod dedupe_tests {
    use super::*;

    #[test]
    fn the_vk_random_id_follows_our_message_id_not_the_text() {
        let to = Recipient {
            kind: RecipientKind::Chat,
            value: "2000000001".into(),
        };
        let hello = |id: &str| Outgoing {
            text: Some("hello".into()),
            dedupe_key: Some(id.into()),
            ..Default::default()
        };
        let a = random_id_for(&Vk::dedupe_key(&to, &hello("msg-1")));
        assert_eq!(a, random_id_for(&Vk::dedupe_key(&to, &hello("msg-1"))));
        assert_ne!(a, random_id_for(&Vk::dedupe_key(&to, &hello("msg-2"))));
    }
}
