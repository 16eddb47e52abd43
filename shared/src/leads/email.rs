//! The `email` lead target: each lead as an e-mail over SMTP (seed 001).
//!
//! The SMTP server is the deployment's (`SMTP_HOST`, `SMTP_PORT`, `SMTP_TLS`); an
//! integration names its recipients and, optionally, its sender and SMTP login. STARTTLS is
//! required by default: a server that does not offer it is a configuration problem, never a
//! reason to send in the clear.
//!
//! The message is `multipart/alternative` (plain text + HTML, every lead value
//! HTML-escaped) with a `Message-ID` derived from the delivery id, so a retried delivery
//! carries the same id and receivers can drop the duplicate.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, Mailboxes, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{LeadContext, LeadSent, LeadTarget, field};
use crate::config::{ProviderUrls, SmtpTls};
use crate::domain::lead::Lead;
use crate::providers::{CONNECT_TIMEOUT, ProviderError, REQUEST_TIMEOUT, short};
use crate::repo::integrations::OpenConfig;

/// The right-hand side of every `Message-ID` this target writes.
const MESSAGE_ID_DOMAIN: &str = "leads.local";

pub struct Email {
    host: Option<String>,
    port: u16,
    mode: SmtpTls,
    /// The rustls setup for the host, built on the first delivery and reused: Mozilla's
    /// compiled-in roots, the trust of every other client of ours (`crate::tls`).
    tls: OnceLock<Result<Tls, String>>,
    /// The limit of one whole attempt: connect, TLS, login, and the SMTP transaction.
    timeout: Duration,
}

impl Email {
    pub fn new(urls: &ProviderUrls) -> Self {
        Self {
            host: urls
                .smtp_host
                .as_deref()
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            port: urls
                .smtp_port
                .unwrap_or_else(|| urls.smtp_tls.default_port()),
            mode: urls.smtp_tls,
            tls: OnceLock::new(),
            timeout: REQUEST_TIMEOUT,
        }
    }

    fn tls(&self, host: &str) -> Result<Tls, ProviderError> {
        let parameters = || {
            TlsParameters::builder(host.to_owned())
                .certificate_store(CertificateStore::WebpkiRoots)
                .build()
                .map_err(|e| format!("TLS for the SMTP server {host} cannot be set up: {e}"))
        };
        self.tls
            .get_or_init(|| match self.mode {
                SmtpTls::None => Ok(Tls::None),
                SmtpTls::StartTls => parameters().map(Tls::Required),
                SmtpTls::Tls => parameters().map(Tls::Wrapper),
            })
            .clone()
            .map_err(ProviderError::Auth)
    }

    fn transport(
        &self,
        host: &str,
        credentials: Option<Credentials>,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, ProviderError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(self.port)
            .timeout(Some(CONNECT_TIMEOUT))
            .tls(self.tls(host)?);
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(builder.build())
    }
}

#[async_trait]
impl LeadTarget for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn deliver(
        &self,
        ctx: &LeadContext<'_>,
        config: &OpenConfig,
    ) -> Result<LeadSent, ProviderError> {
        let host = self.host.as_deref().ok_or_else(|| {
            ProviderError::Auth(
                "SMTP is not configured for this deployment (SMTP_HOST is not set)".into(),
            )
        })?;
        let recipients = recipients(field(config, "recipients")?)?;
        let from = sender(config, host)?;
        let credentials = credentials(config)?;
        let message = message(ctx, from, recipients)?;
        let transport = self.transport(host, credentials)?;
        let server = format!("{host}:{}", self.port);
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(LeadSent::default()),
            Ok(Err(err)) => Err(classify(&err, &server, self.mode)),
            Err(_) => Err(ProviderError::Transient {
                reason: format!(
                    "the SMTP server {server} did not complete the delivery within {}s",
                    self.timeout.as_secs_f32()
                ),
                retry_after: None,
            }),
        }
    }
}

/// An optional config field; empty counts as absent.
fn optional<'a>(config: &'a OpenConfig, name: &str) -> Option<&'a str> {
    config
        .get(name)
        .map(|v| v.expose().as_str())
        .filter(|v| !v.trim().is_empty())
}

/// `recipients`: addresses separated by commas (`a@x.ru, Sales <b@y.ru>`).
fn recipients(list: &str) -> Result<Vec<Mailbox>, ProviderError> {
    let pieces: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let parsed: Result<Vec<Mailbox>, &str> = pieces
        .iter()
        .map(|p| p.parse::<Mailbox>().map_err(|_| *p))
        .collect();
    match parsed {
        Ok(list) if list.is_empty() => Err(ProviderError::Rejected(
            "the integration names no recipients".into(),
        )),
        Ok(list) => Ok(list),
        // A display name may hold a comma itself: `"Doe, John" <j@x.ru>`.
        Err(bad) => list
            .parse::<Mailboxes>()
            .map(|all| all.into_iter().collect())
            .map_err(|_| {
                ProviderError::Rejected(format!(
                    "not an e-mail address in recipients: {}",
                    short(bad)
                ))
            }),
    }
}

/// `from_address`, else `smtp_username` when it is an address, else `noreply@<SMTP host>`.
fn sender(config: &OpenConfig, host: &str) -> Result<Mailbox, ProviderError> {
    if let Some(from) = optional(config, "from_address") {
        return from.trim().parse().map_err(|_| {
            ProviderError::Rejected(format!(
                "from_address is not an e-mail address: {}",
                short(from)
            ))
        });
    }
    if let Some(address) =
        optional(config, "smtp_username").and_then(|u| u.trim().parse::<Address>().ok())
    {
        return Ok(Mailbox::new(None, address));
    }
    // An IP literal (`noreply@[10.0.0.1]`) would not survive the From header's parser.
    let domain = host.trim_end_matches('.');
    if domain.parse::<IpAddr>().is_ok() {
        return Err(ProviderError::Auth(format!(
            "no sender address: set from_address (the SMTP host {host} is an IP address)"
        )));
    }
    Address::new("noreply", domain)
        .map(|a| Mailbox::new(None, a))
        .map_err(|_| {
            ProviderError::Auth(format!(
                "no sender address: set from_address (noreply@{host} is not an address)"
            ))
        })
}

/// The SMTP login: both `smtp_username` and `smtp_password`, or neither.
fn credentials(config: &OpenConfig) -> Result<Option<Credentials>, ProviderError> {
    match (
        optional(config, "smtp_username"),
        optional(config, "smtp_password"),
    ) {
        (Some(user), Some(password)) => Ok(Some(Credentials::new(
            user.trim().to_owned(),
            password.to_owned(),
        ))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ProviderError::Auth(
            "smtp_username is set but smtp_password is not".into(),
        )),
        (None, Some(_)) => Err(ProviderError::Auth(
            "smtp_password is set but smtp_username is not".into(),
        )),
    }
}

fn message(
    ctx: &LeadContext<'_>,
    from: Mailbox,
    to: Vec<Mailbox>,
) -> Result<Message, ProviderError> {
    let lead = ctx.lead;
    let title = one_line(&lead.title());
    let lines = lead.lines();
    let mut builder = Message::builder()
        .from(from)
        .subject(title.clone())
        .message_id(Some(message_id(ctx.delivery_id)));
    for mailbox in to {
        builder = builder.to(mailbox);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            plain_text(lead, &title, &lines),
            html(lead, &title, &lines),
        ))
        .map_err(|e| ProviderError::Rejected(format!("the e-mail could not be built: {e}")))
}

/// `<{delivery_id}@leads.local>`, every byte outside `[A-Za-z0-9_-]` written as `=XX` so
/// that the id stays a valid `dot-atom` and distinct delivery ids stay distinct.
fn message_id(delivery_id: &str) -> String {
    let mut local = String::with_capacity(delivery_id.len());
    for byte in delivery_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            local.push(char::from(byte));
        } else {
            local.push_str(&format!("={byte:02X}"));
        }
    }
    if local.is_empty() {
        local.push_str("lead");
    }
    format!("<{local}@{MESSAGE_ID_DOMAIN}>")
}

/// A header value on one line (a lead's name could hold a line break).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn footer(lead: &Lead) -> String {
    format!("Lead {} · {}", lead.id, lead.created_at)
}

fn plain_text(lead: &Lead, title: &str, lines: &[(String, String)]) -> String {
    let mut out = format!("{title}\n\n");
    for (label, value) in lines {
        out.push_str(&format!("{label}: {value}\n"));
    }
    out.push_str(&format!("\n{}\n", footer(lead)));
    out
}

fn html(lead: &Lead, title: &str, lines: &[(String, String)]) -> String {
    let title = escape(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body>\n<h2>{title}</h2>\n<table cellpadding=\"4\" cellspacing=\"0\" border=\"0\">\n"
    );
    for (label, value) in lines {
        out.push_str(&format!(
            "<tr><th align=\"left\" valign=\"top\">{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(value).replace('\n', "<br>\n")
        ));
    }
    out.push_str(&format!(
        "</table>\n<p style=\"color:#888888\">{}</p>\n</body></html>\n",
        escape(&footer(lead))
    ));
    out
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Classifies a failed SMTP delivery. The text never holds the password: lettre's errors
/// carry the server's reply or the transport error, never the credentials.
fn classify(err: &lettre::transport::smtp::Error, server: &str, mode: SmtpTls) -> ProviderError {
    let detail = short(&err.to_string());
    if let Some(code) = err.status() {
        return match u16::from(code) {
            400..=499 => ProviderError::Transient {
                reason: format!("the SMTP server {server} deferred the e-mail: {detail}"),
                retry_after: None,
            },
            // 530 authentication required, 534 mechanism too weak, 535 credentials invalid,
            // 538 encryption required for the mechanism.
            530 | 534 | 535 | 538 => ProviderError::Auth(format!(
                "the SMTP server {server} refused the login: {detail}"
            )),
            _ => ProviderError::Rejected(format!(
                "the SMTP server {server} refused the e-mail: {detail}"
            )),
        };
    }
    if err.is_client() {
        let lower = detail.to_ascii_lowercase();
        if lower.contains("starttls") {
            return ProviderError::Auth(format!(
                "the SMTP server {server} does not offer STARTTLS, which SMTP_TLS=starttls \
                 requires (use SMTP_TLS=tls for implicit TLS, usually port 465)"
            ));
        }
        if lower.contains("authentication mechanism") {
            return ProviderError::Auth(format!(
                "the SMTP server {server} offers no login mechanism this client supports \
                 (PLAIN, LOGIN) on this connection"
            ));
        }
        return ProviderError::Rejected(format!("the e-mail could not be sent: {detail}"));
    }
    if err.is_tls() {
        return ProviderError::Auth(format!(
            "TLS with the SMTP server {server} failed: {detail}"
        ));
    }
    if err.is_timeout() {
        return ProviderError::Transient {
            reason: format!("the SMTP server {server} timed out: {detail}"),
            retry_after: None,
        };
    }
    // rustls reports a failed handshake (bad certificate, plain text where TLS was
    // expected) as `InvalidData`: the setup is wrong, retrying will not help.
    if mode != SmtpTls::None && io_error_kind(err) == Some(std::io::ErrorKind::InvalidData) {
        return ProviderError::Auth(format!(
            "the TLS handshake with the SMTP server {server} failed (check SMTP_TLS and \
             SMTP_PORT): {detail}"
        ));
    }
    if detail.contains("valid DNS name") {
        return ProviderError::Auth(format!(
            "SMTP_HOST is not a valid host name for TLS: {detail}"
        ));
    }
    ProviderError::Transient {
        reason: format!("could not talk to the SMTP server {server}: {detail}"),
        retry_after: None,
    }
}

/// The kind of the first I/O error in the error's chain.
fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use jiff::Timestamp;

    use super::*;
    use crate::domain::registry::IntegrationKind;
    use crate::domain::{IntegrationId, LeadId, TenantId};
    use crate::ports::Sealed;
    use crate::repo::integrations::{Integration, IntegrationStatus};
    use crate::secret::Secret;
    use crate::testing::{SmtpMessage, SmtpSink};

    const PASSWORD: &str = "s3cr3t-p4ss";
    const FROM: (&str, &str) = ("from_address", "leads@shop.example");

    fn lead() -> Lead {
        Lead {
            id: LeadId::parse("01jz8k3m4n5p6q7r8s9t0v1w2x").unwrap_or_else(|_| LeadId::generate()),
            tenant_id: TenantId::parse("acme").unwrap_or_else(|_| TenantId::generate()),
            name: Some("Иван Петров".into()),
            phone: Some("+79161234567".into()),
            email: Some("ivan@example.com".into()),
            comment: Some("Call me <script>alert('x')</script> & \"soon\"\nafter 6pm".into()),
            source: Some("landing".into()),
            utm: BTreeMap::from([("utm_source".into(), "yandex".into())]),
            external_entity_id: None,
            external_project_id: None,
            attributes: BTreeMap::from([("rooms".into(), serde_json::json!(3))]),
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn integration() -> Integration {
        Integration {
            id: IntegrationId::generate(),
            tenant_id: TenantId::generate(),
            kind: IntegrationKind::LeadTarget,
            provider: "email".into(),
            channel: None,
            name: "email".into(),
            status: IntegrationStatus::Active,
            is_enabled: true,
            is_primary: false,
            config: Sealed(String::new()),
            last_error: None,
            last_sync_at: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            version: 1,
        }
    }

    fn config(fields: &[(&str, &str)]) -> OpenConfig {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
            .collect()
    }

    fn urls(host: Option<&str>, port: u16, tls: SmtpTls) -> ProviderUrls {
        ProviderUrls {
            telegram: "http://t".into(),
            wappi: "http://w".into(),
            max: "http://m".into(),
            whatsapp: "http://wa".into(),
            viber: "http://v".into(),
            vk: "http://vk".into(),
            amocrm: None,
            smtp_host: host.map(str::to_owned),
            smtp_port: Some(port),
            smtp_tls: tls,
        }
    }

    fn target(sink: &SmtpSink, tls: SmtpTls) -> Email {
        Email::new(&urls(Some(&sink.host), sink.port, tls))
    }

    async fn deliver(
        email: &Email,
        fields: &[(&str, &str)],
        delivery_id: &str,
    ) -> Result<LeadSent, ProviderError> {
        let lead = lead();
        let integration = integration();
        let ctx = LeadContext {
            lead: &lead,
            integration: &integration,
            delivery_id,
            credentials: &crate::leads::Discard,
        };
        email.deliver(&ctx, &config(fields)).await
    }

    // ---- a small MIME reader for the assertions ------------------------------------

    /// Unfolded headers and the body of an RFC 5322 text.
    fn split(text: &str) -> (Vec<(String, String)>, String) {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        (headers, body.to_owned())
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=` / `=?utf-8?q?…?=`).
    fn decode_words(value: &str) -> String {
        let mut out = Vec::new();
        let mut after_word = false;
        for word in value.split_whitespace() {
            let parts: Vec<&str> = word.split('?').collect();
            let encoded = parts.len() == 5 && parts[0] == "=" && parts[4] == "=";
            // White space between two encoded words is not part of the text.
            let joined = encoded && after_word;
            if !out.is_empty() && !joined {
                out.push(b' ');
            }
            after_word = encoded;
            if encoded {
                match parts[2].to_ascii_lowercase().as_str() {
                    "b" => out.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(parts[3])
                            .unwrap_or_default(),
                    ),
                    _ => out.extend(qp(&parts[3].replace('_', " "))),
                }
            } else {
                out.extend(word.as_bytes());
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn qp(text: &str) -> Vec<u8> {
        let text = text.replace("=\r\n", "");
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && let Some(hex) = text.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    /// The decoded text of each part of a multipart message: (content type, text).
    fn parts(message: &SmtpMessage) -> Vec<(String, String)> {
        let (headers, body) = split(&message.text());
        let content_type = header(&headers, "content-type").unwrap_or_default();
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .map(|b| b.trim_matches('"').to_owned())
            .unwrap_or_default();
        assert!(!boundary.is_empty(), "{content_type}");
        body.split(&format!("--{boundary}"))
            .filter(|p| !p.trim().is_empty() && !p.starts_with("--"))
            .map(|part| {
                let (headers, body) = split(part.trim_start_matches("\r\n"));
                let cte = header(&headers, "content-transfer-encoding")
                    .unwrap_or("7bit")
                    .to_ascii_lowercase();
                let bytes = match cte.as_str() {
                    "base64" => base64::engine::general_purpose::STANDARD
                        .decode(body.split_whitespace().collect::<String>())
                        .unwrap_or_default(),
                    "quoted-printable" => qp(&body),
                    _ => body.into_bytes(),
                };
                (
                    header(&headers, "content-type")
                        .unwrap_or_default()
                        .to_owned(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            })
            .collect()
    }

    // ---- delivery ----------------------------------------------------------------------

    #[tokio::test]
    async fn a_lead_is_mailed_to_every_recipient_as_plain_text_and_escaped_html() {
        let sink = SmtpSink::start().await.unwrap();
        sink.accept_only("robot@shop.example", PASSWORD);
        let email = target(&sink, SmtpTls::None);
        let sent = deliver(
            &email,
            &[
                ("recipients", "sales@shop.example, Boss <boss@shop.example>"),
                ("smtp_username", "robot@shop.example"),
                ("smtp_password", PASSWORD),
            ],
            "dlv_01jz8k3m4n:round/1",
        )
        .await;
        assert_eq!(sent, Ok(LeadSent::default()));

        let messages = sink.messages();
        assert_eq!(messages.len(), 1, "{:?}", sink.commands());
        let m = &messages[0];
        // Envelope: the sender falls back to the SMTP login; both recipients.
        assert_eq!(m.from, "robot@shop.example");
        assert_eq!(m.recipients, ["sales@shop.example", "boss@shop.example"]);
        assert_eq!(
            m.auth,
            Some(("robot@shop.example".to_owned(), PASSWORD.to_owned()))
        );
        // The data is 7-bit: the Cyrillic name travels encoded.
        assert!(m.data.is_ascii());

        let (headers, _) = split(&m.text());
        assert_eq!(header(&headers, "from"), Some("robot@shop.example"));
        let to = header(&headers, "to").unwrap_or_default();
        assert!(to.contains("sales@shop.example") && to.contains("Boss <boss@shop.example>"));
        let subject = header(&headers, "subject").unwrap_or_default();
        assert!(subject.contains("=?utf-8?b?"), "{subject}");
        assert_eq!(
            decode_words(subject),
            "Lead: Иван Петров, +79161234567, ivan@example.com"
        );
        assert_eq!(
            header(&headers, "message-id"),
            Some("<dlv_01jz8k3m4n=3Around=2F1@leads.local>")
        );
        assert!(
            header(&headers, "content-type")
                .unwrap_or_default()
                .starts_with("multipart/alternative"),
        );

        let parts = parts(m);
        assert_eq!(parts.len(), 2, "{parts:?}");
        let (plain_type, plain) = &parts[0];
        let (html_type, html) = &parts[1];
        // Text parts travel with CRLF line ends.
        let (plain, html) = (plain.replace("\r\n", "\n"), html.replace("\r\n", "\n"));
        assert!(plain_type.starts_with("text/plain"), "{plain_type}");
        assert!(html_type.starts_with("text/html"), "{html_type}");

        assert!(plain.contains("Name: Иван Петров"), "{plain}");
        assert!(plain.contains("Phone: +79161234567"));
        assert!(plain.contains("Comment: Call me <script>alert('x')</script> & \"soon\""));
        assert!(plain.contains("utm_source: yandex"));
        assert!(plain.contains("rooms: 3"));

        assert!(html.contains("<td>Иван Петров</td>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(
            "Call me &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;soon&quot;<br>\nafter 6pm"
        ));
        assert!(html.contains("<th align=\"left\" valign=\"top\">utm_source</th><td>yandex</td>"));
    }

    #[tokio::test]
    async fn a_retry_carries_the_same_message_id_and_the_sender_defaults_sensibly() {
        let sink = SmtpSink::start().await.unwrap();
        let email = target(&sink, SmtpTls::None);
        let fields = [
            ("recipients", "sales@shop.example"),
            ("from_address", "Leads <leads@shop.example>"),
        ];
        for _ in 0..2 {
            assert!(deliver(&email, &fields, "d-1").await.is_ok());
        }
        assert!(deliver(&email, &fields, "d-2").await.is_ok());

        let messages = sink.messages();
        assert_eq!(messages.len(), 3);
        let ids: Vec<String> = messages
            .iter()
            .map(|m| {
                let (headers, _) = split(&m.text());
                header(&headers, "message-id")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids[0], "<d-1@leads.local>");
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[2], "<d-2@leads.local>");
        // No login given: none attempted.
        assert_eq!(messages[0].from, "leads@shop.example");
        assert_eq!(messages[0].auth, None);
        assert!(!sink.commands().iter().any(|c| c.starts_with("AUTH")));
    }

    #[test]
    fn the_sender_is_from_address_else_the_login_else_noreply_at_the_smtp_host() {
        let from = |fields: &[(&str, &str)], host: &str| {
            sender(&config(fields), host).map(|m| m.to_string())
        };
        assert_eq!(
            from(
                &[
                    ("from_address", "Leads <leads@shop.example>"),
                    ("smtp_username", "robot@shop.example")
                ],
                "smtp.example.com"
            ),
            Ok("Leads <leads@shop.example>".to_owned())
        );
        assert_eq!(
            from(
                &[("smtp_username", "robot@shop.example")],
                "smtp.example.com"
            ),
            Ok("robot@shop.example".to_owned())
        );
        // A login that is no address (`apikey`) does not make a sender.
        assert_eq!(
            from(&[("smtp_username", "apikey")], "smtp.example.com"),
            Ok("noreply@smtp.example.com".to_owned())
        );
        assert!(matches!(
            from(&[], "127.0.0.1"),
            Err(ProviderError::Auth(r)) if r.contains("from_address")
        ));
        assert!(matches!(
            from(&[("from_address", "nobody")], "smtp.example.com"),
            Err(ProviderError::Rejected(_))
        ));
    }

    // ---- classification ----------------------------------------------------------------

    #[tokio::test]
    async fn a_4xx_at_rcpt_is_transient_and_a_5xx_is_rejected() {
        let sink = SmtpSink::start().await.unwrap();
        let email = target(&sink, SmtpTls::None);
        let fields = [
            ("recipients", "sales@shop.example"),
            ("from_address", "leads@shop.example"),
        ];

        sink.reply_at_rcpt(451, "4.3.0 Mailbox temporarily unavailable");
        let err = deliver(&email, &fields, "d").await;
        assert!(
            matches!(&err, Err(ProviderError::Transient { reason, .. }) if reason.contains("451")),
            "{err:?}"
        );

        sink.reply_at_rcpt(550, "5.1.1 Mailbox unavailable");
        let err = deliver(&email, &fields, "d").await;
        assert!(
            matches!(&err, Err(ProviderError::Rejected(r)) if r.contains("550") && r.contains("5.1.1")),
            "{err:?}"
        );

        sink.reply_at_rcpt(553, "5.1.3 Bad recipient address syntax");
        let err = deliver(&email, &fields, "d").await;
        assert!(matches!(&err, Err(ProviderError::Rejected(_))), "{err:?}");
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    async fn refused_credentials_are_an_auth_error_that_never_shows_the_password() {
        let sink = SmtpSink::start().await.unwrap();
        sink.accept_only("robot@shop.example", "another");
        let email = target(&sink, SmtpTls::None);
        let err = deliver(
            &email,
            &[
                ("recipients", "sales@shop.example"),
                ("smtp_username", "robot@shop.example"),
                ("smtp_password", PASSWORD),
            ],
            "d",
        )
        .await;
        assert!(
            matches!(&err, Err(ProviderError::Auth(r)) if r.contains("535")),
            "{err:?}"
        );
        assert!(!format!("{err:?}").contains(PASSWORD));
        assert!(sink.messages().is_empty());

        // Half a login is a broken integration, found before connecting.
        let err = deliver(
            &email,
            &[
                ("recipients", "sales@shop.example"),
                ("smtp_password", PASSWORD),
            ],
            "d",
        )
        .await;
        assert!(matches!(&err, Err(ProviderError::Auth(_))), "{err:?}");
        assert!(!format!("{err:?}").contains(PASSWORD));
    }

    #[tokio::test]
    async fn a_bad_recipient_is_rejected_and_no_smtp_host_is_an_auth_error() {
        let sink = SmtpSink::start().await.unwrap();
        let email = target(&sink, SmtpTls::None);
        let err = deliver(
            &email,
            &[("recipients", "sales@shop.example, not an address"), FROM],
            "d",
        )
        .await;
        assert!(
            matches!(&err, Err(ProviderError::Rejected(r)) if r.contains("not an address")),
            "{err:?}"
        );
        // A display name with a comma is still one address.
        assert!(
            deliver(
                &email,
                &[
                    (
                        "recipients",
                        "\"Doe, John\" <john@shop.example>, a@shop.example"
                    ),
                    FROM
                ],
                "d",
            )
            .await
            .is_ok()
        );
        assert_eq!(
            sink.messages()[0].recipients,
            ["john@shop.example", "a@shop.example"]
        );
        assert_eq!(
            sink.commands()
                .iter()
                .filter(|c| c.starts_with("RCPT"))
                .count(),
            2
        );

        let unconfigured = Email::new(&urls(None, 587, SmtpTls::StartTls));
        let err = deliver(&unconfigured, &[("recipients", "a@shop.example")], "d").await;
        assert!(
            matches!(&err, Err(ProviderError::Auth(r)) if r.contains("SMTP is not configured")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn starttls_required_against_a_server_without_it_is_an_auth_error() {
        let sink = SmtpSink::start().await.unwrap();
        let email = target(&sink, SmtpTls::StartTls);
        let err = deliver(
            &email,
            &[
                ("recipients", "sales@shop.example"),
                ("smtp_username", "robot@shop.example"),
                ("smtp_password", PASSWORD),
            ],
            "d",
        )
        .await;
        assert!(
            matches!(&err, Err(ProviderError::Auth(r)) if r.contains("does not offer STARTTLS")),
            "{err:?}"
        );
        // Nothing was sent in the clear: no login, no envelope.
        let commands = sink.commands();
        assert!(
            commands
                .iter()
                .all(|c| c.starts_with("EHLO") || c.starts_with("QUIT")),
            "{commands:?}"
        );
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    async fn implicit_tls_against_a_plain_server_is_an_auth_error() {
        let sink = SmtpSink::start().await.unwrap();
        let email = target(&sink, SmtpTls::Tls);
        let err = deliver(
            &email,
            &[
                ("recipients", "sales@shop.example"),
                ("from_address", "leads@shop.example"),
            ],
            "d",
        )
        .await;
        assert!(
            matches!(&err, Err(ProviderError::Auth(r)) if r.contains("TLS handshake")),
            "{err:?}"
        );
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_silent_server_are_transient() {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let email = Email::new(&urls(Some("127.0.0.1"), closed, SmtpTls::None));
        let err = deliver(&email, &[("recipients", "a@shop.example"), FROM], "d").await;
        assert!(
            matches!(&err, Err(ProviderError::Transient { .. })),
            "{err:?}"
        );

        // Accepts the connection and never greets.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                open.push(stream);
            }
        });
        let mut email = Email::new(&urls(Some("127.0.0.1"), port, SmtpTls::None));
        email.timeout = Duration::from_millis(300);
        let err = deliver(&email, &[("recipients", "a@shop.example"), FROM], "d").await;
        assert!(
            matches!(&err, Err(ProviderError::Transient { reason, .. }) if reason.contains("within")),
            "{err:?}"
        );
    }

    #[test]
    fn the_port_follows_the_tls_mode_unless_set() {
        let mut u = urls(Some("smtp.example.com"), 2525, SmtpTls::StartTls);
        assert_eq!(Email::new(&u).port, 2525);
        u.smtp_port = None;
        assert_eq!(Email::new(&u).port, 587);
        u.smtp_tls = SmtpTls::Tls;
        assert_eq!(Email::new(&u).port, 465);
    }

    #[test]
    fn message_ids_stay_valid_and_distinct() {
        assert_eq!(message_id("abc-1_2"), "<abc-1_2@leads.local>");
        assert_eq!(message_id("a b<c>"), "<a=20b=3Cc=3E@leads.local>");
        assert_ne!(message_id("a:b"), message_id("a=3Ab"));
        assert_eq!(message_id(""), "<lead@leads.local>");
    }
}
