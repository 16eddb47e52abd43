//! `cargo run -p devserver`: the whole system on one local port, no AWS account.

use std::io::Write as _;

use anyhow::Context as _;
use shared::config::{Backend, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let mut config = Config::from_env()?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().context("PORT must be a port number")?,
        Err(_) => 3000,
    };
    let data_dir = match &config.backend {
        Backend::Embedded { data_dir } => data_dir.clone(),
        Backend::Aws(_) => std::path::PathBuf::from(".local"),
    };
    let (secret, generated) =
        devserver::jwt_secret(std::env::var("LOCAL_JWT_SECRET").ok(), &data_dir)?;
    let now = jiff::Timestamp::now().as_second();
    let token = devserver::dev_token(&secret, now)?;
    let stop = shutdown_signal();
    let server = devserver::start(&config_with_base(&mut config, port), port, secret).await?;
    say(&format!("devserver listening on http://{}", server.addr));
    say(&format!("data directory: {}", data_dir.display()));
    if generated {
        say(&format!(
            "dev token (tenant `{}`): {token}",
            devserver::DEMO_TENANT
        ));
    }
    stop.await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Talks to the developer on stdout; a closed stdout must not stop the server.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn config_with_base(config: &mut Config, port: u16) -> Config {
    if config.public_base_url.is_none() {
        config.public_base_url = Some(format!("http://127.0.0.1:{port}"));
    }
    config.clone()
}

/// Registers for Ctrl-C and SIGTERM at once (before the server announces itself, so a
/// signal that follows the announcement is never the default "terminate" action), and
/// returns the future that resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
