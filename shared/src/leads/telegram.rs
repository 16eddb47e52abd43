//! Telegram: each lead as a bot message to one chat (`sendMessage`, HTML style).
//!
//! A chat the bot cannot write to (not found, the bot kicked or not a member, the group
//! upgraded to a supergroup) is the integration's configuration, so it is an auth error.

use async_trait::async_trait;

use super::{LeadContext, LeadSent, LeadTarget, field};
use crate::domain::lead::Lead;
use crate::providers::ProviderError;
use crate::providers::telegram_bot::TelegramBotApi;
use crate::repo::integrations::OpenConfig;
use crate::secret::Secret;

/// `sendMessage` takes 1–4096 characters after entity parsing: counted on the visible
/// text (tags and escapes do not count), with room to spare.
const MAX_TEXT: usize = 4000;
/// One value's share, so a long comment does not crowd out the rest.
const MAX_VALUE: usize = 1000;

pub struct TelegramTarget {
    api: TelegramBotApi,
}

impl TelegramTarget {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            api: TelegramBotApi::new(http, base),
        }
    }
}

/// Escapes text for the Bot API's HTML style (`<`, `>`, `&`; `"` too, harmless outside
/// attributes and required inside them).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

/// The message: the title in bold, then one `<b>Label:</b> value` line per field.
pub fn format_lead(lead: &Lead) -> String {
    let title = clip(&lead.title(), MAX_VALUE);
    let mut visible = title.chars().count() + 1;
    let mut text = format!("<b>{}</b>\n", escape_html(&title));
    for (label, value) in lead.lines() {
        let (label, value) = (clip(&label, 100), clip(&value, MAX_VALUE));
        let length = 1 + label.chars().count() + 2 + value.chars().count();
        if visible + length > MAX_TEXT {
            text.push_str("\n…");
            break;
        }
        visible += length;
        text.push_str(&format!(
            "\n<b>{}:</b> {}",
            escape_html(&label),
            escape_html(&value)
        ));
    }
    text
}

#[async_trait]
impl LeadTarget for TelegramTarget {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn deliver(
        &self,
        ctx: &LeadContext<'_>,
        config: &OpenConfig,
    ) -> Result<LeadSent, ProviderError> {
        let token = Secret::new(field(config, "bot_token")?.to_owned());
        let chat_id = field(config, "chat_id")?;
        let cannot_write = |reason: String| {
            ProviderError::Auth(format!(
                "the bot cannot write to chat_id {chat_id}: {reason}"
            ))
        };
        let message_id = self
            .api
            .send_html(&token, chat_id, &format_lead(ctx.lead))
            .await
            .map_err(|e| match e {
                ProviderError::RecipientUnreachable(reason) => cannot_write(reason),
                ProviderError::Rejected(reason)
                    if reason.starts_with("Forbidden")
                        || reason.contains("upgraded to a supergroup") =>
                {
                    cannot_write(reason)
                }
                other => other,
            })?;
        Ok(LeadSent {
            external_id: Some(message_id),
            config_update: Default::default(),
        })
    }
}
