//! `/v1/prompt`: the active bot prompt, its versions and history (seed 003, property 7).
//! Rules in `docs/prompts.md`.

use std::collections::BTreeMap;

use http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::domain::TenantId;
use shared::domain::prompt::{self, PromptVariable, VariableSource};
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal};
use shared::ports::table::{
    AttrValue, Condition, Cursor, Key, Query, SortKey, TableError, TransactOp,
};
use shared::repo::{from_item, get_document, to_item};

use crate::Deps;
use crate::profile::{Catalog, Profile};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub content: String,
    pub variables: Vec<PromptVariable>,
    pub version: u64,
    pub changed_by: Option<String>,
    pub updated_at: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    content: String,
    #[serde(default)]
    variables: Vec<PromptVariable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restore {
    version: u64,
}

fn prompt_key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "PROMPT")
}

fn history_key(tenant: &TenantId, version: u64) -> Key {
    Key::new(
        format!("TENANT#{tenant}"),
        format!("PROMPT_HISTORY#{version:010}"),
    )
}

pub async fn load(deps: &Deps, tenant: &TenantId) -> Result<Prompt, ApiError> {
    Ok(get_document(deps.table.as_ref(), &prompt_key(tenant))
        .await?
        .unwrap_or_default())
}

fn check(draft: &Draft) -> Result<(), ApiError> {
    let (errors, _) = prompt::validate(&draft.content, &draft.variables);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(
            "the prompt is not valid",
            json!({"errors": errors}),
        ))
    }
}

/// Saves a new version and its history entry in one transaction; a concurrent save of the
/// same version makes this one fail with 409.
async fn save(deps: &Deps, principal: &Principal, draft: Draft) -> Result<Prompt, ApiError> {
    let tenant = principal.tenant()?;
    check(&draft)?;
    let current = load(deps, tenant).await?;
    let sub = match principal {
        Principal::User { sub, .. } => Some(sub.clone()),
        _ => None,
    };
    let next = Prompt {
        content: draft.content,
        variables: draft.variables,
        version: current.version + 1,
        changed_by: sub,
        updated_at: Some(deps.integrations.now()),
    };
    let guard = if current.version == 0 {
        Condition::ItemNotExists
    } else {
        Condition::Eq("version".into(), AttrValue::n(current.version))
    };
    let result = deps
        .table
        .transact_write(vec![
            TransactOp::Put {
                item: to_item(&prompt_key(tenant), &next)?,
                condition: Some(guard),
            },
            TransactOp::Put {
                item: to_item(&history_key(tenant, next.version), &next)?,
                condition: Some(Condition::ItemNotExists),
            },
        ])
        .await;
    match result {
        Ok(()) => Ok(next),
        Err(TableError::TransactionCanceled { .. }) => Err(ApiError::conflict(
            "the prompt was saved concurrently; reload and retry",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn get(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let current = load(deps, principal.tenant()?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &current))
}

pub async fn put(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let saved = save(deps, &principal, req.json()?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &saved))
}

pub async fn validate(
    _deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    principal.tenant()?;
    let draft: Draft = req.json()?;
    let (errors, variables) = prompt::validate(&draft.content, &draft.variables);
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"valid": errors.is_empty(), "errors": errors, "variables": variables}),
    ))
}

pub async fn history(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let cursor = req.query.get("cursor").map(|c| Cursor::parse(c.as_str()));
    let page = deps
        .table
        .query(
            Query::partition(format!("TENANT#{tenant}"))
                .sort(SortKey::BeginsWith("PROMPT_HISTORY#".into()))
                .backward()
                .limit(50)
                .after(cursor),
        )
        .await?;
    let items = page
        .items
        .iter()
        .map(from_item::<Prompt>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": page.next}),
    ))
}

pub async fn restore(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let body: Restore = req.json()?;
    let old: Prompt = get_document(deps.table.as_ref(), &history_key(tenant, body.version))
        .await?
        .ok_or_else(|| ApiError::not_found("prompt version"))?;
    let saved = save(
        deps,
        &principal,
        Draft {
            content: old.content,
            variables: old.variables,
        },
    )
    .await?;
    Ok(ApiResponse::json(StatusCode::OK, &saved))
}

/// The values the bot config substitutes: profile fields, the catalog as lines, custom
/// variables' defaults.
pub fn values(prompt: &Prompt, profile: &Profile, catalog: &Catalog) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        values.insert(k.to_owned(), v);
    };
    put("business_name", profile.name.clone());
    put(
        "business_type",
        serde_json::to_value(profile.business_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    );
    put("language", profile.language.clone());
    put("timezone", profile.timezone.clone());
    let hours: Vec<String> = profile
        .working_hours
        .iter()
        .map(|(day, spans)| {
            let spans: Vec<String> = spans
                .iter()
                .map(|s| format!("{}–{}", s.open, s.close))
                .collect();
            format!("{day}: {}", spans.join(", "))
        })
        .collect();
    put("working_hours", hours.join("; "));
    for (key, value) in [
        ("phone", &profile.phone),
        ("address", &profile.address),
        ("website", &profile.website),
        ("description", &profile.description),
    ] {
        put(key, value.clone().unwrap_or_default());
    }
    let lines: Vec<String> = catalog
        .items
        .iter()
        .filter(|i| i.available)
        .map(|i| {
            let whole = i.price_minor / 100;
            let cents = i.price_minor % 100;
            format!("{} — {whole}.{cents:02} {}", i.name, i.currency)
        })
        .collect();
    put("catalog", lines.join("\n"));
    for variable in &prompt.variables {
        if variable.source == VariableSource::Custom || !values.contains_key(&variable.key) {
            values.insert(variable.key.clone(), variable.default_value.clone());
        }
    }
    values
}
