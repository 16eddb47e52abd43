//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` (each emptied
//! first), from `events/` and `functions/webhook-receiver/tests/fixtures/`, signed with the
//! harness's secrets where the target verifies: `build_corpus [<repo root>] [<out dir>]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use fuzz::input::join;
use fuzz::webhook::{ALT, EXTRA, SECRET, SIGN, credentials};
use fuzz::{NOW_SECS, jwt};
use serde_json::{Value, json};

type Corpus = BTreeMap<String, Vec<(String, Vec<u8>)>>;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == "json"));
    out.sort();
    out
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The webhook bodies of each provider: fixtures, the events' bodies, and made-up ones
/// where no public sample exists (telegram_crm from its pinned contract, web_widget).
fn webhook_bodies(root: &Path) -> BTreeMap<&'static str, Vec<(String, Vec<u8>)>> {
    let fixtures = root.join("functions/webhook-receiver/tests/fixtures");
    let mut out: BTreeMap<&'static str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (dir, provider) in [
        ("telegram", "telegram_bot"),
        ("wappi", "wappi"),
        ("max", "max"),
        ("whatsapp", "whatsapp"),
        ("messenger", "messenger"),
        ("viber", "viber"),
        ("vk", "vk"),
    ] {
        for path in json_files(&fixtures.join(dir)) {
            let name = stem(&path);
            if name.starts_with("error.") {
                continue;
            }
            out.entry(provider).or_default().push((name, read(&path)));
        }
    }
    out.entry("whatsapp").or_default().push((
        "signature-pywa".into(),
        read(&fixtures.join("whatsapp/signature-pywa/body.json")),
    ));
    for path in json_files(&root.join("events/webhook-receiver")) {
        let event: Value = serde_json::from_slice(&read(&path)).unwrap_or_default();
        let (Some(provider), Some(body)) = (
            event
                .pointer("/pathParameters/provider")
                .and_then(Value::as_str),
            event.get("body").and_then(Value::as_str),
        ) else {
            continue;
        };
        if body.is_empty() {
            continue;
        }
        let provider = fuzz_provider(provider);
        out.entry(provider)
            .or_default()
            .push((format!("event-{}", stem(&path)), body.as_bytes().to_vec()));
    }
    // Instagram has no public sample: Messenger's bodies with Instagram's object.
    let instagram: Vec<(String, Vec<u8>)> = out
        .get("messenger")
        .into_iter()
        .flatten()
        .filter_map(|(name, body)| {
            let mut v: Value = serde_json::from_slice(body).ok()?;
            v.get("object")?;
            v["object"] = "instagram".into();
            Some((name.clone(), serde_json::to_vec(&v).ok()?))
        })
        .collect();
    out.insert("instagram", instagram);
    let crm = |kind: &str, extra: Value| {
        let mut v = json!({"event_id": "evt-1", "type": kind, "account_id": "fuzz-account",
            "message": {"id": 501, "date": 1_700_000_000, "edit_date": 1_700_000_100,
                "peer": {"user_id": 1_212_686_911, "username": "ivan", "phone": "+79991234567",
                    "first_name": "Ivan", "last_name": null},
                "text": "hello", "file_url": null, "file_name": null, "file_type": null,
                "reply_to": 500}});
        if let (Some(m), Value::Object(extra)) = (v["message"].as_object_mut(), extra) {
            m.extend(extra);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    };
    out.insert(
        "telegram_crm",
        vec![
            ("doc-message".into(), crm("message", json!({}))),
            ("message-edited".into(), crm("message_edited", json!({}))),
            (
                "message-photo".into(),
                crm("message", json!({"file_url": "https://files.example.com/a.jpg", "file_type": "photo", "file_name": "a.jpg"})),
            ),
            ("other-type".into(), crm("typing", json!({}))),
        ],
    );
    out.insert(
        "web_widget",
        vec![
            (
                "message".into(),
                br#"{"visitor_id":"v_123-abc","message_id":"m1","text":"Hello, do you ship to Riga?","name":"Anna","phone":"+371 2000 0000"}"#.to_vec(),
            ),
            (
                "minimal".into(),
                br#"{"visitor_id":"v","message_id":"1","text":" hi "}"#.to_vec(),
            ),
        ],
    );
    // VK carries its secret in the body.
    if let Some(bodies) = out.get_mut("vk") {
        let updates: Vec<(String, Vec<u8>)> = bodies
            .iter()
            .filter_map(|(name, body)| {
                let v: Value = serde_json::from_slice(body).ok()?;
                let mut update = v.pointer("/updates/0").cloned().unwrap_or(v);
                update.as_object()?;
                update["secret"] = SECRET.into();
                Some((format!("{name}-secret"), serde_json::to_vec(&update).ok()?))
            })
            .collect();
        bodies.extend(updates);
    }
    out
}

fn fuzz_provider(name: &str) -> &'static str {
    webhook_receiver::providers::NAMES
        .into_iter()
        .find(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown provider {name}"))
}

fn webhooks(root: &Path, corpus: &mut Corpus) {
    for (provider, bodies) in webhook_bodies(root) {
        let seeds = corpus.entry(format!("webhook_{provider}")).or_default();
        for (i, (name, body)) in bodies.iter().enumerate() {
            // The real verification path: the credential is in the input.
            let (head, query) = credentials(provider, SECRET, body, false);
            let query: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            seeds.push((format!("{i:02}-{name}"), join(0, &head, &query, body)));
            // The harness signs, and the optional config fields are set.
            let flags = if i % 2 == 0 {
                SIGN | EXTRA
            } else {
                SIGN | EXTRA | ALT
            };
            seeds.push((format!("{i:02}-{name}-signed"), join(flags, &[], &[], body)));
        }
        if matches!(provider, "whatsapp" | "instagram" | "messenger") {
            let query = [
                ("hub.mode", "subscribe"),
                ("hub.verify_token", SECRET),
                ("hub.challenge", "1158201444"),
            ];
            seeds.push(("handshake".into(), join(0, &[], &query, b"")));
        }
    }
}

/// Every event file (HTTP, authorizer, SQS), and a few HTTP ones re-aimed at the echo route.
fn apigw(root: &Path, corpus: &mut Corpus) {
    let seeds = corpus.entry("apigw_v2".into()).or_default();
    let mut files: Vec<PathBuf> = vec![root.join("events/invoke.json")];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("events"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        files.extend(json_files(&dir));
    }
    let mut echoed = 0;
    for path in files {
        let bytes = read(&path);
        let dir = path
            .parent()
            .and_then(Path::file_name)
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{dir}-{}", stem(&path));
        if let Ok(mut event) = serde_json::from_slice::<Value>(&bytes)
            && event.get("rawPath").is_some()
            && event
                .get("body")
                .is_some_and(|b| b.as_str().is_some_and(|b| !b.is_empty()))
            && echoed < 6
        {
            echoed += 1;
            event["rawPath"] = "/v1/echo".into();
            event["requestContext"]["http"]["method"] = "POST".into();
            event["requestContext"]["http"]["path"] = "/v1/echo".into();
            seeds.push((
                format!("{name}-echo"),
                serde_json::to_vec(&event).unwrap_or_default(),
            ));
        }
        seeds.push((name, bytes));
    }
    let binary = json!({
        "version": "2.0", "routeKey": "PUT /v1/echo/{id}", "rawPath": "/v1/echo/1",
        "rawQueryString": "a=1&b=x%20y&a=2", "headers": {"content-type": "application/octet-stream"},
        "requestContext": {"http": {"method": "PUT", "path": "/v1/echo/1"}, "requestId": "r"},
        "isBase64Encoded": true,
        "body": base64::engine::general_purpose::STANDARD.encode([0xff_u8, 0xfe, 0, 1, b'a']),
    });
    seeds.push((
        "echo-binary".into(),
        serde_json::to_vec(&binary).unwrap_or_default(),
    ));
}

/// Each event of a dev-server route, aimed at its route, and a bare seed for every other
/// route.
fn router(root: &Path, corpus: &mut Corpus) {
    let state = fuzz::router::state();
    let mut covered = vec![false; state.routes.len()];
    let seeds = corpus.entry("router".into()).or_default();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("events"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    for path in dirs.iter().flat_map(|d| json_files(d)) {
        let event: Value = serde_json::from_slice(&read(&path)).unwrap_or_default();
        let Some((method, pattern)) = event
            .get("routeKey")
            .and_then(Value::as_str)
            .and_then(|k| k.split_once(' '))
        else {
            continue;
        };
        let Some(index) = state
            .routes
            .iter()
            .position(|(m, p)| m.as_str() == method && *p == pattern)
        else {
            continue;
        };
        covered[index] = true;
        let params: Vec<String> = pattern
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                event
                    .pointer(&format!("/pathParameters/{name}"))
                    .and_then(Value::as_str)
                    .unwrap_or("x")
                    .to_owned()
            })
            .collect();
        let mut line = params.join("|");
        if let Some(q) = event.get("rawQueryString").and_then(Value::as_str)
            && !q.is_empty()
        {
            line.push('?');
            line.push_str(q);
        }
        let body = event
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let body = if event["isBase64Encoded"] == Value::Bool(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_default()
        } else {
            body.as_bytes().to_vec()
        };
        let auth = if event.pointer("/headers/authorization").is_some() {
            0
        } else {
            3
        };
        let mut input = vec![u8::try_from(index).unwrap_or(0), auth];
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(&body);
        let dir = path
            .parent()
            .and_then(Path::file_name)
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        seeds.push((format!("{dir}-{}", stem(&path)), input));
    }
    for (index, (method, pattern)) in state.routes.iter().enumerate() {
        if covered[index] || index > usize::from(u8::MAX) {
            continue;
        }
        let body: &[u8] = if *method == http::Method::GET || *method == http::Method::DELETE {
            b""
        } else {
            b"{}"
        };
        let mut input = vec![u8::try_from(index).unwrap_or(0), 0];
        input.extend_from_slice(b"01jd9a0000000000000000abcd|x\n");
        input.extend_from_slice(body);
        let name = pattern
            .trim_start_matches("/v1/")
            .replace(['/', '{', '}'], "_");
        seeds.push((format!("{index:02}-{method}-{name}"), input));
    }
}

fn small(corpus: &mut Corpus) {
    let mut put = |target: &str, name: &str, bytes: Vec<u8>| {
        corpus
            .entry(target.into())
            .or_default()
            .push((name.into(), bytes));
    };
    for (i, phone) in [
        "+7 999 123-45-67",
        "79991234567",
        "8 (999) 123-45-67",
        "+44 20 7946 0958",
        "16315551181",
        "+371 2000 0000",
        "972544401243",
        "+0000000000",
        "abc",
    ]
    .iter()
    .enumerate()
    {
        put("phone", &format!("{i:02}"), phone.as_bytes().to_vec());
    }
    for (i, prompt) in [
        "discount\n10%\n## Роль\nТы — оператор {{business_name}}.\n## Правила\nОтвечай на {{language}}. Скидка: {{discount}}.",
        "\n\n## Role\nYou sell {{ catalog }} at {{address}}.\n## Rules\nBe brief.",
        "a,b\nx\n{{a}}}{{b}} }} {{",
        "\n\n{{Bad-Name}} and {{x",
    ]
    .iter()
    .enumerate()
    {
        put("prompt", &format!("{i:02}"), prompt.as_bytes().to_vec());
    }
    // The Standard Webhooks test vector (standard-webhooks' Go library).
    put(
        "standard_webhooks",
        "00-vector",
        b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nmsg_p5jXN8AQM9LWM0D4loKWxJek\n1614265330\nv1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n{\"test\": 2432232314}".to_vec(),
    );
    put(
        "standard_webhooks",
        "01-bare-key",
        b"c2VjcmV0\nid\n-1\nv2,xx\n".to_vec(),
    );
    let header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = |extra: Value| {
        let mut v =
            json!({"tenant_id": "acme", "sub": "user-1", "role": "owner", "exp": NOW_SECS + 3600});
        if let (Some(base), Value::Object(extra)) = (v.as_object_mut(), extra) {
            base.extend(extra);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    };
    for (i, payload) in [
        claims(json!({})),
        claims(json!({"nbf": NOW_SECS - 5, "role": "agent"})),
        claims(json!({"exp": NOW_SECS - 1})),
        claims(json!({"nbf": NOW_SECS + 60})),
        claims(json!({"exp": 1.5e9, "nbf": "tomorrow"})),
        claims(json!({"tenant_id": "a#b"})),
    ]
    .iter()
    .enumerate()
    {
        put(
            "jwt_hs256",
            &format!("{i:02}-token"),
            jwt::sign(header, payload, jwt::SECRET).into_bytes(),
        );
        let mut signed = vec![jwt::SIGN];
        signed.extend_from_slice(header);
        signed.push(b'\n');
        signed.extend_from_slice(payload);
        put("jwt_hs256", &format!("{i:02}-harness"), signed);
    }
    put(
        "jwt_hs256",
        "none-alg",
        jwt::sign(br#"{"alg":"none"}"#, &claims(json!({})), b"").into_bytes(),
    );
    let rs256 = format!(
        "{}.{}.c2ln",
        jwt::b64(br#"{"alg":"RS256","kid":"key-1","typ":"JWT"}"#),
        jwt::b64(b"{}")
    );
    let oidc_claims = |extra: Value| {
        let mut v = json!({"iss": jwt::ISSUER, "aud": "dashboard", "exp": NOW_SECS + 300,
            "tenant_id": "acme", "sub": "user-1", "role": "admin"});
        if let (Some(base), Value::Object(extra)) = (v.as_object_mut(), extra) {
            for (k, x) in extra {
                if x.is_null() {
                    base.remove(&k);
                } else {
                    base.insert(k, x);
                }
            }
        }
        serde_json::to_vec(&v).unwrap_or_default()
    };
    for (i, c) in [
        oidc_claims(json!({})),
        oidc_claims(json!({"aud": ["other", "mobile"], "nbf": NOW_SECS + 10})),
        oidc_claims(json!({"aud": null, "client_id": "dashboard"})),
        oidc_claims(json!({"exp": NOW_SECS - 29})),
        oidc_claims(json!({"iss": "https://auth.example.com"})),
        oidc_claims(json!({"role": "god"})),
    ]
    .iter()
    .enumerate()
    {
        let token = if i % 2 == 0 {
            rs256.clone()
        } else {
            jwt::sign(header, b"{}", b"k")
        };
        let mut input = token.into_bytes();
        input.push(b'\n');
        input.extend_from_slice(c);
        put("oidc_claims", &format!("{i:02}"), input);
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let root = args
        .next()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let out = args.next().unwrap_or_else(|| root.join("fuzz/corpus"));
    let mut corpus = Corpus::new();
    webhooks(&root, &mut corpus);
    apigw(&root, &mut corpus);
    router(&root, &mut corpus);
    small(&mut corpus);
    for (target, seeds) in &corpus {
        let dir = out.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for (name, bytes) in seeds {
            let file: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::fs::write(dir.join(file), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        println!("{target}: {} seeds", seeds.len());
    }
}
