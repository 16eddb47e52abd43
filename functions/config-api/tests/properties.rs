//! Seed 003's correctness properties as proptests over the real router on the embedded
//! backend (100 cases each).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::json;

mod support;

use support::app;

fn run<F: std::future::Future<Output = Result<(), TestCaseError>>>(
    f: F,
) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A secret as tenants paste them: 12–40 characters, never shorter than the 4 shown.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9:_-]{12,40}"
}

/// (provider, secret field) pairs with one required secret and nothing else required.
const ONE_SECRET: &[(&str, &str)] = &[
    ("telegram_bot", "bot_token"),
    ("viber", "auth_token"),
    ("hubspot", "api_key"),
    ("iiko", "api_login"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Property 3 + 9: the stored item never holds a secret in the clear, and reading back
    /// shows it masked to its last 4 characters; sending the masked config back keeps it.
    #[test]
    fn secrets_are_sealed_masked_and_survive_a_masked_round_trip(pick in 0usize..4, value in secret()) {
        run(async {
            let app = app();
            let (provider, field) = ONE_SECRET[pick];
            let (status, created) = app.connect("acme", json!({"provider": provider, "config": {field: value}})).await;
            prop_assert_eq!(status, StatusCode::CREATED);
            let dump = app.dump().await;
            prop_assert!(!dump.contains(&value), "plaintext secret stored");
            let tail: String = value.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            prop_assert_eq!(created["config"][field].as_str().unwrap(), format!("••••{tail}"));
            let path = format!("/v1/integrations/{}", created["id"].as_str().unwrap());
            let (_, patched) = app.call("acme", Method::PATCH, &path, Some(json!({"config": created["config"]}))).await;
            prop_assert_eq!(&patched["config"], &created["config"]);
            let config = app.bot_config("acme").await;
            let kind = if provider == "telegram_bot" || provider == "viber" { "channels" } else { "crm" };
            prop_assert_eq!(config[kind][0]["credentials"][field].as_str().unwrap(), value.as_str());
            Ok(())
        })?;
    }

    /// Property 2 + 4: the bot config holds exactly the enabled integrations, each with its
    /// credentials; a disconnected one is gone.
    #[test]
    fn bot_config_holds_exactly_the_enabled_integrations(tokens in proptest::collection::vec(secret(), 1..5), off in proptest::collection::vec(any::<bool>(), 5)) {
        run(async {
            let app = app();
            let mut expected = Vec::new();
            for (i, token) in tokens.iter().enumerate() {
                let (_, created) = app.connect("acme", json!({"provider": "viber", "name": format!("v{i}"), "config": {"auth_token": token}})).await;
                let id = created["id"].as_str().unwrap().to_owned();
                if off[i] {
                    app.call("acme", Method::DELETE, &format!("/v1/integrations/{id}"), None).await;
                } else {
                    expected.push((id, token.clone()));
                }
            }
            let config = app.bot_config("acme").await;
            let mut got: Vec<(String, String)> = config["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["id"].as_str().unwrap().to_owned(), c["credentials"]["auth_token"].as_str().unwrap().to_owned()))
                .collect();
            got.sort();
            expected.sort();
            prop_assert_eq!(got, expected);
            Ok(())
        })?;
    }

    /// Property 8: tenant B never sees or changes tenant A's integrations, whatever ids it tries.
    #[test]
    fn another_tenant_never_reaches_an_integration(count in 1usize..4, token in secret()) {
        run(async {
            let app = app();
            let mut ids = Vec::new();
            for _ in 0..count {
                let (_, created) = app.connect("tenant-a", json!({"provider": "viber", "config": {"auth_token": token}})).await;
                ids.push(created["id"].as_str().unwrap().to_owned());
            }
            for id in &ids {
                let path = format!("/v1/integrations/{id}");
                prop_assert_eq!(app.call("tenant-b", Method::GET, &path, None).await.0, StatusCode::NOT_FOUND);
                prop_assert_eq!(app.call("tenant-b", Method::PATCH, &path, Some(json!({"name": "x"}))).await.0, StatusCode::NOT_FOUND);
                prop_assert_eq!(app.call("tenant-b", Method::POST, &format!("{path}/test"), None).await.0, StatusCode::NOT_FOUND);
                prop_assert_eq!(app.call("tenant-b", Method::DELETE, &path, None).await.0, StatusCode::NOT_FOUND);
            }
            let (_, list) = app.call("tenant-b", Method::GET, "/v1/integrations", None).await;
            prop_assert_eq!(&list["items"], &json!([]));
            let config = app.bot_config("tenant-b").await;
            prop_assert_eq!(&config["channels"], &json!([]));
            let (_, a_list) = app.call("tenant-a", Method::GET, "/v1/integrations", None).await;
            prop_assert_eq!(a_list["items"].as_array().unwrap().len(), count, "A's integrations are untouched");
            Ok(())
        })?;
    }

    /// Property 7: restoring any saved version brings back exactly its content.
    #[test]
    fn restoring_any_version_brings_back_its_content(bodies in proptest::collection::vec("[a-zA-Zа-яА-Я0-9 .,!?]{0,60}", 1..6), pick in any::<prop::sample::Index>()) {
        run(async {
            let app = app();
            let contents: Vec<String> = bodies.iter().map(|b| format!("## Роль\n{b}\n## Правила\n{{{{business_name}}}}")).collect();
            for content in &contents {
                let (status, _) = app.call("acme", Method::PUT, "/v1/prompt", Some(json!({"content": content}))).await;
                prop_assert_eq!(status, StatusCode::OK);
            }
            let version = pick.index(contents.len()) + 1;
            let (_, restored) = app.call("acme", Method::POST, "/v1/prompt/restore", Some(json!({"version": version}))).await;
            prop_assert_eq!(restored["content"].as_str().unwrap(), contents[version - 1].as_str());
            prop_assert_eq!(restored["version"].as_u64().unwrap(), contents.len() as u64 + 1);
            Ok(())
        })?;
    }

    /// Property 12: deleting a tenant leaves none of its items and all of another's.
    #[test]
    fn deleting_a_tenant_removes_all_of_it_and_nothing_else(count in 0usize..4, keys in 0usize..3, token in secret()) {
        run(async {
            let app = app();
            for tenant in ["gone", "kept"] {
                for _ in 0..count {
                    app.call(tenant, Method::POST, "/v1/integrations", Some(json!({"provider": "viber", "config": {"auth_token": token}}))).await;
                }
                for _ in 0..keys {
                    app.call(tenant, Method::POST, "/v1/api-keys", Some(json!({"name": "k", "scopes": ["config:read"]}))).await;
                }
                app.call(tenant, Method::PUT, "/v1/catalog", Some(json!({"items": [{"name": "x", "price_minor": 1, "currency": "RUB"}]}))).await;
            }
            let owned = |dump: &str, t: &str| dump.matches(&format!("TENANT#{t}")).count() + dump.matches(&format!("S(\"{t}\")")).count();
            let before = owned(&app.dump().await, "kept");
            let (status, _) = app.call("gone", Method::DELETE, "/v1/tenant", None).await;
            prop_assert_eq!(status, StatusCode::OK);
            let after = app.dump().await;
            prop_assert_eq!(owned(&after, "gone"), 0);
            prop_assert_eq!(owned(&after, "kept"), before);
            Ok(())
        })?;
    }
}
