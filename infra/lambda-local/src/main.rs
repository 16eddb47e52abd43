//! Every event in `events/` through the functions' own Lambda binaries: provisions the
//! stack's table, queues and key in the local AWS emulator (`AWS_ENDPOINT_URL`), seeds the
//! tenant the events name, starts a local server speaking the providers' APIs, runs
//! `cargo lambda watch` with the environment `template.yaml` gives the functions
//! (`BACKEND=aws`), then `cargo lambda invoke <function> --data-file events/…` for each case
//! of `events/invoke.json`, in order, and checks each answer. Exits non-zero on a mismatch.
//!
//! Run by `infra/lambda-events.sh` (which installs cargo-lambda and starts the emulator).
// A command-line check: its report is its output.
#![allow(clippy::print_stdout)]

mod seed;
mod world;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;
use shared::config::{AwsConfig, QueueRole};

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

/// One invocation and what its answer must hold.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    function: String,
    /// `<folder>/<name>` under `events/`, without `.json`.
    event: String,
    status: Option<u16>,
    batch_item_failures: Option<usize>,
    #[serde(default)]
    body: BTreeMap<String, Value>,
    text: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// JSON pointers into the whole answer, for answers that are no HTTP response (an
    /// authorizer's `{"isAuthorized": …, "context": …}`).
    #[serde(default)]
    answer: BTreeMap<String, Value>,
}

/// The functions' environment: what `template.yaml` sets, pointed at the emulator and the
/// local provider server.
fn environment(aws: &AwsConfig, world: &str, smtp_port: u16) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("BACKEND".into(), "aws".into()),
        ("TABLE_NAME".into(), aws.table_name.clone()),
        ("RUST_LOG".into(), "info".into()),
        ("SMTP_HOST".into(), "127.0.0.1".into()),
        ("SMTP_PORT".into(), smtp_port.to_string()),
        ("SMTP_TLS".into(), "none".into()),
        // The seeded tenant's targets (CRM gateway, Bitrix24, lead webhooks) are local
        // servers: the one difference from the template's environment.
        ("ALLOW_PRIVATE_TARGETS".into(), "true".into()),
    ];
    if let Some(key) = &aws.kms_key_id {
        env.push(("KMS_KEY_ID".into(), key.clone()));
    }
    for role in QueueRole::ALL {
        if let Some(url) = aws.queue_urls.get(&role) {
            env.push((role.url_var().into(), url.clone()));
        }
        if let Some(url) = aws.dlq_urls.get(&role) {
            env.push((role.dlq_url_var().into(), url.clone()));
        }
    }
    for var in [
        "TELEGRAM_API_BASE",
        "WAPPI_API_BASE",
        "MAX_API_BASE",
        "WHATSAPP_API_BASE",
        "VIBER_API_BASE",
        "VK_API_BASE",
    ] {
        env.push((var.into(), world.into()));
    }
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        if let Ok(value) = std::env::var(var) {
            env.push((var.into(), value));
        }
    }
    env
}

/// `cargo lambda watch` in its own process group, so stopping it stops the functions too.
struct Watch {
    child: Child,
}

impl Watch {
    fn start(root: &Path, port: u16, env_file: &Path, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new("cargo")
            .current_dir(root)
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .arg("--env-file")
            .arg(env_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting `cargo lambda watch` (is cargo-lambda installed?)")?;
        Ok(Self { child })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("`cargo lambda watch` did not listen on 127.0.0.1:{port} within {within:?}")
}

fn invoke(root: &Path, port: u16, case: &Case) -> anyhow::Result<Value> {
    let file = root.join("events").join(format!("{}.json", case.event));
    anyhow::ensure!(file.is_file(), "no event file {}", file.display());
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["lambda", "invoke", &case.function, "--data-file"])
        .arg(&file)
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .args(["--output-format", "json"])
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        bail!(
            "`cargo lambda invoke` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "not a JSON answer: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// What in `answer` differs from the case's expectations (empty = as expected).
fn mismatches(case: &Case, answer: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(status) = case.status
        && answer["statusCode"].as_u64() != Some(u64::from(status))
    {
        out.push(format!("statusCode {} ≠ {status}", answer["statusCode"]));
    }
    if let Some(failures) = case.batch_item_failures {
        match answer["batchItemFailures"].as_array() {
            Some(items) if items.len() == failures => {}
            _ => out.push(format!(
                "batchItemFailures {} ≠ {failures} items",
                answer["batchItemFailures"]
            )),
        }
    }
    let raw = answer["body"].as_str().unwrap_or_default();
    if let Some(text) = &case.text
        && raw != text
    {
        out.push(format!("body {raw:?} ≠ {text:?}"));
    }
    if !case.body.is_empty() {
        let body: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        for (pointer, want) in &case.body {
            let got = body.pointer(pointer).unwrap_or(&Value::Null);
            if got != want {
                out.push(format!("body{pointer} {got} ≠ {want}"));
            }
        }
    }
    for (pointer, want) in &case.answer {
        let got = answer.pointer(pointer).unwrap_or(&Value::Null);
        if got != want {
            out.push(format!("answer{pointer} {got} ≠ {want}"));
        }
    }
    for (name, want) in &case.headers {
        let got = answer["headers"][name.as_str()].as_str();
        if got != Some(want.as_str()) {
            out.push(format!("header {name} {got:?} ≠ {want:?}"));
        }
    }
    out
}

async fn queued(sdk: &aws_config::SdkConfig, url: &str) -> anyhow::Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attrs
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|n| n.parse().ok())
        .unwrap_or_default())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()?;
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        bail!(
            "AWS_ENDPOINT_URL must point at the local AWS emulator (infra/lambda-events.sh starts one)"
        );
    }
    let port: u16 = match std::env::var("LAMBDA_INVOKE_PORT") {
        Ok(p) => p.parse().context("LAMBDA_INVOKE_PORT")?,
        Err(_) => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
    };
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(root.join("events/invoke.json"))?)
            .context("events/invoke.json")?;

    let sdk = aws_config::load_from_env().await;
    let prefix = format!("lambda-local-{}", jiff::Timestamp::now().as_millisecond());
    let aws = shared::provision::stack(&sdk, &prefix).await?;
    let ports = shared::backend::connect_aws(&aws).await;
    let world = world::start().await?;
    let smtp = shared::testing::SmtpSink::start().await?;
    seed::tenant(&ports, &root, &world.base).await?;

    let dir = root.join("target/lambda-local");
    std::fs::create_dir_all(&dir)?;
    let env_file = dir.join("functions.env");
    let env: String = environment(&aws, &world.base, smtp.port)
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(&env_file, env)?;
    let log = dir.join("watch.log");
    println!(
        "==> cargo lambda watch on 127.0.0.1:{port} (log: {})",
        log.display()
    );
    let _watch = Watch::start(&root, port, &env_file, &log)?;
    wait_for_port(port, Duration::from_secs(120))?;

    let mut failed = 0;
    for case in &manifest.cases {
        let started = Instant::now();
        let problems = match invoke(&root, port, case) {
            Ok(answer) => mismatches(case, &answer)
                .into_iter()
                .map(|m| format!("{m} — answer: {answer}"))
                .collect(),
            Err(e) => vec![format!("{e:#}")],
        };
        let took = started.elapsed().as_millis();
        if problems.is_empty() {
            println!(
                "ok    {:<18} {:<48} {took:>6} ms",
                case.function, case.event
            );
        } else {
            failed += 1;
            println!("FAIL  {:<18} {}", case.function, case.event);
            for problem in problems {
                println!("        {problem}");
            }
        }
    }

    // What the invocations did through the real adapters.
    let outbound = aws
        .queue_urls
        .get(&QueueRole::Outbound)
        .context("no outbound queue")?;
    let jobs = queued(&sdk, outbound).await?;
    let crm_sends = world
        .requests()
        .iter()
        .filter(|r| r.path == "/crm/messages")
        .count();
    let lead_posts = world
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/sendMessage"))
        .count();
    println!(
        "==> outbound queue holds {jobs} job(s); the CRM gateway got {crm_sends} send(s); \
         the lead bot {lead_posts} post(s); SMTP {} message(s)",
        smtp.messages().len()
    );
    if jobs == 0 {
        failed += 1;
        println!("FAIL  the inbox reply put no job on the outbound SQS queue");
    }
    if crm_sends == 0 {
        failed += 1;
        println!("FAIL  no message reached the Telegram CRM gateway");
    }
    if lead_posts == 0 {
        failed += 1;
        println!("FAIL  the lead delivery posted nothing to the lead target's Bot API");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} checks failed (function logs: {})",
            manifest.cases.len(),
            log.display()
        );
    }
    println!(
        "==> all {} invocations answered as expected",
        manifest.cases.len()
    );
    Ok(())
}
