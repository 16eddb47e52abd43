//! Cold start, peak memory and size of every function against hello-world Lambdas (not a
//! test: prints ratios measured in the same run, asserts nothing).
//!
//! A local Lambda Runtime API — the part of it the runtime client speaks: the next
//! invocation, its response or error, an init error — serves one process at a time. Each
//! of the 8 function binaries and the two baselines built in this workspace,
//! `hello-lambda` (the smallest `lambda_runtime` function) and `hello-sdk` (the same, plus
//! the AWS SDK clients every function builds at init), is spawned from `target/release/`
//! `BENCH_RUNS` times (20 by default; the binaries take turns, after one warm-up round) with
//! the environment Lambda and `template.yaml` give it, and measured:
//!
//! * init: spawn → the first `GET /next` (Lambda's "Init Duration");
//! * first invocation: the event handed out → its response posted (HTTP functions get
//!   `events/shared/health-get.json`, the SQS-only ones `{"Records":[]}`: no AWS call);
//! * cold start: spawn → the first response (the two above);
//! * the same with a first event that makes real DynamoDB requests (rows marked `+ddb`):
//!   `hello-sdk` one `GetItem`, telegram-send a send with an API key that is not stored,
//!   inbox-api the dialog list, webhook-receiver an update for an integration that is not
//!   stored — against a local server speaking
//!   DynamoDB's JSON protocol (empty answers), which counts the requests, so a client
//!   built lazily pays inside the measured time;
//! * peak RSS: `VmHWM` of the process after its response, before it is killed;
//! * the size of the stripped release binary.
//!
//! Times are medians, compared with `hello-lambda` and `hello-sdk` (the goals are ratios to
//! `hello-sdk`); size and RSS with `hello-sdk`.
//!
//! Run: `cargo bench -p bench --bench cold_start`. It first runs
//! `cargo build --release --bins -p <the 8 functions> -p bench` (`BENCH_NO_BUILD=1` skips that
//! and uses the binaries as they are).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bench::{load_average, machine};
use tokio::sync::{oneshot, watch};

/// Every function binary: (binary and package name, answers an API Gateway event).
const FUNCTIONS: [(&str, bool); 8] = [
    ("config-api", true),
    ("webhook-receiver", true),
    ("telegram-send", true),
    ("telegram-crm-send", true),
    ("outbound-worker", false),
    ("inbox-api", true),
    ("auto-integration", true),
    ("lead-delivery", false),
];
const HELLO: &str = "hello-lambda";
const HELLO_SDK: &str = "hello-sdk";
/// Issue 19's goals, as ratios to `hello-sdk`.
const INIT_GOAL: f64 = 1.15;
const COLD_START_GOAL: f64 = 1.2;
const RSS_GOAL_MIB: f64 = 32.0;
const SIZE_GOAL: f64 = 1.3;
/// An integration id that no table holds (a valid ULID, so the receiver looks it up).
const UNKNOWN_INTEGRATION: &str = "01JD5Z0000000000000000BENC";
/// Longest wait for one cold start before the run counts as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
const API_PREFIX: &str = "/2018-06-01/runtime";
const QUEUES: [&str; 4] = ["outbound", "lead-delivery", "inbound-events", "lead-intake"];
const QUEUE_VARS: [&str; 4] = ["OUTBOUND", "LEAD_DELIVERY", "INBOUND_EVENTS", "LEAD_INTAKE"];

/// What the API saw of the current run.
#[derive(Default)]
struct Run {
    request_id: String,
    event: Bytes,
    handed_out: Option<Instant>,
    responded: Option<Instant>,
    /// The response body, or what the process reported as an error.
    outcome: Option<Result<Bytes, String>>,
    done: Option<oneshot::Sender<()>>,
}

struct Api {
    run: Mutex<Run>,
    /// Bumped for every run: a `GET /next` that waits for a second event gives up then.
    generation: watch::Sender<u64>,
}

impl Api {
    fn finish(&self, outcome: Result<Bytes, String>) {
        let mut run = self.run.lock().unwrap();
        run.responded = Some(Instant::now());
        run.outcome = Some(outcome);
        if let Some(done) = run.done.take() {
            let _ = done.send(());
        }
    }
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    let now = Instant::now();
    let handout = {
        let mut run = api.run.lock().unwrap();
        if run.handed_out.is_none() && run.outcome.is_none() {
            run.handed_out = Some(now);
            Some((run.request_id.clone(), run.event.clone()))
        } else {
            None
        }
    };
    let Some((request_id, event)) = handout else {
        // The process asks for its second event: it never comes (the process is killed).
        let mut generation = api.generation.subscribe();
        let _ = generation.changed().await;
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("lambda-runtime-aws-request-id", request_id);
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-central-1:000000000000:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, event).into_response()
}

async fn response(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let expected = api.run.lock().unwrap().request_id == id;
    api.finish(if expected {
        Ok(body)
    } else {
        Err(format!("response for an unknown request id {id}"))
    });
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    api.finish(Err(format!(
        "invocation {id} failed: {}",
        String::from_utf8_lossy(&body)
    )));
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    api.finish(Err(format!(
        "init failed: {}",
        String::from_utf8_lossy(&body)
    )));
    StatusCode::ACCEPTED
}

struct Target {
    /// The binary (and Lambda function name).
    name: &'static str,
    /// The row's name: `name`, with ` +ddb` for a first event that calls DynamoDB.
    label: String,
    path: PathBuf,
    event: Bytes,
    /// Whether the first event calls DynamoDB (the local stub answers it).
    calls_dynamodb: bool,
    size: u64,
    samples: Vec<Sample>,
    failed: Option<String>,
}

#[derive(Clone, Copy)]
struct Sample {
    init: Duration,
    invoke: Duration,
    total: Duration,
    rss_kib: u64,
    dynamodb_requests: usize,
}

/// A local DynamoDB that holds nothing: `GetItem` finds no item, `Query` no items, every
/// other operation succeeds empty. It counts the requests.
#[derive(Default)]
struct EmptyDynamo {
    requests: std::sync::atomic::AtomicUsize,
}

async fn dynamodb_answer(State(db): State<Arc<EmptyDynamo>>, headers: HeaderMap) -> Response {
    db.requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("DynamoDB_20120810."))
        .unwrap_or_default();
    let body = match operation {
        "Query" | "Scan" => r#"{"Count":0,"Items":[],"ScannedCount":0}"#,
        "BatchGetItem" => r#"{"Responses":{},"UnprocessedKeys":{}}"#,
        _ => "{}",
    };
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.0")],
        body,
    )
        .into_response()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `target/release/` (or `$CARGO_TARGET_DIR/release/`): this bench runs from its `deps/`.
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn build(root: &Path) {
    if std::env::var_os("BENCH_NO_BUILD").is_some() {
        println!("BENCH_NO_BUILD set: using the release binaries as they are");
        return;
    }
    let mut args: Vec<String> = vec!["build".into(), "--release".into(), "--bins".into()];
    for (name, _) in FUNCTIONS {
        args.extend(["-p".into(), name.into()]);
    }
    args.extend(["-p".into(), "bench".into()]);
    println!("building: cargo {}", args.join(" "));
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "the release build failed");
    println!(
        "release build took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The environment Lambda (and `template.yaml`) gives a function; nothing inherited.
fn spawn(
    target: &Target,
    api_addr: &str,
    dynamodb_addr: &str,
    stderr: &Path,
) -> std::io::Result<Child> {
    // Nothing listens on the discard port: an unplanned call to AWS fails at once, loudly.
    let endpoint = if target.calls_dynamodb {
        format!("http://{dynamodb_addr}")
    } else {
        "http://127.0.0.1:9".to_owned()
    };
    let mut cmd = Command::new(&target.path);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("TZ", ":UTC")
        .env("LANG", "en_US.UTF-8")
        .env("AWS_LAMBDA_RUNTIME_API", api_addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", target.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", target.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]bench")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("BACKEND", "aws")
        .env("TABLE_NAME", "bench")
        .env("KMS_KEY_ID", "alias/bench")
        .env("AWS_REGION", "eu-central-1")
        .env("AWS_DEFAULT_REGION", "eu-central-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCHBENCHBENCH0")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "bench/secret/bench/secret/bench/secret00",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint);
    for (var, queue) in QUEUE_VARS.iter().zip(QUEUES) {
        let url = format!("http://127.0.0.1:9/000000000000/bench-{queue}");
        cmd.env(format!("{var}_QUEUE_URL"), &url)
            .env(format!("{var}_DLQ_URL"), format!("{url}-dlq"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr)?)
        .spawn()
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Servers {
    api: Arc<Api>,
    api_addr: String,
    dynamodb: Arc<EmptyDynamo>,
    dynamodb_addr: String,
}

async fn measure(
    servers: &Servers,
    target: &Target,
    seq: usize,
    stderr: &Path,
) -> Result<Sample, String> {
    let api = &servers.api;
    servers
        .dynamodb
        .requests
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let (done_tx, mut done_rx) = oneshot::channel();
    {
        let mut run = api.run.lock().unwrap();
        *run = Run {
            request_id: format!("bench-{seq:05}"),
            event: target.event.clone(),
            done: Some(done_tx),
            ..Run::default()
        };
    }
    api.generation.send_modify(|g| *g += 1);
    let spawned = Instant::now();
    let mut child = spawn(target, &servers.api_addr, &servers.dynamodb_addr, stderr)
        .map_err(|e| format!("spawn: {e}"))?;
    let waited = loop {
        match tokio::time::timeout(Duration::from_millis(20), &mut done_rx).await {
            Ok(_) => break Ok(()),
            Err(_) if spawned.elapsed() > RUN_TIMEOUT => break Err("timed out".to_owned()),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    break Err(format!("exited before answering: {status}"));
                }
            }
        }
    };
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    waited?;
    let run = api.run.lock().unwrap();
    let body = match run.outcome.clone() {
        Some(Ok(body)) => body,
        Some(Err(e)) => return Err(e),
        None => return Err("no outcome".into()),
    };
    let dynamodb_requests = servers
        .dynamodb
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let answered = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .map(|v| {
            // A first event that calls DynamoDB finds nothing: a 404 or a refusal is its
            // answer, as long as the requests were made.
            target.calls_dynamodb && dynamodb_requests > 0
                || v.get("statusCode").and_then(serde_json::Value::as_u64) == Some(200)
                || v.get("batchItemFailures").is_some()
        })
        .unwrap_or(false);
    if !answered {
        return Err(format!(
            "unexpected response {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let (Some(handed_out), Some(responded)) = (run.handed_out, run.responded) else {
        return Err("the response came before the event".into());
    };
    Ok(Sample {
        init: handed_out - spawned,
        invoke: responded - handed_out,
        total: responded - spawned,
        rss_kib: rss.ok_or("the process was gone before its RSS was read")?,
        dynamodb_requests,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

struct Summary {
    init: f64,
    invoke: f64,
    total: f64,
    rss_mib: f64,
    size_mib: f64,
    dynamodb_requests: f64,
}

fn summary(target: &Target) -> Summary {
    let pick = |f: fn(&Sample) -> f64| median(target.samples.iter().map(f).collect());
    Summary {
        init: pick(|s| ms(s.init)),
        invoke: pick(|s| ms(s.invoke)),
        total: pick(|s| ms(s.total)),
        rss_mib: pick(|s| s.rss_kib as f64 / 1024.0),
        size_mib: target.size as f64 / (1024.0 * 1024.0),
        dynamodb_requests: pick(|s| s.dynamodb_requests as f64),
    }
}

fn main() {
    let root = workspace_root();
    build(&root);
    let release = release_dir();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let event = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let health = Bytes::from(event("events/shared/health-get.json"));
    let sqs = Bytes::from_static(br#"{"Records":[]}"#);
    let target = |name: &'static str, event: Bytes, calls_dynamodb: bool| {
        let path = release.join(name);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (build it first)", path.display()))
            .len();
        Target {
            name,
            label: if calls_dynamodb {
                format!("{name} +ddb")
            } else {
                name.to_owned()
            },
            path,
            event,
            calls_dynamodb,
            size,
            samples: Vec::new(),
            failed: None,
        }
    };
    let mut targets: Vec<Target> = [(HELLO, true), (HELLO_SDK, true)]
        .into_iter()
        .chain(FUNCTIONS)
        .map(|(name, http)| target(name, if http { health.clone() } else { sqs.clone() }, false))
        .collect();
    let first_real = targets.len();
    targets.extend([
        target(
            HELLO_SDK,
            Bytes::from_static(br#"{"call":"dynamodb"}"#),
            true,
        ),
        target(
            "telegram-send",
            Bytes::from(event("events/telegram-send/api-key.json")),
            true,
        ),
        target(
            "inbox-api",
            Bytes::from(event("events/inbox-api/list-dialogs.json")),
            true,
        ),
        target(
            "webhook-receiver",
            Bytes::from(
                event("events/webhook-receiver/unknown-integration.json")
                    .replace("no-such-integration", UNKNOWN_INTEGRATION),
            ),
            true,
        ),
    ]);

    let logs = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = Arc::new(Api {
            run: Mutex::new(Run::default()),
            generation: watch::channel(0).0,
        });
        let app = axum::Router::new()
            .route(&format!("{API_PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{API_PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(
                &format!("{API_PREFIX}/invocation/{{id}}/error"),
                post(invocation_error),
            )
            .route(&format!("{API_PREFIX}/init/error"), post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dynamodb = Arc::new(EmptyDynamo::default());
        let app = axum::Router::new()
            .fallback(dynamodb_answer)
            .with_state(dynamodb.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dynamodb_addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let servers = Servers {
            api,
            api_addr,
            dynamodb,
            dynamodb_addr,
        };

        println!(
            "cold start: {runs} runs per binary after one warm-up round, binaries taking turns; runtime API on {}, DynamoDB stub on {}; {}",
            servers.api_addr,
            servers.dynamodb_addr,
            machine()
        );
        let mut seq = 0;
        for round in 0..=runs {
            for target in targets.iter_mut().filter(|t| t.failed.is_none()) {
                seq += 1;
                let stderr = logs.path().join(format!("{}.stderr", target.name));
                match measure(&servers, target, seq, &stderr).await {
                    // Round 0 warms the page cache and the allocator paths; it is not counted.
                    Ok(sample) if round > 0 => target.samples.push(sample),
                    Ok(_) => {}
                    Err(e) => {
                        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(5).collect();
                        println!("{}: {e}; stderr: {}", target.label, tail.join(" | "));
                        target.failed = Some(e);
                    }
                }
            }
        }
    });

    println!("done; {}", load_average());
    let hello = summary(&targets[0]);
    let sdk = summary(&targets[1]);
    let sdk_real = summary(&targets[first_real]);
    println!();
    println!(
        "Times: medians of {runs} runs, ratios to {HELLO} and to {HELLO_SDK} (a `+ddb` row to {HELLO_SDK} +ddb). Goals: init ≤ {INIT_GOAL}× and cold start (spawn → first response) ≤ {COLD_START_GOAL}× {HELLO_SDK}."
    );
    println!();
    println!(
        "| binary                 | init ms | ×hello | ×sdk | goal | 1st invoke ms | DynamoDB req | cold start ms | ×hello | ×sdk | goal |"
    );
    println!(
        "|------------------------|---------|--------|------|------|---------------|--------------|---------------|--------|------|------|"
    );
    for (i, target) in targets.iter().enumerate() {
        if let Some(e) = &target.failed {
            println!("| {:<22} | failed: {e} |", target.label);
            continue;
        }
        let s = summary(target);
        let base = if i >= first_real { &sdk_real } else { &sdk };
        let init_ratio = s.init / base.init;
        let total_ratio = s.total / base.total;
        println!(
            "| {:<22} | {:>7.2} | {:>6.2} | {:>4.2} | {:<4} | {:>13.2} | {:>12} | {:>13.2} | {:>6.2} | {:>4.2} | {:<4} |",
            target.label,
            s.init,
            s.init / hello.init,
            init_ratio,
            mark(init_ratio <= INIT_GOAL),
            s.invoke,
            s.dynamodb_requests,
            s.total,
            s.total / hello.total,
            total_ratio,
            mark(total_ratio <= COLD_START_GOAL),
        );
    }
    println!();
    println!(
        "Size: stripped release binary; peak RSS: median VmHWM after the first response; ratios to {HELLO_SDK}. Goals: size ≤ {SIZE_GOAL}× {HELLO_SDK}, peak RSS ≤ {RSS_GOAL_MIB} MiB."
    );
    println!();
    println!("| binary                 | size MiB | ×sdk | goal | peak RSS MiB | ×sdk | goal |");
    println!("|------------------------|----------|------|------|--------------|------|------|");
    for target in &targets {
        let s = summary(target);
        let size_ratio = s.size_mib / sdk.size_mib;
        let rss = if target.failed.is_some() {
            "failed".to_owned()
        } else {
            format!("{:>12.1}", s.rss_mib)
        };
        println!(
            "| {:<22} | {:>8.2} | {:>4.2} | {:<4} | {rss} | {:>4.2} | {:<4} |",
            target.label,
            s.size_mib,
            size_ratio,
            mark(size_ratio <= SIZE_GOAL),
            s.rss_mib / sdk.rss_mib,
            mark(s.rss_mib <= RSS_GOAL_MIB),
        );
    }
}
