//! The dev server as a developer runs it: the real binary, a real port, a data directory
//! that survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use shared::Secret;
use shared::config::{Backend, Config, QueueRole};
use shared::domain::{IntegrationId, TenantId};
use shared::ports::table::{AttrValue, Key};
use shared::ports::{EncryptionContext, OutgoingMessage};
use shared::repo::idempotency::{Claim, IdempotencyStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, None, None).await
}

struct Running {
    child: Child,
    addr: String,
    token: Option<String>,
}

/// Starts the binary on a free port and reads its start-up lines.
async fn spawn(data_dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devserver"))
        .env("PORT", "0")
        .env("DATA_DIR", data_dir)
        .env_remove("LOCAL_JWT_SECRET")
        .env_remove("BACKEND")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut token = None;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.strip_prefix("devserver listening on http://") {
                addr = Some(a.to_owned());
            }
            if let Some((_, t)) = line.split_once("): ") {
                token = Some(t.to_owned());
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap();
    Running {
        child,
        addr: addr.expect("the dev server prints its address"),
        token,
    }
}

async fn terminate(mut running: Running) {
    let pid = running.child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), running.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

#[tokio::test]
async fn binary_answers_health_serves_openapi_and_keeps_its_token_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(dir.path()).await;
    let token = first
        .token
        .clone()
        .expect("a dev token is printed when no secret is set");
    let (status, body) = http_get(&first.addr, "/v1/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "ok"})
    );
    let (status, body) = http_get(&first.addr, "/openapi.yaml").await;
    assert_eq!(status, 200);
    assert!(body.contains("/v1/health"));
    let (status, body) = http_get(&first.addr, "/v1/nowhere").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"NOT_FOUND\""));
    let connect = r#"{"provider":"telegram_bot","name":"Shop bot","config":{"bot_token":"123456:ABCDEFsecretWXYZ"}}"#;
    let (status, body) = http(
        &first.addr,
        "POST",
        "/v1/integrations",
        Some(&token),
        Some(connect),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !body.contains("ABCDEFsecret"),
        "the token is masked: {body}"
    );
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = http(&first.addr, "POST", "/v1/integrations", None, Some(connect)).await;
    assert_eq!(status, 401, "no token, no dashboard");
    terminate(first).await;

    let second = spawn(dir.path()).await;
    let (status, _) = http_get(&second.addr, "/v1/health").await;
    assert_eq!(status, 200);
    // The same data directory, the same dev secret: the token printed by the first run
    // is still accepted below (the printed tokens themselves differ when the restart
    // crosses a second, since they carry an expiry).
    assert!(second.token.is_some());
    let path = format!("/v1/integrations/{id}");
    let (status, body) = http(&second.addr, "GET", &path, Some(&token), None).await;
    assert_eq!(status, 200, "the integration survives the restart: {body}");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["config"]["bot_token"], "••••WXYZ");
    terminate(second).await;
}

#[tokio::test]
async fn a_claim_left_in_progress_by_the_previous_run_is_released_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        backend: Backend::Embedded {
            data_dir: dir.path().to_owned(),
        },
        ..Config::from_lookup(|_| None).unwrap()
    };
    let tenant = TenantId::parse("demo").unwrap();
    let lease = Duration::from_secs(3600);
    let store = |server: &devserver::DevServer| {
        IdempotencyStore::new(server.ports.table.clone(), server.ports.clock.clone())
    };

    let server = devserver::start(&config, 0, Secret::new(b"t".to_vec()))
        .await
        .unwrap();
    let first = store(&server);
    let claim = first.claim(&tenant, "webhook", "update-7", "msg-1", lease);
    assert_eq!(
        claim.await.unwrap(),
        Claim::Acquired {
            data: "msg-1".into()
        }
    );
    let again = first.claim(&tenant, "webhook", "update-7", "msg-2", lease);
    assert_eq!(
        again.await.unwrap(),
        Claim::InProgress {
            data: "msg-1".into()
        },
        "within the run, the lease holds"
    );
    let done = first.claim(&tenant, "webhook", "update-8", "msg-3", lease);
    assert!(matches!(done.await.unwrap(), Claim::Acquired { .. }));
    first
        .complete(&tenant, "webhook", "update-8", "msg-3", None, lease)
        .await
        .unwrap();
    drop(first);
    server.shutdown().await;

    let server = devserver::start(&config, 0, Secret::new(b"t".to_vec()))
        .await
        .unwrap();
    let second = store(&server);
    let takeover = second.claim(&tenant, "webhook", "update-7", "msg-9", lease);
    assert_eq!(
        takeover.await.unwrap(),
        Claim::Acquired {
            data: "msg-1".into()
        },
        "the new run takes the work over with the data the old claim chose"
    );
    let completed = second.claim(&tenant, "webhook", "update-8", "msg-9", lease);
    assert!(
        matches!(completed.await.unwrap(), Claim::Completed { .. }),
        "completed work stays completed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn restarted_on_the_same_data_dir_it_finds_items_messages_and_keys_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        backend: Backend::Embedded {
            data_dir: dir.path().to_owned(),
        },
        ..Config::from_lookup(|_| None).unwrap()
    };
    let secret = || Secret::new(b"test".to_vec());
    let context = EncryptionContext::integration(
        &TenantId::parse("demo").unwrap(),
        &IntegrationId::parse("int1").unwrap(),
    );
    let key = Key::new("TENANT#demo", "PROFILE");

    let server = devserver::start(&config, 0, secret()).await.unwrap();
    let mut item = key.to_item();
    item.insert("name".into(), AttrValue::s("Cafe"));
    server.ports.table.put(item.clone(), None).await.unwrap();
    // A dead-letter queue: no worker consumes it, so the message waits for the restart.
    let queue = server.ports.dead_letter_queue(QueueRole::Outbound).unwrap();
    queue
        .send(OutgoingMessage::new("queued before restart"))
        .await
        .unwrap();
    drop(queue);
    let sealed = server
        .ports
        .secrets()
        .unwrap()
        .seal(b"token", &context)
        .await
        .unwrap();
    server.shutdown().await;

    let server = devserver::start(&config, 0, secret()).await.unwrap();
    assert_eq!(server.ports.table.get(&key).await.unwrap(), Some(item));
    let queue = server.ports.dead_letter_queue(QueueRole::Outbound).unwrap();
    let messages = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "queued before restart");
    let opened = server
        .ports
        .secrets()
        .unwrap()
        .open(&sealed, &context)
        .await
        .unwrap();
    assert_eq!(opened.expose().as_slice(), b"token");
    drop(queue);
    server.shutdown().await;
}
