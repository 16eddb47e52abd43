//! Every HTTP route of the dev server (`devserver::router`) over an embedded backend in a
//! temporary directory, with a valid dashboard token: the input picks the route, the role,
//! the path parameters, the query and the JSON body. Invariant: no panic, no 5xx.
//!
//! Input: `<route byte><auth byte><params and query line>\n<body>`:
//! * route byte: an index into the router's routes (modulo their number);
//! * auth byte: bits 0-1 the role (owner, admin, agent, no token), bit 2 another tenant,
//!   bit 3 an `Idempotency-Key` header;
//! * the line: the path parameters separated by `|`, then optionally `?` and a query.
//!
//! Provider base URLs point at 127.0.0.1:9; `infra/fuzz.sh` runs this target in a network
//! namespace of its own (`unshare -n`), so nothing it does leaves the machine.
//!
//! The backend is opened lazily in each process afl-fuzz forks (a redb file must not be
//! shared by forked processes), in `$FUZZ_DATA_DIR/<pid>`; directories of processes that
//! are gone are removed then.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use http::{Method, StatusCode};
use shared::Secret;
use shared::backend;
use shared::config::Config;
use shared::domain::TenantId;
use shared::http::auth::{self, JwtClaims, Role};
use shared::http::{ApiResponse, Router};
use shared::ports::SystemClock;

use crate::input;

pub const JWT_SECRET: &[u8] = b"fuzz-dev-jwt-secret";
pub const TENANTS: [&str; 2] = ["acme", "globex"];
/// Where providers (and SMTP) are said to be: nothing listens there.
const NOWHERE: &str = "http://127.0.0.1:9";

pub struct State {
    pub runtime: tokio::runtime::Runtime,
    pub router: Router,
    pub routes: Vec<(Method, &'static str)>,
    /// `[tenant][role]` tokens.
    tokens: Vec<Vec<String>>,
    _dir: PathBuf,
}

fn data_root() -> PathBuf {
    std::env::var_os("FUZZ_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("fuzz-router"))
}

/// Removes the data directories of processes that no longer run.
fn sweep(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn config(data_dir: &std::path::Path) -> Config {
    let data_dir = data_dir.display().to_string();
    Config::from_lookup(|name| {
        Some(match name {
            "BACKEND" => "embedded".to_owned(),
            "DATA_DIR" => data_dir.clone(),
            "TELEGRAM_API_BASE" | "WAPPI_API_BASE" | "MAX_API_BASE" | "WHATSAPP_API_BASE"
            | "VIBER_API_BASE" | "VK_API_BASE" | "AMOCRM_API_BASE" | "PUBLIC_BASE_URL" => {
                NOWHERE.to_owned()
            }
            "SMTP_HOST" => "127.0.0.1".to_owned(),
            "SMTP_PORT" => "9".to_owned(),
            _ => return None,
        })
    })
    .unwrap_or_else(|e| panic!("fuzz config: {e}"))
}

fn token(tenant: &str, role: Role) -> String {
    let claims = JwtClaims {
        tenant_id: TenantId::parse(tenant).unwrap_or_else(|e| panic!("tenant: {e}")),
        sub: format!("fuzz-{}", role.as_str()),
        role,
    };
    // Valid until 2100.
    auth::mint_hs256(&claims, 4_102_444_800, &Secret::new(JWT_SECRET.to_vec()))
}

/// This process's router and backend (see the module doc).
pub fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let root = data_root();
        sweep(&root);
        let dir = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let ports = backend::embedded(&dir, Arc::new(SystemClock))
            .unwrap_or_else(|e| panic!("embedded backend in {}: {e}", dir.display()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        let router = {
            let _guard = runtime.enter();
            devserver::router(&ports, &config(&dir)).unwrap_or_else(|e| panic!("router: {e}"))
        };
        let routes = router
            .access_table()
            .into_iter()
            .map(|(method, pattern, _)| (method, pattern))
            .collect();
        let tokens = TENANTS
            .iter()
            .map(|t| {
                [Role::Owner, Role::Admin, Role::Agent]
                    .into_iter()
                    .map(|r| token(t, r))
                    .collect()
            })
            .collect();
        State {
            runtime,
            router,
            routes,
            tokens,
            _dir: dir,
        }
    })
}

/// Percent-encodes everything but unreserved characters (and `=`/`&` in a query).
fn encode(raw: &[u8], query: bool) -> String {
    let mut out = String::new();
    for &b in raw {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (query && matches!(b, b'=' | b'&' | b'%' | b'+'))
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The route's path with its `{params}` filled from `values`.
pub fn fill(pattern: &str, values: &[&[u8]]) -> String {
    let mut next = values.iter();
    pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                match next.next() {
                    Some(v) if !v.is_empty() => encode(v, false),
                    _ => "x".to_owned(),
                }
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn request(
    state: &State,
    data: &[u8],
) -> Option<(Method, String, http::request::Parts, bytes::Bytes)> {
    let [route, auth, rest @ ..] = data else {
        return None;
    };
    let (method, pattern) = state
        .routes
        .get(*route as usize % state.routes.len())?
        .clone();
    let (line, body) = input::line(rest);
    let (params, query) = match line.iter().position(|&b| b == b'?') {
        Some(at) => (&line[..at], Some(&line[at + 1..])),
        None => (line, None),
    };
    let values: Vec<&[u8]> = params.split(|&b| b == b'|').collect();
    let mut uri = fill(pattern, &values);
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(&encode(query, true));
    }
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(&uri)
        .header("content-type", "application/json");
    let role = (auth & 0b11) as usize;
    if role < 3 {
        let tenant = usize::from(auth & 0b100 != 0);
        builder = builder.header(
            "authorization",
            format!("Bearer {}", state.tokens[tenant][role]),
        );
    }
    if auth & 0b1000 != 0 {
        builder = builder.header("idempotency-key", "fuzz-idempotency-key");
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some((
        method,
        pattern.to_owned(),
        parts,
        bytes::Bytes::copy_from_slice(body),
    ))
}

pub fn run(data: &[u8]) {
    let state = state();
    let Some((method, pattern, parts, body)) = request(state, data) else {
        return;
    };
    let uri = parts.uri.clone();
    let req = devserver::to_api_request(
        parts,
        body.clone(),
        &Secret::new(JWT_SECRET.to_vec()),
        jiff::Timestamp::now().as_second(),
    );
    let response: ApiResponse = state.runtime.block_on(state.router.handle(req));
    assert!(
        response.status < StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {pattern} ({uri}) answered {}: {}\nrequest body: {}",
        response.status,
        String::from_utf8_lossy(&response.body),
        String::from_utf8_lossy(&body),
    );
}
