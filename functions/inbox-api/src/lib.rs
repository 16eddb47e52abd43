//! inbox-api (SPEC §5 inbox routes and clients, §6 "Inbox", seed 002): clients linked
//! across channels by phone, the tenant's dialogs across every channel, their messages, and
//! the reply that leaves only through the dialog's own integration (queued, delivered by
//! the outbound worker).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{Method, StatusCode};
use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::inbox::{Client, Dialog, Identity};
use shared::domain::text;
use shared::domain::{ClientId, DialogId, IntegrationId, MessageId, phone};
use shared::http::{
    Access, ApiError, ApiRequest, ApiResponse, Authenticator, Principal, Roles, Router, idempotency,
};
use shared::outbound::api::Deps as SendDeps;
use shared::outbound::channel::{FileRef, Outgoing, Template};
use shared::outbound::telegram::SendError;
use shared::ports::table::Cursor;
use shared::repo::inbox::Contact;

/// Requests are small; files go by URL.
pub const BODY_LIMIT: usize = 64 * 1024;
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
/// WhatsApp's customer-service window: a free-form reply only within 24 h of the
/// client's last message.
pub const WHATSAPP_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// Channels a client identity may name.
pub const CHANNELS: [&str; 8] = [
    "telegram",
    "max",
    "whatsapp",
    "viber",
    "vk",
    "instagram",
    "messenger",
    "web_widget",
];

/// The longest text each network takes in one message.
pub fn text_limit(channel: &str) -> usize {
    match channel {
        "max" => 4000,
        "viber" => 7000,
        "instagram" | "messenger" => 2000,
        _ => 4096,
    }
}

pub type Deps = SendDeps;

pub fn router(deps: Arc<Deps>) -> Router {
    let auth = Arc::new(Authenticator::new(deps.api_keys.clone()));
    Router::new(Some(auth))
        .body_limit(BODY_LIMIT)
        .route(
            Method::POST,
            "/v1/clients",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, create_client),
        )
        .route(
            Method::GET,
            "/v1/clients",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, find_client),
        )
        .route(
            Method::GET,
            "/v1/clients/{id}",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, get_client),
        )
        .route(
            Method::GET,
            "/v1/inbox/dialogs",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, list_dialogs),
        )
        .route(
            Method::GET,
            "/v1/inbox/dialogs/{id}/messages",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, list_messages),
        )
        .route(
            Method::POST,
            "/v1/inbox/dialogs/{id}/reply",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, reply),
        )
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::validation(
        format!("{field}: {reason}"),
        json!({"field": field, "reason": reason}),
    )
}

fn client_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "CLIENT_NOT_FOUND",
        "client not found",
    )
}

fn dialog_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "DIALOG_NOT_FOUND",
        "dialog not found",
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityBody {
    channel: String,
    external_id: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    identities: Vec<IdentityBody>,
}

fn identity(body: IdentityBody, index: usize) -> Result<Identity, ApiError> {
    let field = |name: &str| format!("identities[{index}].{name}");
    if !CHANNELS.contains(&body.channel.as_str()) {
        return Err(invalid(
            &field("channel"),
            &format!("unknown channel; one of {}", CHANNELS.join(", ")),
        ));
    }
    let external_id = body.external_id.trim().to_owned();
    if external_id.is_empty()
        || external_id.len() > 128
        || external_id.chars().any(|c| c.is_control() || c == '#')
    {
        return Err(invalid(
            &field("external_id"),
            "must be 1 to 128 printable characters without #",
        ));
    }
    let username = text::optional_display_name(body.username.as_deref(), MAX_USERNAME_CHARS)
        .map_err(|e| invalid(&field("username"), &e.to_string()))?;
    Ok(Identity {
        channel: body.channel,
        external_id,
        username,
    })
}

/// The client with its identities and dialogs, as every client route answers.
async fn client_view(deps: &Deps, client: Client) -> Result<Value, ApiError> {
    let dialogs = deps
        .sender
        .inbox
        .client_dialogs(&client.tenant_id, &client.id)
        .await?;
    let mut body = serde_json::to_value(&client).map_err(|_| ApiError::internal())?;
    body["dialogs"] = json!(dialogs);
    Ok(body)
}

async fn load_client(
    deps: &Deps,
    principal: &Principal,
    id: &ClientId,
) -> Result<Client, ApiError> {
    deps.sender
        .inbox
        .client(principal.tenant()?, id)
        .await?
        .ok_or_else(client_not_found)
}

/// `POST /v1/clients`: create or import. The same phone again returns the existing client
/// (200) with the new identities linked to it; a new client is 201.
async fn create_client(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let body: ClientBody = req.json()?;
    let e164 = match body
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => Some(
            phone::normalize(raw).ok_or_else(|| invalid("phone", "not a valid phone number"))?,
        ),
        None => None,
    };
    let mut identities = body
        .identities
        .into_iter()
        .enumerate()
        .map(|(i, b)| identity(b, i))
        .collect::<Result<Vec<_>, _>>()?;
    // The same identity twice (also once trimmed) is one identity: the first one given.
    let mut seen = std::collections::HashSet::new();
    identities.retain(|i| seen.insert((i.channel.clone(), i.external_id.clone())));
    if e164.is_none() && identities.is_empty() {
        return Err(invalid(
            "phone",
            "a phone or at least one identity is required",
        ));
    }
    let name = text::optional_display_name(body.name.as_deref(), 200)
        .map_err(|e| invalid("name", &e.to_string()))?;
    let inbox = &deps.sender.inbox;
    for _ in 0..3 {
        let existing = match &e164 {
            Some(p) => inbox.client_by_phone(&tenant, p).await?,
            None => None,
        };
        if let Some(id) = existing {
            link(deps, &tenant, &id, &identities, e164.as_deref()).await?;
            let client = inbox
                .client(&tenant, &id)
                .await?
                .ok_or_else(client_not_found)?;
            return Ok(ApiResponse::json(
                StatusCode::OK,
                &client_view(deps, client).await?,
            ));
        }
        let now = deps.clock.now();
        let client = Client {
            id: ClientId::generate(),
            tenant_id: tenant.clone(),
            name: name.clone(),
            phone: e164.clone(),
            identities: identities.clone(),
            created_at: now,
            updated_at: now,
        };
        if inbox.insert_client(&client).await? {
            let stored = inbox
                .client(&tenant, &client.id)
                .await?
                .ok_or_else(client_not_found)?;
            return Ok(ApiResponse::json(
                StatusCode::CREATED,
                &client_view(deps, stored).await?,
            ));
        }
        if let Some(p) = &e164 {
            // The phone was taken meanwhile: read it again. Otherwise an identity belongs
            // to another client.
            if inbox.client_by_phone(&tenant, p).await?.is_none() {
                return Err(identity_taken());
            }
            continue;
        }
        // No phone: the same identities again name their existing client.
        let mut owners = BTreeSet::new();
        for identity in &identities {
            owners.insert(
                inbox
                    .client_by_identity(&tenant, &identity.channel, &identity.external_id)
                    .await?,
            );
        }
        return match owners.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(id)] => {
                let client = inbox
                    .client(&tenant, id)
                    .await?
                    .ok_or_else(client_not_found)?;
                Ok(ApiResponse::json(
                    StatusCode::OK,
                    &client_view(deps, client).await?,
                ))
            }
            _ => Err(identity_taken()),
        };
    }
    Err(ApiError::conflict("the client changed meanwhile; retry"))
}

fn identity_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "IDENTITY_TAKEN",
        "an identity in the request belongs to another client",
    )
}

/// Links identities to the client who owns the phone; one owned by another client is a
/// conflict.
async fn link(
    deps: &Deps,
    tenant: &shared::domain::TenantId,
    client: &ClientId,
    identities: &[Identity],
    phone: Option<&str>,
) -> Result<(), ApiError> {
    for identity in identities {
        let owner = deps
            .sender
            .inbox
            .identify(
                tenant,
                &Contact {
                    channel: identity.channel.clone(),
                    external_id: identity.external_id.clone(),
                    username: identity.username.clone(),
                    name: None,
                    phone: phone.map(str::to_owned),
                },
            )
            .await?;
        if &owner != client {
            return Err(identity_taken());
        }
    }
    Ok(())
}

/// `GET /v1/clients?phone=`: the client with this phone, as a list of zero or one.
async fn find_client(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let raw = req
        .query
        .get("phone")
        .ok_or_else(|| invalid("phone", "the phone query parameter is required"))?;
    let e164 = phone::normalize(raw).ok_or_else(|| invalid("phone", "not a valid phone number"))?;
    let mut items = Vec::new();
    if let Some(id) = deps.sender.inbox.client_by_phone(tenant, &e164).await?
        && let Some(client) = deps.sender.inbox.client(tenant, &id).await?
    {
        items.push(client_view(deps, client).await?);
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

async fn get_client(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let id = ClientId::parse(req.path_param("id")?).map_err(|_| client_not_found())?;
    let client = load_client(deps, &principal, &id).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &client_view(deps, client).await?,
    ))
}

fn page_params(req: &ApiRequest) -> Result<(u32, Option<Cursor>), ApiError> {
    let limit = match req.query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| invalid("limit", &format!("must be 1 to {MAX_PAGE}")))?,
    };
    let cursor = match req.query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let cursor = Cursor::parse(raw.clone());
            cursor
                .decode()
                .map_err(|_| invalid("cursor", "not a cursor this API returned"))?;
            Some(cursor)
        }
    };
    Ok((limit, cursor))
}

/// `GET /v1/inbox/dialogs?channel=&integration_id=&cursor=&limit=`: newest activity first.
async fn list_dialogs(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let (limit, cursor) = page_params(&req)?;
    // A filter given is a filter: `channel=` or `integration_id=` (empty) is refused, not
    // read as "all".
    let channel = req.query.get("channel").cloned();
    if let Some(c) = &channel
        && !CHANNELS.contains(&c.as_str())
    {
        return Err(invalid(
            "channel",
            &format!("unknown channel; one of {}", CHANNELS.join(", ")),
        ));
    }
    let integration = match req.query.get("integration_id") {
        Some(raw) => Some(
            IntegrationId::parse(raw.as_str())
                .map_err(|_| invalid("integration_id", "not an integration id"))?,
        ),
        None => None,
    };
    let (dialogs, next) = deps
        .sender
        .inbox
        .dialogs(tenant, limit, cursor, |d: &Dialog| {
            channel.as_ref().is_none_or(|c| &d.channel == c)
                && integration.as_ref().is_none_or(|i| &d.integration_id == i)
        })
        .await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": dialogs, "next_cursor": next}),
    ))
}

async fn load_dialog(deps: &Deps, principal: &Principal, raw: &str) -> Result<Dialog, ApiError> {
    let id = DialogId::parse(raw).map_err(|_| dialog_not_found())?;
    deps.sender
        .inbox
        .dialog(principal.tenant()?, &id)
        .await?
        .ok_or_else(dialog_not_found)
}

/// `GET /v1/inbox/dialogs/{id}/messages?cursor=&limit=&order=desc|asc`.
async fn list_messages(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let dialog = load_dialog(deps, &principal, req.path_param("id")?).await?;
    let (limit, cursor) = page_params(&req)?;
    let oldest_first = match req.query.get("order").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(invalid("order", "asc or desc")),
    };
    let (messages, next) = deps
        .sender
        .inbox
        .messages(&dialog.tenant_id, &dialog.id, limit, cursor, oldest_first)
        .await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": messages, "next_cursor": next}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentBody {
    #[serde(rename = "type")]
    kind: String,
    url: String,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    name: String,
    language: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<AttachmentBody>,
    /// WhatsApp only: a pre-approved template (the one way to write outside the window).
    #[serde(default)]
    template: Option<TemplateBody>,
}

fn template(body: TemplateBody, channel: &str) -> Result<Template, ApiError> {
    if channel != "whatsapp" {
        return Err(invalid("template", "templates are a WhatsApp feature"));
    }
    let name_ok = !body.name.is_empty()
        && body.name.len() <= 512
        && body
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(invalid(
            "template.name",
            "1 to 512 of lowercase letters, digits and _",
        ));
    }
    let language_ok = (2..=15).contains(&body.language.len())
        && body
            .language
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '_');
    if !language_ok {
        return Err(invalid(
            "template.language",
            "a language code such as en_US or ru",
        ));
    }
    Ok(Template {
        name: body.name,
        language: body.language,
    })
}

/// Longest username an identity may carry (Telegram's are at most 32).
const MAX_USERNAME_CHARS: usize = 128;
const ATTACHMENT_TYPES: [&str; 4] = ["image", "video", "audio", "document"];

fn reply_content(body: ReplyBody, channel: &str) -> Result<Outgoing, ApiError> {
    if let Some(t) = body.template {
        if body.text.is_some() || !body.attachments.is_empty() {
            return Err(invalid(
                "template",
                "a template goes without text or attachments",
            ));
        }
        return Ok(Outgoing {
            template: Some(template(t, channel)?),
            ..Default::default()
        });
    }
    let text = body.text.filter(|t| !t.trim().is_empty());
    if body.attachments.len() > 1 {
        return Err(invalid("attachments", "at most one attachment per reply"));
    }
    let file = match body.attachments.into_iter().next() {
        None => None,
        Some(a) => {
            if !ATTACHMENT_TYPES.contains(&a.kind.as_str()) {
                return Err(invalid(
                    "attachments[0].type",
                    &format!(
                        "unknown attachment type; one of {}",
                        ATTACHMENT_TYPES.join(", ")
                    ),
                ));
            }
            let url = reqwest::Url::parse(a.url.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| invalid("attachments[0].url", "must be an http or https URL"))?;
            let mime = a.mime_type.or_else(|| match a.kind.as_str() {
                "image" => Some("image/jpeg".into()),
                "video" => Some("video/mp4".into()),
                "audio" => Some("audio/mpeg".into()),
                _ => None,
            });
            Some(FileRef {
                url: url.to_string(),
                name: a.file_name,
                mime_type: mime,
            })
        }
    };
    match &text {
        None if file.is_none() => return Err(invalid("text", "text or an attachment is required")),
        Some(t) if t.chars().count() > text_limit(channel) => {
            return Err(invalid(
                "text",
                &format!(
                    "longer than {} characters, the limit of {channel}",
                    text_limit(channel)
                ),
            ));
        }
        _ => {}
    }
    Ok(Outgoing {
        text,
        file,
        ..Default::default()
    })
}

/// `POST /v1/inbox/dialogs/{id}/reply` + `Idempotency-Key`: only through the dialog's
/// integration; queued → 202.
async fn reply(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let dialog = load_dialog(deps, &principal, req.path_param("id")?).await?;
    let body: ReplyBody = req.json()?;
    let content = reply_content(body, &dialog.channel)?;
    let integration = deps
        .sender
        .integrations
        .get(&tenant, &dialog.integration_id)
        .await?
        .filter(|i| i.is_enabled)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INTEGRATION_DISABLED",
                "the dialog's integration is disabled or gone; a reply leaves only through it",
            )
        })?;
    if dialog.channel == "whatsapp" && content.template.is_none() {
        let now = deps.clock.now();
        let open = dialog
            .last_inbound_at
            .is_some_and(|at| now.duration_since(at) < WHATSAPP_WINDOW);
        if !open {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "WHATSAPP_WINDOW_CLOSED",
                "the client's last message is older than 24 hours: WhatsApp takes only a template now (send `template`)",
            ));
        }
    }
    idempotency::once(
        &deps.idempotency,
        deps.clock.as_ref(),
        &tenant,
        "inbox-reply",
        &req,
        |message_id: MessageId| async move {
            let message = deps
                .sender
                .queue_reply(&dialog, &integration, &message_id, &content)
                .await
                .map_err(|e| match e {
                    SendError::Repo(e) => e.into(),
                    SendError::Queue(e) => e.into(),
                    _ => ApiError::internal(),
                })?;
            Ok(ApiResponse::json(StatusCode::ACCEPTED, &message))
        },
    )
    .await
}
