//! `/v1/profile` and `/v1/catalog`: the business profile and its catalog (menu, goods,
//! services, courses…), each one document per tenant.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use shared::Secret;
use shared::domain::TenantId;
use shared::domain::{registry, text};
use shared::egress::EgressPolicy;
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal};
use shared::ports::table::Key;
use shared::repo::bot_webhook;
use shared::repo::{get_document, put_document};

use crate::Deps;

/// Largest catalog accepted in one PUT.
pub const MAX_CATALOG_ITEMS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessType {
    Restaurant,
    Retail,
    Education,
    Healthcare,
    Beauty,
    RealEstate,
    Travel,
    Services,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub open: String,
    pub close: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub business_type: BusinessType,
    /// ISO 639-1 language of the bot (`ru`, `en`, …).
    pub language: String,
    /// IANA time zone (`Europe/Moscow`).
    pub timezone: String,
    /// `mon`..`sun` → opening intervals (`"09:00"`–`"18:00"`); a missing day is closed.
    #[serde(default)]
    pub working_hours: BTreeMap<String, Vec<Interval>>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Where every inbound event is also POSTed, signed with the Standard Webhooks scheme.
    #[serde(default)]
    pub bot_webhook_url: Option<String>,
    /// Its signing secret (`whsec_…`): accepted on input, stored sealed apart from the
    /// profile, shown masked, generated when a URL is set without one.
    #[serde(default, skip_serializing)]
    pub bot_webhook_secret: Option<String>,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            name: String::new(),
            business_type: BusinessType::Other,
            language: "ru".into(),
            timezone: "Europe/Moscow".into(),
            working_hours: BTreeMap::new(),
            phone: None,
            address: None,
            website: None,
            description: None,
            bot_webhook_url: None,
            bot_webhook_secret: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Price in minor units (kopecks, cents).
    pub price_minor: i64,
    /// ISO 4217 code (`RUB`, `USD`).
    pub currency: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default = "yes")]
    pub available: bool,
    #[serde(default)]
    pub sort_order: i64,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub items: Vec<CatalogItem>,
}

pub use shared::repo::bot_webhook::profile_key;

pub fn catalog_key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "CATALOG")
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `HH:MM` (two digits, a colon, two digits; `24:00` is the end of the day) in minutes.
fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn field_error(field: &str, code: &str, message: &str) -> Value {
    json!({"field": field, "code": code, "message": message})
}

/// Every problem of a profile, each naming its field.
pub fn validate_profile(profile: &Profile, egress: EgressPolicy) -> Vec<Value> {
    let mut errors = Vec::new();
    if let Err(e) = text::display_name(&profile.name, 200) {
        errors.push(field_error("name", e.code(), &e.to_string()));
    }
    if profile.language.len() != 2 || !profile.language.bytes().all(|b| b.is_ascii_lowercase()) {
        errors.push(field_error(
            "language",
            "invalid_format",
            "an ISO 639-1 code such as `ru`",
        ));
    }
    if jiff::tz::db().get(&profile.timezone).is_err() {
        errors.push(field_error(
            "timezone",
            "unknown_timezone",
            "an IANA time zone such as `Europe/Moscow`",
        ));
    }
    for (day, intervals) in &profile.working_hours {
        let field = format!("working_hours.{day}");
        if !DAYS.contains(&day.as_str()) {
            errors.push(field_error(
                &field,
                "unknown_day",
                "days are mon, tue, wed, thu, fri, sat, sun",
            ));
            continue;
        }
        let mut spans = Vec::new();
        for interval in intervals {
            match (minutes(&interval.open), minutes(&interval.close)) {
                (Some(open), Some(close)) if open < close => spans.push((open, close)),
                _ => errors.push(field_error(
                    &field,
                    "invalid_interval",
                    "HH:MM open before HH:MM close",
                )),
            }
        }
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[0].1 > w[1].0) {
            errors.push(field_error(
                &field,
                "overlapping_intervals",
                "intervals of a day must not overlap",
            ));
        }
    }
    if let Some(site) = &profile.website
        && !site.starts_with("https://")
        && !site.starts_with("http://")
    {
        errors.push(field_error("website", "invalid_format", "an http(s) URL"));
    }
    if let Some(problem) = profile
        .bot_webhook_url
        .as_deref()
        .and_then(|url| registry::url_problem("bot_webhook_url", url, egress))
    {
        errors.push(field_error(
            problem.field.as_str(),
            problem.code,
            &problem.message,
        ));
    }
    if let Some(secret) = &profile.bot_webhook_secret {
        let masked = secret.starts_with("••••");
        let well_formed = secret
            .strip_prefix("whsec_")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|key| key.len() >= 24);
        if !masked && !well_formed {
            errors.push(field_error(
                "bot_webhook_secret",
                "invalid_format",
                "`whsec_` followed by base64 of at least 24 bytes",
            ));
        }
    }
    errors
}

/// Every problem of a catalog, each naming its item and field.
pub fn validate_catalog(catalog: &Catalog) -> Vec<Value> {
    let mut errors = Vec::new();
    if catalog.items.len() > MAX_CATALOG_ITEMS {
        errors.push(field_error("items", "too_many", "at most 1000 items"));
    }
    for (i, item) in catalog.items.iter().enumerate() {
        let at = |f: &str| format!("items[{i}].{f}");
        if let Err(e) = text::display_name(&item.name, 200) {
            errors.push(field_error(&at("name"), e.code(), &e.to_string()));
        }
        if item.price_minor < 0 {
            errors.push(field_error(
                &at("price_minor"),
                "negative",
                "a price is zero or more",
            ));
        }
        if item.currency.len() != 3 || !item.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(field_error(
                &at("currency"),
                "invalid_format",
                "an ISO 4217 code such as `RUB`",
            ));
        }
        if item
            .image_url
            .as_ref()
            .is_some_and(|u| !u.starts_with("https://"))
        {
            errors.push(field_error(
                &at("image_url"),
                "not_https",
                "an https:// URL",
            ));
        }
    }
    errors
}

pub async fn load_profile(deps: &Deps, tenant: &TenantId) -> Result<Profile, ApiError> {
    Ok(get_document(deps.table.as_ref(), &profile_key(tenant))
        .await?
        .unwrap_or_default())
}

pub async fn load_catalog(deps: &Deps, tenant: &TenantId) -> Result<Catalog, ApiError> {
    Ok(get_document(deps.table.as_ref(), &catalog_key(tenant))
        .await?
        .unwrap_or_default())
}

/// The profile as the dashboard sees it: with the webhook secret masked.
async fn view(deps: &Deps, tenant: &TenantId, profile: &Profile) -> Result<Value, ApiError> {
    let mut out = serde_json::to_value(profile).map_err(|_| ApiError::internal())?;
    let secret = deps.bot_webhooks.open(tenant).await?;
    out["bot_webhook_secret"] = json!(secret.map(|s| s.masked()));
    Ok(out)
}

pub async fn get_profile(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let profile = load_profile(deps, tenant).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view(deps, tenant, &profile).await?,
    ))
}

pub async fn put_profile(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let mut profile: Profile = req.json()?;
    let errors = validate_profile(&profile, deps.egress);
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the profile is not valid",
            json!({"fields": errors}),
        ));
    }
    let given = profile
        .bot_webhook_secret
        .take()
        .filter(|s| !s.starts_with("••••"));
    match (&profile.bot_webhook_url, given) {
        (None, _) => deps.bot_webhooks.remove(tenant).await?,
        (Some(_), Some(secret)) => {
            deps.bot_webhooks
                .store(tenant, &Secret::new(secret))
                .await?
        }
        (Some(_), None) => {
            if deps.bot_webhooks.open(tenant).await?.is_none() {
                deps.bot_webhooks
                    .store(tenant, &bot_webhook::generate()?)
                    .await?;
            }
        }
    }
    put_document(deps.table.as_ref(), &profile_key(tenant), &profile).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view(deps, tenant, &profile).await?,
    ))
}

pub async fn get_catalog(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let catalog = load_catalog(deps, principal.tenant()?).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": catalog.items, "next_cursor": null}),
    ))
}

/// Replaces the whole catalog in one write (one document, so readers never see half of it).
pub async fn put_catalog(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let mut catalog: Catalog = req.json()?;
    let errors = validate_catalog(&catalog);
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the catalog is not valid",
            json!({"fields": errors}),
        ));
    }
    for item in &mut catalog.items {
        if item.id.is_none() {
            item.id = Some(shared::domain::ids::ordered_ulid().to_ascii_lowercase());
        }
    }
    catalog.items.sort_by_key(|i| i.sort_order);
    put_document(deps.table.as_ref(), &catalog_key(tenant), &catalog).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": catalog.items, "next_cursor": null}),
    ))
}
