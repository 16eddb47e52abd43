//! Local HTTP servers that speak a provider's documented API and record every request, so
//! provider clients are tested over the wire against `127.0.0.1:0`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

/// One request the fake provider received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body's bytes as received (for signature checks).
    pub raw: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct FakeServer {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Starts a server answering every request with `respond` (a JSON body).
    pub async fn start(
        respond: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::start_with_headers(move |request| {
            let (status, body) = respond(request);
            (
                status,
                vec![("content-type", "application/json".to_owned())],
                body,
            )
        })
        .await
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The Bot API method a request calls, or Telegram's answer to a bad path (404) or a
/// token other than `valid_token` (401).
fn bot_method<'a>(req: &'a Recorded, valid_token: &str) -> Result<&'a str, (u16, Value)> {
    let Some((token, method)) = req
        .path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Err((
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ));
    };
    if token != valid_token {
        return Err((
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        ));
    }
    Ok(method)
}

/// The Telegram Bot API for one valid token: `getMe`, `setWebhook`, `deleteWebhook`;
/// any other token is answered as Telegram does (401 Unauthorized).
pub fn telegram_bot_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        let method = match bot_method(req, valid_token) {
            Ok(method) => method,
            Err(answer) => return answer,
        };
        match method {
            "getMe" => (
                200,
                json!({"ok": true, "result": {"id": 110201543, "is_bot": true, "first_name": "Shop", "username": "shop_bot"}}),
            ),
            "setWebhook" => {
                if req.body["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("https://"))
                {
                    (
                        200,
                        json!({"ok": true, "result": true, "description": "Webhook was set"}),
                    )
                } else {
                    (
                        400,
                        json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"}),
                    )
                }
            }
            "deleteWebhook" => (
                200,
                json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
            ),
            _ => (
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
            ),
        }
    }
}

/// The MAX Bot API for one valid token: `GET /me`, `POST|DELETE /subscriptions`.
pub fn max_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") != Some(valid_token) {
            return (
                401,
                json!({"code": "verify.token", "message": "Invalid access_token"}),
            );
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/me") => (
                200,
                json!({"user_id": 9007199254740993i64, "name": "Shop", "username": "shop_bot", "is_bot": true}),
            ),
            ("POST", "/subscriptions") => (200, json!({"success": true})),
            ("DELETE", "/subscriptions") => (200, json!({"success": true})),
            _ => (
                404,
                json!({"code": "not.found", "message": "Method not found"}),
            ),
        }
    }
}

/// The WhatsApp Cloud API (Graph) for one valid token: `GET /{phone_number_id}`; another
/// token gets Graph's OAuthException code 190.
pub fn whatsapp_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") != Some(format!("Bearer {valid_token}").as_str()) {
            return (
                401,
                json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "fbtrace_id": "AbC"}}),
            );
        }
        let id = req.path.trim_start_matches('/');
        (
            200,
            json!({"id": id, "display_phone_number": "+7 999 000-00-00", "verified_name": "Shop"}),
        )
    }
}

/// A Bitrix24 portal whose inbound webhook is `/rest/1/{valid_key}/`.
pub fn bitrix24_api(
    valid_key: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        let Some(rest) = req.path.strip_prefix("/rest/1/") else {
            return (
                404,
                json!({"error": "NOT_FOUND", "error_description": "Not found"}),
            );
        };
        let Some((key, method)) = rest.split_once('/') else {
            return (
                404,
                json!({"error": "NOT_FOUND", "error_description": "Not found"}),
            );
        };
        if key != valid_key {
            return (
                401,
                json!({"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}),
            );
        }
        match method {
            "profile.json" => (
                200,
                json!({"result": {"ID": "1", "ADMIN": true, "NAME": "Owner"}, "time": {}}),
            ),
            "crm.lead.add.json" => (200, json!({"result": 4242, "time": {}})),
            _ => (
                400,
                json!({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}),
            ),
        }
    }
}

/// An amoCRM account answering `GET /api/v4/account` for one valid access token.
pub fn amocrm_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") != Some(format!("Bearer {valid_token}").as_str()) {
            return (
                401,
                json!({"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"}),
            );
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v4/account") => (
                200,
                json!({"id": 30000001, "name": "Shop", "subdomain": "shop"}),
            ),
            _ => (
                404,
                json!({"title": "Not Found", "status": 404, "detail": "Not Found"}),
            ),
        }
    }
}

/// A global subscriber that records nothing but never lets a callsite's interest be
/// cached as "never". Without it, a callsite that another test thread hits for the first
/// time while a [`LogCapture`] is being registered can keep a stale "never" (tracing's
/// interest cache is process-wide) and the capture misses that line — a flaky test.
fn undecided_global_subscriber() {
    struct Undecided;
    impl tracing::Subscriber for Undecided {
        fn register_callsite(
            &self,
            _: &'static tracing::Metadata<'static>,
        ) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::TRACE)
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Already set (a test installed its own global subscriber): nothing to do.
        let _ = tracing::subscriber::set_global_default(Undecided);
    });
}

/// Captures every log line written through it (for tests that search logs for secrets).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// A JSON DEBUG-level subscriber writing here; keep the guard for the test's duration.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .json()
            .with_writer(move || sink.clone())
            .finish();
        undecided_global_subscriber();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Every EMF record logged so far (outside Lambda `Metrics::emit` logs `emf = …`).
    pub fn metrics(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|line| {
                line["fields"]["emf"]
                    .as_str()
                    .and_then(|emf| serde_json::from_str(emf).ok())
            })
            .collect()
    }
}

/// The sum of metric `name` over the EMF `records` of `provider`.
pub fn metric_total(records: &[Value], provider: &str, name: &str) -> f64 {
    records
        .iter()
        .filter(|r| r["provider"] == provider)
        .filter_map(|r| r[name].as_f64())
        .sum()
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stores an enabled channel integration of `provider` for a tenant, its config sealed
/// as config-api would; returns its id. Panics on bad input (test set-up only).
#[allow(clippy::expect_used)]
pub async fn store_integration(
    ports: &crate::backend::Ports,
    tenant: &str,
    id: &str,
    provider: &str,
    config: &[(&str, &str)],
    primary: bool,
) -> crate::domain::IntegrationId {
    use crate::domain::registry;
    use crate::repo::integrations::{Integration, IntegrationStatus, Integrations, channel_of};
    let meta = registry::find(provider).expect("a registered provider");
    let config: std::collections::BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let repo = Integrations::new(
        ports.table.clone(),
        ports.secrets().expect("secrets"),
        ports.clock.clone(),
    );
    let id = crate::domain::IntegrationId::parse(id).expect("an integration id");
    let tenant = crate::domain::TenantId::parse(tenant).expect("a tenant id");
    let now = ports.clock.now();
    let integration = Integration {
        id: id.clone(),
        tenant_id: tenant.clone(),
        kind: meta.kind,
        provider: provider.into(),
        channel: channel_of(meta, &config),
        name: provider.into(),
        status: IntegrationStatus::Active,
        is_enabled: true,
        is_primary: primary,
        config: repo.seal(&tenant, &id, &config).await.expect("sealed"),
        last_error: None,
        last_sync_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    repo.insert(&integration).await.expect("stored");
    if primary {
        repo.make_primary(&integration).await.expect("primary");
    }
    id
}

/// Takes every visible message off a queue, as JSON.
#[allow(clippy::expect_used)]
pub async fn drain(queue: &dyn crate::ports::Queue) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let batch = queue
            .receive(10, std::time::Duration::from_secs(300))
            .await
            .expect("receive");
        if batch.is_empty() {
            return out;
        }
        for m in batch {
            out.push(serde_json::from_str(&m.body).unwrap_or(Value::String(m.body.clone())));
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
    }
}

/// Every stored message of a tenant (items `MSG#…`), oldest first per dialog, as JSON.
#[allow(clippy::expect_used)]
pub async fn stored_messages(table: &dyn crate::ports::Table, tenant: &str) -> Vec<Value> {
    use crate::ports::table::{Query, SortKey};
    let items = crate::repo::query_all(
        table,
        Query::partition(format!("TENANT#{tenant}")).sort(SortKey::BeginsWith("MSG#".into())),
    )
    .await
    .expect("query");
    items
        .iter()
        .map(|i| crate::repo::from_item::<Value>(i).expect("an item"))
        .collect()
}

// ---- SMTP ------------------------------------------------------------------------------

/// One message an [`SmtpSink`] accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmtpMessage {
    /// The reverse-path of `MAIL FROM`, without the angle brackets.
    pub from: String,
    /// The forward-paths of every accepted `RCPT TO`, in order.
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// The `(username, password)` the client authenticated with, if it did.
    pub auth: Option<(String, String)>,
}

impl SmtpMessage {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct SmtpSinkState {
    messages: Vec<SmtpMessage>,
    /// Every command line received, in order (AUTH payloads left out).
    commands: Vec<String>,
    /// A reply given to every `RCPT TO` instead of 250.
    rcpt_reply: Option<(u16, String)>,
    /// The only credentials accepted; any others get 535. `None`: any are accepted.
    credentials: Option<(String, String)>,
}

/// A local SMTP server on `127.0.0.1:0`, without TLS: speaks enough of RFC 5321 (EHLO/HELO,
/// AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for an SMTP client, and records
/// every accepted message. It never offers STARTTLS.
pub struct SmtpSink {
    pub host: String,
    pub port: u16,
    state: Arc<Mutex<SmtpSinkState>>,
    _task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state: Arc<Mutex<SmtpSinkState>> = Arc::default();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(stream, state).await;
                });
            }
        });
        Ok(Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            state,
            _task: task,
        })
    }

    /// Answers every `RCPT TO` with `code` and `text` (e.g. 451 or 550) from now on.
    pub fn reply_at_rcpt(&self, code: u16, text: &str) {
        self.lock().rcpt_reply = Some((code, text.to_owned()));
    }

    /// Accepts only these credentials from now on; others get `535 5.7.8`.
    pub fn accept_only(&self, username: &str, password: &str) {
        self.lock().credentials = Some((username.to_owned(), password.to_owned()));
    }

    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.lock().messages.clone()
    }

    /// Every command line received so far (the payloads of AUTH are left out).
    pub fn commands(&self) -> Vec<String> {
        self.lock().commands.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmtpSinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The largest message (and line) the sink takes.
const SMTP_SINK_MAX: usize = 10 << 20;

async fn smtp_session(
    stream: tokio::net::TcpStream,
    state: Arc<Mutex<SmtpSinkState>>,
) -> std::io::Result<()> {
    use base64::Engine as _;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read).take(SMTP_SINK_MAX as u64 * 2);

    // Reads one CRLF-terminated line without its line ending; `None` at end of stream.
    async fn line<R: tokio::io::AsyncBufRead + Unpin>(
        read: &mut R,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        if read.read_until(b'\n', &mut buf).await? == 0 {
            return Ok(None);
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(Some(buf))
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |s: &[u8]| -> Vec<u8> { b64.decode(s.trim_ascii()).unwrap_or_default() };

    write.write_all(b"220 sink.local ESMTP ready\r\n").await?;
    let mut tx = SmtpMessage::default();
    let mut in_tx = false;
    let mut auth: Option<(String, String)> = None;
    while let Some(raw) = line(&mut read).await? {
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (text.trim().to_ascii_uppercase(), String::new()),
        };
        lock().commands.push(if verb == "AUTH" {
            format!("AUTH {}", arg.split(' ').next().unwrap_or_default())
        } else {
            text.clone()
        });
        let reply: String = match verb.as_str() {
            "EHLO" => format!(
                "250-sink.local greets {arg}\r\n250-PIPELINING\r\n250-SIZE {SMTP_SINK_MAX}\r\n\
                 250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n"
            ),
            "HELO" => format!("250 sink.local greets {arg}\r\n"),
            "AUTH" => {
                let mut words = arg.split_whitespace();
                let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
                let initial = words.next().map(str::to_owned);
                let given = match mechanism.as_str() {
                    "PLAIN" => {
                        let payload = match initial {
                            Some(p) => p.into_bytes(),
                            None => {
                                write.write_all(b"334 \r\n").await?;
                                line(&mut read).await?.unwrap_or_default()
                            }
                        };
                        let decoded = decode(&payload);
                        let mut parts = decoded.split(|b| *b == 0).skip(1);
                        let user = parts.next().unwrap_or_default();
                        let pass = parts.next().unwrap_or_default();
                        Some((
                            String::from_utf8_lossy(user).into_owned(),
                            String::from_utf8_lossy(pass).into_owned(),
                        ))
                    }
                    "LOGIN" => {
                        let user = match initial {
                            Some(u) => u.into_bytes(),
                            None => {
                                write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                                line(&mut read).await?.unwrap_or_default()
                            }
                        };
                        write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let pass = line(&mut read).await?.unwrap_or_default();
                        Some((
                            String::from_utf8_lossy(&decode(&user)).into_owned(),
                            String::from_utf8_lossy(&decode(&pass)).into_owned(),
                        ))
                    }
                    _ => None,
                };
                match given {
                    None => "504 5.5.4 Unrecognized authentication type\r\n".into(),
                    Some(creds) => {
                        let accepted = lock().credentials.as_ref().is_none_or(|c| *c == creds);
                        if accepted {
                            auth = Some(creds);
                            "235 2.7.0 Authentication successful\r\n".into()
                        } else {
                            "535 5.7.8 Authentication credentials invalid\r\n".into()
                        }
                    }
                }
            }
            "MAIL" => {
                tx = SmtpMessage {
                    from: smtp_path(&arg, "FROM:"),
                    auth: auth.clone(),
                    ..SmtpMessage::default()
                };
                in_tx = true;
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" if !in_tx => "503 5.5.1 Error: need MAIL command\r\n".into(),
            "RCPT" => {
                let forced = lock().rcpt_reply.clone();
                match forced {
                    Some((code, text)) => format!("{code} {text}\r\n"),
                    None => {
                        tx.recipients.push(smtp_path(&arg, "TO:"));
                        "250 2.1.5 Ok\r\n".into()
                    }
                }
            }
            "DATA" if tx.recipients.is_empty() => "503 5.5.1 Error: need RCPT command\r\n".into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data: Vec<u8> = Vec::new();
                loop {
                    let Some(l) = line(&mut read).await? else {
                        return Ok(());
                    };
                    if l == b"." {
                        break;
                    }
                    let l = l.strip_prefix(b".").unwrap_or(&l);
                    data.extend_from_slice(l);
                    data.extend_from_slice(b"\r\n");
                }
                tx.data = data;
                lock().messages.push(std::mem::take(&mut tx));
                in_tx = false;
                "250 2.0.0 Ok: queued\r\n".into()
            }
            "RSET" => {
                tx = SmtpMessage::default();
                in_tx = false;
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return write.shutdown().await;
            }
            "STARTTLS" => "502 5.5.1 STARTTLS not offered\r\n".into(),
            _ => "502 5.5.2 Error: command not recognized\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b`.
fn smtp_path(arg: &str, prefix: &str) -> String {
    let rest = arg
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map_or(arg, |_| &arg[prefix.len()..])
        .trim_start();
    let path = rest.split_whitespace().next().unwrap_or_default();
    path.trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

// ---- Lead targets ----------------------------------------------------------------------

/// An answer of [`FakeServer::start_with_headers`]: status, headers, body. A
/// `Value::String` body is sent as it is (`text/plain`) unless a JSON `content-type` is
/// given, anything else as JSON.
pub type Reply = (u16, Vec<(&'static str, String)>, Value);

impl FakeServer {
    /// Starts a server answering every request with `respond`, headers included (for
    /// `Retry-After` and non-JSON answers).
    pub async fn start_with_headers(
        respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond = Arc::new(respond);
        let log = requests.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let log = log.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes: Bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    raw: bytes.to_vec(),
                };
                let (status, headers, body) = respond(&recorded);
                log.lock().unwrap_or_else(|p| p.into_inner()).push(recorded);
                let json = headers.iter().any(|(name, value)| {
                    name.eq_ignore_ascii_case("content-type") && value.contains("json")
                });
                let (content_type, body) = match body {
                    Value::String(text) if !json => ("text/plain", text),
                    other => ("application/json", other.to_string()),
                };
                let mut response = Response::new(axum::body::Body::from(body));
                *response.status_mut() =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let map = response.headers_mut();
                if let Ok(v) = content_type.parse() {
                    map.insert(axum::http::header::CONTENT_TYPE, v);
                }
                for (name, value) in headers {
                    if let Ok(v) = value.parse() {
                        map.insert(name, v);
                    }
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base,
            requests,
            _task: task,
        })
    }
}

/// The access token [`amocrm_leads_api`] issues for its valid refresh token.
pub const AMOCRM_FRESH_ACCESS: &str = "amo-fresh-access";
/// The refresh token [`amocrm_leads_api`] issues with it.
pub const AMOCRM_FRESH_REFRESH: &str = "amo-fresh-refresh";

/// An amoCRM account for lead delivery: `POST /oauth2/access_token` (a refresh of
/// `valid_refresh` gives [`AMOCRM_FRESH_ACCESS`] / [`AMOCRM_FRESH_REFRESH`], any other is
/// refused with 400), `POST /api/v4/leads/complex` (deal 31337, contact 4242; a deal
/// without `name` is refused with `validation-errors`) and `POST /api/v4/leads/notes`, for
/// `valid_access` or [`AMOCRM_FRESH_ACCESS`] as the bearer (else 401).
pub fn amocrm_leads_api(
    valid_access: &'static str,
    valid_refresh: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if (req.method.as_str(), req.path.as_str()) == ("POST", "/oauth2/access_token") {
            let b = &req.body;
            return if b["grant_type"] == "refresh_token" && b["refresh_token"] == valid_refresh {
                (
                    200,
                    json!({"token_type": "Bearer", "expires_in": 86400, "access_token": AMOCRM_FRESH_ACCESS, "refresh_token": AMOCRM_FRESH_REFRESH}),
                )
            } else {
                (
                    400,
                    json!({"hint": "Token has been revoked", "title": "Некорректный запрос", "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": 400, "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}),
                )
            };
        }
        let bearer = req.header("authorization").unwrap_or_default();
        if bearer != format!("Bearer {valid_access}")
            && bearer != format!("Bearer {AMOCRM_FRESH_ACCESS}")
        {
            return (
                401,
                json!({"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"}),
            );
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/api/v4/leads/complex") => {
                if req.body[0]["name"].as_str().is_some_and(|n| !n.is_empty()) {
                    (
                        200,
                        json!([{"id": 31337, "contact_id": 4242, "company_id": null, "request_id": ["0"], "merged": false}]),
                    )
                } else {
                    (
                        400,
                        json!({"validation-errors": [{"request_id": "0", "errors": [{"code": "NotBlank", "path": "name", "detail": "This value should not be blank."}]}], "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed"}),
                    )
                }
            }
            ("POST", "/api/v4/leads/notes") => (
                200,
                json!({"_links": {}, "_embedded": {"notes": [{"id": 1, "entity_id": req.body[0]["entity_id"], "request_id": "0"}]}}),
            ),
            _ => (
                404,
                json!({"title": "Not Found", "status": 404, "detail": "Not Found"}),
            ),
        }
    }
}

/// The Telegram Bot API's `sendMessage` for one valid token and one chat the bot is in:
/// message 777; another chat gets "Bad Request: chat not found", another token 401.
pub fn telegram_send_api(
    valid_token: &'static str,
    chat_id: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        let method = match bot_method(req, valid_token) {
            Ok(method) => method,
            Err(answer) => return answer,
        };
        if method != "sendMessage" {
            return (
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
            );
        }
        let to = match &req.body["chat_id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if to != chat_id {
            return (
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            );
        }
        (
            200,
            json!({"ok": true, "result": {"message_id": 777, "date": 1700000000, "chat": {"id": chat_id.parse::<i64>().unwrap_or_default(), "type": "supergroup"}, "text": req.body["text"]}}),
        )
    }
}

/// A table that counts the calls made through it (each one a DynamoDB request), for
/// benchmarks that report table calls per operation.
pub struct CountingTable {
    inner: Arc<dyn crate::ports::Table>,
    pub reads: Arc<std::sync::atomic::AtomicU64>,
    pub writes: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingTable {
    pub fn new(inner: Arc<dyn crate::ports::Table>) -> Self {
        Self {
            inner,
            reads: Arc::default(),
            writes: Arc::default(),
        }
    }

    fn read(&self) {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl crate::ports::Table for CountingTable {
    async fn get(
        &self,
        key: &crate::ports::Key,
    ) -> Result<Option<crate::ports::Item>, crate::ports::TableError> {
        self.read();
        self.inner.get(key).await
    }
    async fn put(
        &self,
        item: crate::ports::Item,
        condition: Option<crate::ports::Condition>,
    ) -> Result<(), crate::ports::TableError> {
        self.write();
        self.inner.put(item, condition).await
    }
    async fn put_or_current(
        &self,
        item: crate::ports::Item,
        condition: crate::ports::Condition,
    ) -> Result<crate::ports::table::PutOutcome, crate::ports::TableError> {
        self.write();
        self.inner.put_or_current(item, condition).await
    }
    async fn update(
        &self,
        key: &crate::ports::Key,
        update: crate::ports::Update,
        condition: Option<crate::ports::Condition>,
    ) -> Result<crate::ports::Item, crate::ports::TableError> {
        self.write();
        self.inner.update(key, update, condition).await
    }
    async fn delete(
        &self,
        key: &crate::ports::Key,
        condition: Option<crate::ports::Condition>,
    ) -> Result<Option<crate::ports::Item>, crate::ports::TableError> {
        self.write();
        self.inner.delete(key, condition).await
    }
    async fn query(
        &self,
        query: crate::ports::Query,
    ) -> Result<crate::ports::Page, crate::ports::TableError> {
        self.read();
        self.inner.query(query).await
    }
    async fn transact_write(
        &self,
        ops: Vec<crate::ports::TransactOp>,
    ) -> Result<(), crate::ports::TableError> {
        self.write();
        self.inner.transact_write(ops).await
    }
}

/// A queue that counts the calls made through it.
pub struct CountingQueue {
    inner: Arc<dyn crate::ports::Queue>,
    pub calls: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingQueue {
    pub fn new(inner: Arc<dyn crate::ports::Queue>) -> Self {
        Self {
            inner,
            calls: Arc::default(),
        }
    }

    fn tick(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl crate::ports::Queue for CountingQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn send(
        &self,
        message: crate::ports::queue::OutgoingMessage,
    ) -> Result<String, crate::ports::QueueError> {
        self.tick();
        self.inner.send(message).await
    }
    async fn send_batch(
        &self,
        messages: Vec<crate::ports::queue::OutgoingMessage>,
    ) -> Result<Vec<String>, crate::ports::QueueError> {
        self.tick();
        self.inner.send_batch(messages).await
    }
    async fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
    ) -> Result<Vec<crate::ports::ReceivedMessage>, crate::ports::QueueError> {
        self.tick();
        self.inner.receive(max, visibility).await
    }
    async fn delete(&self, receipt_handle: &str) -> Result<(), crate::ports::QueueError> {
        self.tick();
        self.inner.delete(receipt_handle).await
    }
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: std::time::Duration,
    ) -> Result<(), crate::ports::QueueError> {
        self.tick();
        self.inner
            .change_visibility(receipt_handle, visibility)
            .await
    }
}

/// An event of `events/{function}/{name}.json` (the files `sam local invoke -e` and
/// `cargo lambda invoke --data-file` use), as JSON.
#[allow(clippy::expect_used)]
pub fn event(function: &str, name: &str) -> Value {
    let path = format!(
        "{}/../events/{function}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("an event file"))
        .expect("an event is JSON")
}

/// An API Gateway v2 (payload 2.0) request event for `method path` as API Gateway hands it
/// to the route's function: `authorizer` is its `requestContext.authorizer` (`{"lambda":
/// …}` after a Lambda authorizer, `{"jwt": {"claims": …}}` after the JWT authorizer),
/// `headers` added to `content-type: application/json`.
pub fn apigw_v2_event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    authorizer: Value,
    body: &str,
) -> Value {
    let route_key = format!("{method} {path}");
    let mut event = serde_json::json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "authorizer": authorizer,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "test"},
            "requestId": "test-request",
            "routeKey": route_key,
            "stage": "$default",
            "time": "23/Nov/2026:09:00:00 +0000",
            "timeEpoch": 1_795_424_400_000_i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    for (name, value) in headers {
        event["headers"][*name] = Value::from(*value);
    }
    event
}

/// The status code of an API Gateway v2 response document.
pub fn status_of(response: &Value) -> u64 {
    response["statusCode"].as_u64().unwrap_or_default()
}

/// The JSON body of an API Gateway v2 response document.
pub fn body_of(response: &Value) -> Value {
    response["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}

/// The mean criterion stored for `<group>/<bench>` in this run, in ns
/// (`$CRITERION_HOME`, else `<target dir>/criterion`, `…/new/estimates.json`); `None` unless
/// written since `since` (a filtered run skips some). For benches that print ratios of
/// criterion's own measurements.
pub fn criterion_mean_ns(group: &str, bench: &str, since: std::time::SystemTime) -> Option<f64> {
    // A bench runs from `<target dir>/<profile>/deps/`.
    let dir = match std::env::var_os("CRITERION_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => std::env::current_exe()
            .ok()?
            .ancestors()
            .nth(3)?
            .join("criterion"),
    };
    let path = dir.join(group).join(bench).join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let estimates: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}
