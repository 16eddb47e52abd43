//! The tenant `acme` the events in `events/` name: its integrations (with the secrets the
//! signed webhook events were made with), the client, the MAX dialog and the lead. Written
//! through the same repositories the functions use, on the AWS adapters.

use std::collections::BTreeMap;

use anyhow::Context as _;
use shared::backend::Ports;
use shared::domain::inbox::{Client, Dialog, Identity};
use shared::domain::lead::Lead;
use shared::domain::{ClientId, DialogId, IntegrationId, LeadId, TenantId};
use shared::repo::inbox::Inbox;
use shared::repo::leads::Leads;
use shared::testing::store_integration;

pub const TENANT: &str = "acme";
pub const CLIENT: &str = "01jd8x3k5q9w2e4r6t8y0vxz7m";
pub const DIALOG: &str = "dlg_5dafd2decf33560c0d26610bcc5d179d";
pub const LEAD: &str = "01jd9a0000000000000000lead";
pub const WAPPI_TOKEN: &str = "wappi-local-token";
pub const CRM_TOKEN: &str = "crm-local-token";
/// The bot of the `telegram` lead target (the one in `events/config-api`).
pub const LEAD_BOT_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
/// The chat the lead target posts to; the only chat the local Bot API knows.
pub const LEAD_CHAT: &str = "-100123";

/// A fixture file of the webhook-receiver tests (the signed bodies' secrets).
fn fixture(root: &std::path::Path, path: &str) -> anyhow::Result<String> {
    let file = root
        .join("functions/webhook-receiver/tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
    Ok(text.trim().to_owned())
}

/// An integration to store: id, provider, config, primary.
type Seeded<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, bool);

pub async fn tenant(ports: &Ports, root: &std::path::Path, world: &str) -> anyhow::Result<()> {
    let wa_secret = fixture(root, "whatsapp/signature-pywa/app_secret.txt")?;
    let viber_token = fixture(root, "viber/signature_sdk_webhook.token.txt")?;
    let crm_base = format!("{world}/crm");
    let integrations: [Seeded; 10] = [
        // telegram-send, telegram-crm-send, outbound-worker
        (
            "wappi1",
            "wappi",
            vec![
                ("api_token", WAPPI_TOKEN),
                ("profile_id", "profile-a"),
                ("platform", "telegram"),
            ],
            true,
        ),
        (
            "crm1",
            "telegram_crm",
            vec![
                ("api_base", &crm_base),
                ("api_token", CRM_TOKEN),
                ("account_id", "acc-1"),
            ],
            false,
        ),
        // inbox-api
        (
            "max1",
            "max",
            vec![
                ("access_token", "t"),
                ("webhook_secret", "max_secret_0123456789"),
            ],
            true,
        ),
        // auto-integration, lead-delivery
        (
            "tg1",
            "telegram",
            vec![("bot_token", LEAD_BOT_TOKEN), ("chat_id", LEAD_CHAT)],
            false,
        ),
        (
            "email1",
            "email",
            vec![
                ("recipients", "sales@example.com"),
                ("from_address", "leads@example.com"),
            ],
            false,
        ),
        // webhook-receiver
        (
            "evt-whatsapp",
            "whatsapp",
            vec![
                ("phone_number_id", "277321005464405"),
                ("access_token", "t"),
                ("app_secret", &wa_secret),
                ("verify_token", "verify_evt_0123456789"),
            ],
            false,
        ),
        (
            "evt-telegram",
            "telegram_bot",
            vec![
                ("bot_token", "1:A"),
                ("webhook_secret", "tg_evt_secret_0123456789"),
            ],
            false,
        ),
        (
            "evt-max",
            "max",
            vec![
                ("access_token", "t"),
                ("webhook_secret", "max_evt_secret_0123456789"),
            ],
            false,
        ),
        (
            "evt-viber",
            "viber",
            vec![("auth_token", &viber_token)],
            false,
        ),
        (
            "evt-vk",
            "vk",
            vec![
                ("group_id", "123456"),
                ("access_token", "t"),
                ("confirmation_code", "confirmation_123456"),
                ("webhook_secret", "vk_evt_secret_0123456789"),
            ],
            false,
        ),
    ];
    for (id, provider, config, primary) in &integrations {
        store_integration(ports, TENANT, id, provider, config, *primary).await;
    }

    let tenant = TenantId::parse(TENANT)?;
    let now = ports.clock.now();
    let inbox = Inbox::new(ports.table.clone(), ports.clock.clone());
    inbox
        .insert_client(&Client {
            id: ClientId::parse(CLIENT)?,
            tenant_id: tenant.clone(),
            name: Some("Ivan".into()),
            phone: Some("+79991234567".into()),
            identities: vec![
                Identity {
                    channel: "telegram".into(),
                    external_id: "1212686911".into(),
                    username: None,
                },
                Identity {
                    channel: "max".into(),
                    external_id: "123456789".into(),
                    username: None,
                },
            ],
            created_at: now,
            updated_at: now,
        })
        .await?;
    inbox
        .ensure_dialog(&Dialog {
            id: DialogId::parse(DIALOG)?,
            tenant_id: tenant.clone(),
            client_id: ClientId::parse(CLIENT)?,
            integration_id: IntegrationId::parse("max1")?,
            channel: "max".into(),
            provider: "max".into(),
            chat_id: "182182182".into(),
            created_at: now,
            last_message_at: None,
            last_message_preview: None,
            last_inbound_at: Some(now),
            unread_count: 0,
        })
        .await?;
    Leads::new(ports.table.clone(), ports.clock.clone())
        .insert(&Lead {
            id: LeadId::parse(LEAD)?,
            tenant_id: tenant,
            name: Some("Ivan".into()),
            phone: None,
            email: None,
            comment: None,
            source: None,
            utm: BTreeMap::new(),
            external_entity_id: Some("site-42".into()),
            external_project_id: Some("proj-7".into()),
            attributes: BTreeMap::new(),
            created_at: now,
        })
        .await?;
    Ok(())
}
