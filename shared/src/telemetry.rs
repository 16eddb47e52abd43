//! Tracing set-up and CloudWatch embedded-metric-format (EMF) lines.

use std::io::Write as _;

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The metrics every function emits: namespace [`NAMESPACE`](metric_names::NAMESPACE), one
/// dimension [`PROVIDER`](metric_names::PROVIDER) — the provider's name as integrations
/// store it (`wappi`, `telegram_bot`, `telegram_crm`, `max`, `whatsapp`, `amocrm`,
/// `bitrix24`, `email`, …; `bot_webhook` for the push to a tenant's bot; the channel, e.g.
/// `telegram`, when no integration is known; `unknown` for an unreadable job).
///
/// Delivery (outbound messages, lead deliveries, bot-webhook pushes):
///
/// | name | unit | one per |
/// |---|---|---|
/// | `sent` | Count | provider call that delivered (a message sent, a lead delivered, an event pushed) |
/// | `provider_error` | Count | provider call that did not deliver (refused, unreachable, rate-limited, down), retries and fallbacks included |
/// | `latency` | Milliseconds | provider call, whatever its outcome |
/// | `failed` | Count | delivery that ended failed for good (message marked `failed`, send answered 422, lead delivery `failed`, push given up) |
/// | `fallback_used` | Count | Telegram send delivered through another integration than the first one tried |
/// | `queued` | Count | delivery put (back) on a queue to be retried: a send queued after a transient failure, a worker's backoff |
/// | `dlq` | Count | message written to, or left for, a dead-letter queue |
/// | `duplicate_dropped` | Count | duplicate dropped: a webhook event seen before, an `Idempotency-Key` replay |
///
/// Inbound webhooks (webhook-receiver):
///
/// | name | unit | one per |
/// |---|---|---|
/// | `webhook_received` | Count | inbound event stored |
/// | `webhook_refused` | Count | webhook request answered with an error (bad signature, unknown integration, …) |
/// | `webhook_failed` | Count | webhook request whose events could not be stored (the provider redelivers) |
/// | `webhook_latency` | Milliseconds | webhook request, end to end |
///
/// Every site uses these constants (and [`Metrics::provider`]), never a literal.
pub mod metric_names {
    pub const NAMESPACE: &str = "Integrations";
    /// The one dimension.
    pub const PROVIDER: &str = "provider";

    pub const SENT: &str = "sent";
    pub const PROVIDER_ERROR: &str = "provider_error";
    pub const LATENCY: &str = "latency";
    pub const FAILED: &str = "failed";
    pub const FALLBACK_USED: &str = "fallback_used";
    pub const QUEUED: &str = "queued";
    pub const DLQ: &str = "dlq";
    pub const DUPLICATE_DROPPED: &str = "duplicate_dropped";

    pub const WEBHOOK_RECEIVED: &str = "webhook_received";
    pub const WEBHOOK_REFUSED: &str = "webhook_refused";
    pub const WEBHOOK_FAILED: &str = "webhook_failed";
    pub const WEBHOOK_LATENCY: &str = "webhook_latency";

    /// The `provider` of a job whose body could not be read.
    pub const UNKNOWN_PROVIDER: &str = "unknown";
}

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
    // A second init (tests, dev server restarts in-process) keeps the first subscriber.
    if json {
        use tracing_subscriber::util::SubscriberInitExt as _;
        drop(json_subscriber(filter, std::io::stderr).try_init());
    } else {
        drop(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .try_init(),
        );
    }
}

/// The JSON subscriber of [`init`] (Lambda), writing to `writer`: one object per line with
/// `level`, `target`, `message`, the fields of every span the event is in (outermost
/// first, so an inner span's value wins) and the event's own fields, all at the top level —
/// so `tenant_id`, `integration_id`, `provider`, `request_id` recorded on a span, and the
/// Lambda runtime's `requestId`/`xrayTraceId`, are on every line logged inside it.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .finish()
}

/// The event format of [`json_subscriber`]: span and event fields flattened into one object.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // JsonFields keeps a span's fields as one JSON object (updated by `record`).
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), json!(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
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

    /// A record of the [`metric_names::NAMESPACE`] namespace for one provider.
    pub fn provider(provider: impl Into<String>) -> Self {
        Self::new(metric_names::NAMESPACE).dimension(metric_names::PROVIDER, provider)
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
    use crate::testing::LogCapture;

    fn sink(capture: &LogCapture) -> impl Fn() -> LogCapture + Send + Sync + 'static {
        let capture = capture.clone();
        move || capture.clone()
    }

    /// Every line `json_subscriber` wrote, parsed.
    fn lines(capture: &LogCapture) -> Vec<Value> {
        capture
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn json_lines_carry_the_fields_of_every_enclosing_span() {
        let capture = LogCapture::default();
        let subscriber = json_subscriber(EnvFilter::new("debug"), sink(&capture));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(
                "request",
                request_id = "req-1",
                tenant_id = tracing::field::Empty
            );
            let _request = request.enter();
            tracing::Span::current().record("tenant_id", "acme");
            let send = tracing::info_span!(
                "send",
                integration_id = "wappi1",
                provider = tracing::field::Empty
            );
            let _send = send.enter();
            send.record("provider", "wappi");
            tracing::info!(outcome = "sent", attempts = 2u64, "outbound send attempt");
        });
        let lines = lines(&capture);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["message"], "outbound send attempt");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["tenant_id"], "acme");
        assert_eq!(line["integration_id"], "wappi1");
        assert_eq!(line["provider"], "wappi");
        assert_eq!(line["outcome"], "sent");
        assert_eq!(line["attempts"], 2);
    }

    #[test]
    fn an_inner_span_and_the_event_override_outer_values() {
        let capture = LogCapture::default();
        let subscriber = json_subscriber(EnvFilter::new("info"), sink(&capture));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", provider = "telegram", request_id = "r");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", provider = "telegram_bot");
            let _inner = inner.enter();
            tracing::info!("in the inner span");
            tracing::info!(provider = "max", "the event's own value");
            tracing::debug!("filtered out");
        });
        let lines = lines(&capture);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["provider"], "telegram_bot");
        assert_eq!(lines[0]["request_id"], "r");
        assert_eq!(lines[1]["provider"], "max");
    }

    #[test]
    fn a_provider_record_uses_the_shared_namespace_and_dimension() {
        let doc = Metrics::provider("wappi")
            .count(metric_names::SENT, 1)
            .to_emf(0);
        assert_eq!(doc["provider"], "wappi");
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Integrations");
        assert_eq!(cw["Dimensions"], json!([["provider"]]));
    }

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
