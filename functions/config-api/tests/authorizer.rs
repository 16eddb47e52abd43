//! The HTTP API Lambda authorizer config-api hosts for the routes that take a tenant API
//! key or a dashboard JWT, against a local OIDC issuer (discovery + JWKS on a
//! `FakeServer`) whose signing key is the test-only `fixtures/test-issuer-rsa.pem`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::http::lambda::{RequestAuthorizer, dispatch_with_authorizer};
use shared::http::oidc::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use shared::http::{Access, ApiResponse, OidcError, OidcVerifier, Principal, Roles, Scope};
use shared::ports::ManualClock;
use shared::testing::{FakeServer, LogCapture};

mod support;

const KID: &str = "test-key-1";
/// The issuer's signing key (test-only, see `fixtures/README.md`).
const ISSUER_KEY: &str = include_str!("fixtures/test-issuer-rsa.pem");
/// A key the issuer does not publish.
const OTHER_KEY: &str = include_str!("fixtures/test-other-rsa.pem");
/// The public half of `ISSUER_KEY`, as the issuer publishes it.
const JWKS: &str = include_str!("fixtures/test-issuer-jwks.json");
const AUDIENCE: &str = "dashboard";

/// The DER inside a PEM file.
fn der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A local OIDC issuer: discovery at `/.well-known/openid-configuration`, keys at `/jwks`
/// (what it publishes can change, as in a key rotation).
struct Issuer {
    server: FakeServer,
    jwks: Arc<Mutex<Value>>,
}

impl Issuer {
    async fn start() -> Self {
        let jwks: Arc<Mutex<Value>> = Arc::new(Mutex::new(serde_json::from_str(JWKS).unwrap()));
        let published = jwks.clone();
        let server = FakeServer::start(move |req| {
            let host = req.header("host").unwrap_or_default().to_owned();
            match req.path.as_str() {
                "/.well-known/openid-configuration" => (
                    200,
                    json!({
                        "issuer": format!("http://{host}"),
                        "jwks_uri": format!("http://{host}/jwks"),
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }),
                ),
                "/jwks" => (200, published.lock().unwrap().clone()),
                _ => (404, json!({"error": "not found"})),
            }
        })
        .await
        .unwrap();
        Self { server, jwks }
    }

    fn url(&self) -> &str {
        &self.server.base
    }

    fn fetches(&self, path: &str) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Publishes the issuer's key under another key id.
    fn publish_kid(&self, kid: &str) {
        self.jwks.lock().unwrap()["keys"][0]["kid"] = json!(kid);
    }

    fn verifier(&self) -> OidcVerifier {
        OidcVerifier::new(
            shared::providers::http_client(),
            self.url(),
            vec!["other-client".into(), AUDIENCE.into()],
        )
    }

    fn authorizer(&self) -> RequestAuthorizer {
        RequestAuthorizer::new(Some(self.verifier()))
    }

    /// Dashboard claims of a user of `acme`, valid for 10 minutes.
    fn claims(&self) -> Value {
        json!({
            "iss": self.url(),
            "aud": AUDIENCE,
            "iat": now(),
            "exp": now() + 600,
            "tenant_id": "acme",
            "sub": "user-42",
            "role": "admin",
        })
    }

    /// Those claims with some replaced (`null` removes one).
    fn claims_with(&self, changes: Value) -> Value {
        let mut claims = self.claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }
}

fn sign(claims: &Value, kid: &str, pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der(pem))).unwrap()
}

/// A token of the issuer's key.
fn mint(claims: &Value) -> String {
    sign(claims, KID, ISSUER_KEY)
}

/// The authorizer event API Gateway sends for a request with these headers.
fn authorizer_event(headers: &[(&str, &str)]) -> Value {
    let mut event = shared::testing::event("config-api", "authorizer-no-credentials");
    for (name, value) in headers {
        event["headers"][*name] = json!(value);
    }
    event
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn answer(authorizer: &RequestAuthorizer, headers: &[(&str, &str)]) -> Value {
    let router = shared::http::Router::new(None);
    dispatch_with_authorizer(&router, authorizer, authorizer_event(headers))
        .await
        .unwrap()
}

const REFUSED: fn() -> Value = || json!({"isAuthorized": false});

#[tokio::test]
async fn a_valid_token_is_authorized_with_its_dashboard_claims() {
    let issuer = Issuer::start().await;
    let token = mint(&issuer.claims());
    let answer = answer(&issuer.authorizer(), &[("authorization", &bearer(&token))]).await;
    assert_eq!(
        answer,
        json!({
            "isAuthorized": true,
            "context": {"tenant_id": "acme", "sub": "user-42", "role": "admin"},
        })
    );
}

#[tokio::test]
async fn a_cognito_access_token_names_its_audience_in_client_id() {
    let issuer = Issuer::start().await;
    let token = mint(&issuer.claims_with(json!({"aud": null, "client_id": AUDIENCE})));
    let claims = issuer.verifier().verify(&token).await.unwrap();
    assert_eq!(claims.tenant_id.as_str(), "acme");
    let token = mint(&issuer.claims_with(json!({"aud": null, "client_id": "someone-else"})));
    assert_eq!(
        issuer.verifier().verify(&token).await,
        Err(OidcError::Audience)
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_for_its_own_reason() {
    let issuer = Issuer::start().await;
    let good = mint(&issuer.claims());
    let mut parts = good.split('.');
    let (header, _, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // Another tenant's claims under the good token's signature.
    let tampered = format!(
        "{header}.{}.{signature}",
        b64(&serde_json::to_vec(&issuer.claims_with(json!({"tenant_id": "victim"}))).unwrap())
    );
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"test-key-1"}"#),
        b64(&serde_json::to_vec(&issuer.claims()).unwrap())
    );
    // HS256 "signed" with the issuer's public key: the algorithm-confusion attack.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(KID.into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &issuer.claims(),
        &EncodingKey::from_secret(JWKS.as_bytes()),
    )
    .unwrap();
    // Correctly signed, but the payload is no JSON.
    let garbage_body = {
        let message = format!("{header}.{}", b64(b"not json"));
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_rsa_der(&der(ISSUER_KEY)),
            Algorithm::RS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    };
    let mut no_kid = Header::new(Algorithm::RS256);
    no_kid.kid = None;
    let without_kid = jsonwebtoken::encode(
        &no_kid,
        &issuer.claims(),
        &EncodingKey::from_rsa_der(&der(ISSUER_KEY)),
    )
    .unwrap();
    let cases: Vec<(&str, String, OidcError)> = vec![
        (
            "signed by another key under the issuer's kid",
            sign(&issuer.claims(), KID, OTHER_KEY),
            OidcError::Signature,
        ),
        (
            "claims changed after signing",
            tampered,
            OidcError::Signature,
        ),
        (
            "expired",
            mint(&issuer.claims_with(json!({"exp": now() - 120}))),
            OidcError::Expired,
        ),
        (
            "no exp",
            mint(&issuer.claims_with(json!({"exp": null}))),
            OidcError::Malformed,
        ),
        (
            "not valid yet",
            mint(&issuer.claims_with(json!({"nbf": now() + 600}))),
            OidcError::NotYetValid,
        ),
        (
            "another issuer",
            mint(&issuer.claims_with(json!({"iss": "https://evil.example.com"}))),
            OidcError::Issuer,
        ),
        (
            "the issuer with a trailing slash",
            mint(&issuer.claims_with(json!({"iss": format!("{}/", issuer.url())}))),
            OidcError::Issuer,
        ),
        (
            "another audience",
            mint(&issuer.claims_with(json!({"aud": "someone-else"}))),
            OidcError::Audience,
        ),
        (
            "no audience at all",
            mint(&issuer.claims_with(json!({"aud": null}))),
            OidcError::Audience,
        ),
        ("alg none", unsigned, OidcError::Algorithm),
        (
            "HS256 keyed with the public key",
            hs256,
            OidcError::Algorithm,
        ),
        ("no kid", without_kid, OidcError::UnknownKey),
        (
            "no tenant_id",
            mint(&issuer.claims_with(json!({"tenant_id": null}))),
            OidcError::Claims,
        ),
        (
            "a role that does not exist",
            mint(&issuer.claims_with(json!({"role": "root"}))),
            OidcError::Claims,
        ),
        ("not a JWT", "not-a-jwt".into(), OidcError::Malformed),
        ("three garbage parts", "a.b.c".into(), OidcError::Malformed),
        (
            "a signed payload that is no JSON",
            garbage_body,
            OidcError::Malformed,
        ),
    ];
    let verifier = issuer.verifier();
    let authorizer = issuer.authorizer();
    assert!(verifier.verify(&good).await.is_ok(), "the control token");
    for (what, token, reason) in &cases {
        assert_eq!(
            verifier.verify(token).await.err().as_ref(),
            Some(reason),
            "{what}"
        );
        assert_eq!(
            answer(&authorizer, &[("authorization", &bearer(token))]).await,
            REFUSED(),
            "{what}"
        );
    }
    for authorization in ["Bearer", "Basic dXNlcjpwYXNz", "Bearer  "] {
        assert_eq!(
            answer(&authorizer, &[("authorization", authorization)]).await,
            REFUSED(),
            "{authorization}"
        );
    }
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_keys_once_more_then_is_refused() {
    let issuer = Issuer::start().await;
    let verifier = issuer.verifier();
    verifier.verify(&mint(&issuer.claims())).await.unwrap();
    assert_eq!(issuer.fetches("/jwks"), 1);
    let stranger = sign(&issuer.claims(), "retired-key", ISSUER_KEY);
    assert_eq!(verifier.verify(&stranger).await, Err(OidcError::UnknownKey));
    assert_eq!(
        issuer.fetches("/jwks"),
        2,
        "one refetch for the unknown kid"
    );
    for _ in 0..5 {
        assert_eq!(verifier.verify(&stranger).await, Err(OidcError::UnknownKey));
    }
    assert_eq!(
        issuer.fetches("/jwks"),
        2,
        "made-up kids do not send every request to the issuer"
    );
    verifier.verify(&mint(&issuer.claims())).await.unwrap();
    assert_eq!(issuer.fetches("/jwks"), 2);
}

#[tokio::test]
async fn a_rotated_key_is_found_by_one_refetch() {
    let issuer = Issuer::start().await;
    issuer.publish_kid("old-key");
    let verifier = issuer.verifier();
    verifier
        .verify(&sign(&issuer.claims(), "old-key", ISSUER_KEY))
        .await
        .unwrap();
    issuer.publish_kid(KID);
    let claims = verifier.verify(&mint(&issuer.claims())).await.unwrap();
    assert_eq!(claims.sub, "user-42");
    assert_eq!(issuer.fetches("/jwks"), 2);
}

#[tokio::test]
async fn the_keys_are_fetched_once_for_many_tokens_and_again_after_ten_minutes() {
    let issuer = Issuer::start().await;
    let clock = Arc::new(ManualClock::at(jiff::Timestamp::now()));
    let verifier = issuer.verifier().with_clock(clock.clone());
    let token = mint(&issuer.claims_with(json!({"exp": now() + 3600})));
    for _ in 0..25 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(issuer.fetches("/.well-known/openid-configuration"), 1);
    assert_eq!(issuer.fetches("/jwks"), 1);
    clock.advance(jiff::SignedDuration::from_secs(9 * 60));
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer.fetches("/jwks"), 1, "still fresh after 9 minutes");
    clock.advance(jiff::SignedDuration::from_secs(61));
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer.fetches("/jwks"), 2, "fetched again after 10 minutes");
    clock.advance(jiff::SignedDuration::from_secs(3600));
    assert_eq!(verifier.verify(&token).await, Err(OidcError::Expired));
}

#[tokio::test]
async fn an_issuer_that_cannot_be_reached_refuses_tokens() {
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let verifier = OidcVerifier::new(
        shared::providers::http_client(),
        gone.as_str(),
        vec![AUDIENCE.into()],
    );
    let token = sign(
        &json!({"iss": gone, "aud": AUDIENCE, "exp": now() + 600, "tenant_id": "acme", "sub": "u", "role": "owner"}),
        KID,
        ISSUER_KEY,
    );
    assert!(matches!(
        verifier.verify(&token).await,
        Err(OidcError::Keys(_))
    ));
    let authorizer = RequestAuthorizer::new(Some(verifier));
    assert_eq!(
        answer(&authorizer, &[("authorization", &bearer(&token))]).await,
        REFUSED()
    );
}

#[tokio::test]
async fn an_api_key_alone_passes_with_an_empty_context() {
    let issuer = Issuer::start().await;
    let answer = answer(&issuer.authorizer(), &[("x-api-key", "sk_anything")]).await;
    assert_eq!(answer, json!({"isAuthorized": true, "context": {}}));
    assert_eq!(
        issuer.fetches("/jwks"),
        0,
        "an API-key call never needs the keys"
    );
}

#[tokio::test]
async fn with_a_token_and_a_key_the_token_decides() {
    let issuer = Issuer::start().await;
    let authorizer = issuer.authorizer();
    let expired = mint(&issuer.claims_with(json!({"exp": now() - 120})));
    assert_eq!(
        answer(
            &authorizer,
            &[("authorization", &bearer(&expired)), ("x-api-key", "sk_x")]
        )
        .await,
        REFUSED(),
        "a refused token is not rescued by a key"
    );
    let good = mint(&issuer.claims());
    assert_eq!(
        answer(
            &authorizer,
            &[("Authorization", &bearer(&good)), ("X-Api-Key", "sk_x")]
        )
        .await["context"]["tenant_id"],
        "acme"
    );
}

#[tokio::test]
async fn no_credentials_and_an_empty_key_are_refused() {
    let issuer = Issuer::start().await;
    let authorizer = issuer.authorizer();
    assert_eq!(answer(&authorizer, &[]).await, REFUSED());
    assert_eq!(answer(&authorizer, &[("x-api-key", "  ")]).await, REFUSED());
}

#[tokio::test]
async fn without_an_issuer_tokens_are_refused_and_keys_pass() {
    let issuer = Issuer::start().await;
    let authorizer = RequestAuthorizer::new(None);
    let token = mint(&issuer.claims());
    assert_eq!(
        answer(&authorizer, &[("authorization", &bearer(&token))]).await,
        REFUSED()
    );
    assert_eq!(
        answer(&authorizer, &[("x-api-key", "sk_x")]).await["isAuthorized"],
        true
    );
}

#[tokio::test]
async fn neither_the_token_nor_the_key_reaches_the_logs() {
    let issuer = Issuer::start().await;
    let authorizer = issuer.authorizer();
    let good = mint(&issuer.claims());
    let forged = sign(&issuer.claims(), KID, OTHER_KEY);
    let capture = LogCapture::default();
    {
        let _guard = capture.install();
        answer(&authorizer, &[("authorization", &bearer(&good))]).await;
        answer(&authorizer, &[("authorization", &bearer(&forged))]).await;
        answer(&authorizer, &[("authorization", "Bearer not.a.jwt")]).await;
        answer(&authorizer, &[("x-api-key", "sk_live_secret_key_1234")]).await;
    }
    let logs = capture.text();
    assert!(logs.contains("authorizer allowed"), "{logs}");
    assert!(logs.contains("the token's signature is invalid"), "{logs}");
    for token in [&good, &forged] {
        for part in token.split('.') {
            assert!(!logs.contains(part), "a token part is in the logs: {logs}");
        }
    }
    assert!(!logs.contains("not.a.jwt"));
    assert!(!logs.contains("sk_live_secret_key_1234"));
}

/// A route that takes an API key or a dashboard token (as `POST /v1/messages/telegram`
/// does), on config-api's real API-key store, answering who called.
fn whoami_router(app: &support::App) -> shared::http::Router {
    app.router.clone().route(
        Method::POST,
        "/v1/messages/telegram",
        Access::DashboardOrApiKey(Roles::ANY, Scope::MessagesSend),
        |_, principal| async move {
            let who = match principal {
                Principal::User {
                    tenant_id,
                    sub,
                    role,
                } => json!({"user": sub, "tenant": tenant_id.as_str(), "role": role}),
                Principal::ApiKey { tenant_id, .. } => json!({"key_of": tenant_id.as_str()}),
                Principal::Anonymous => json!({}),
            };
            Ok(ApiResponse::json(StatusCode::OK, &who))
        },
    )
}

/// The HTTP event API Gateway sends the route after the authorizer allowed it with
/// `context`.
fn routed_event(headers: &[(&str, &str)], context: &Value) -> Value {
    shared::testing::apigw_v2_event(
        "POST",
        "/v1/messages/telegram",
        headers,
        json!({"lambda": context}),
        r#"{"client_id":"c1","text":"hi"}"#,
    )
}

#[tokio::test]
async fn a_route_behind_the_authorizer_serves_the_tokens_user_and_never_mixes_tenants() {
    let issuer = Issuer::start().await;
    let authorizer = issuer.authorizer();
    let app = support::app();
    let other_key = app.api_key("other", json!(["messages:send"])).await;
    let router = whoami_router(&app);
    let through = |headers: Vec<(&'static str, String)>| {
        let router = router.clone();
        let authorizer = &authorizer;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let decision =
                dispatch_with_authorizer(&router, authorizer, authorizer_event(&headers))
                    .await
                    .unwrap();
            if decision["isAuthorized"] != true {
                return (0, decision);
            }
            let answer = dispatch_with_authorizer(
                &router,
                authorizer,
                routed_event(&headers, &decision["context"]),
            )
            .await
            .unwrap();
            (
                answer["statusCode"].as_u64().unwrap(),
                serde_json::from_str(answer["body"].as_str().unwrap()).unwrap(),
            )
        }
    };
    let token = mint(&issuer.claims());

    // The dashboard user of acme, even with another tenant's valid key beside the token.
    let (status, who) = through(vec![
        ("authorization", bearer(&token)),
        ("x-api-key", other_key.clone()),
    ])
    .await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        who,
        json!({"user": "user-42", "tenant": "acme", "role": "admin"})
    );

    // The key alone: its own tenant, checked by the function.
    let (status, who) = through(vec![("x-api-key", other_key.clone())]).await;
    assert_eq!((status, who), (200, json!({"key_of": "other"})));

    // A key that does not exist passes the authorizer and is refused by the function.
    let (status, body) = through(vec![("x-api-key", "sk_made_up".into())]).await;
    assert_eq!(status, 401, "{body}");

    // A token of another tenant is that tenant's user, never acme's.
    let theirs = mint(&issuer.claims_with(json!({"tenant_id": "other", "role": "agent"})));
    let (_, who) = through(vec![("authorization", bearer(&theirs))]).await;
    assert_eq!(who["tenant"], "other");

    // A forged token never reaches the route.
    let forged = sign(&issuer.claims(), KID, OTHER_KEY);
    let (status, decision) = through(vec![("authorization", bearer(&forged))]).await;
    assert_eq!((status, decision), (0, REFUSED()));
}

#[tokio::test]
async fn an_authorizer_context_that_is_no_valid_user_is_no_user() {
    let app = support::app();
    let router = whoami_router(&app);
    let authorizer = RequestAuthorizer::new(None);
    for context in [
        json!({}),
        json!({"tenant_id": "a#b", "sub": "u", "role": "owner"}),
        json!({"tenant_id": "acme", "sub": "u", "role": "root"}),
        json!({"tenant_id": "acme", "role": "owner"}),
        json!({"tenant_id": 7, "sub": "u", "role": "owner"}),
    ] {
        let answer = dispatch_with_authorizer(&router, &authorizer, routed_event(&[], &context))
            .await
            .unwrap();
        assert_eq!(answer["statusCode"], 401, "{context}");
    }
}
