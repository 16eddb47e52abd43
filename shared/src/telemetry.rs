//! Tracing set-up and CloudWatch embedded-metric-format (EMF) lines.

use std::io::Write as _;

use serde_json::{Map, Value, json};
use tracing_subscriber::EnvFilter;

/// Log format: JSON inside Lambda (or when `AWS_LAMBDA_LOG_FORMAT=JSON`), text otherwise.
/// Level: `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
pub fn init() {
    let level =
        std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .ok()
            .map(|l| match l.to_ascii_lowercase().as_str() {
                "fatal" => "error".to_owned(),
                other => other.to_owned(),
            });
    let filter = level
        .and_then(|l| EnvFilter::try_new(l).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
        Ok(format) => format.eq_ignore_ascii_case("json"),
        Err(_) => std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .without_time()
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    // A second init (tests, dev server restarts in-process) keeps the first subscriber.
    drop(result);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF record: a namespace, dimensions and metric values, printed as one JSON line that
/// CloudWatch turns into metrics without any API call.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    values: Vec<(String, f64, Unit)>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    pub fn count(mut self, name: impl Into<String>, value: u64) -> Self {
        self.values.push((name.into(), value as f64, Unit::Count));
        self
    }

    pub fn millis(mut self, name: impl Into<String>, value: f64) -> Self {
        self.values.push((name.into(), value, Unit::Milliseconds));
        self
    }

    /// The EMF JSON document for a timestamp (ms since the epoch).
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, value, _) in &self.values {
            root.insert(name.clone(), json!(value));
        }
        let dims: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        let metrics: Vec<Value> = self
            .values
            .iter()
            .map(|(n, _, u)| json!({"Name": n, "Unit": u.as_str()}))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dims],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Prints the record on stdout, where the Lambda log agent picks EMF up.
    /// Outside Lambda (dev server, tests) the record goes to the debug log instead.
    pub fn emit(&self) {
        let line = self.to_emf(jiff::Timestamp::now().as_millisecond());
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        } else {
            tracing::debug!(emf = %line, "metrics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_record_declares_its_metrics_and_dimensions() {
        let doc = Metrics::new("Messaging")
            .dimension("provider", "telegram_bot")
            .count("sent", 1)
            .millis("latency", 12.5)
            .to_emf(1_700_000_000_000);
        assert_eq!(doc["provider"], "telegram_bot");
        assert_eq!(doc["sent"], 1.0);
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Messaging");
        assert_eq!(cw["Dimensions"], json!([["provider"]]));
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "latency", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
