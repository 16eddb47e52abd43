//! Typed configuration, read once at cold start. A missing or malformed variable is an
//! error naming it — never a silent default for something that must be set.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::egress::EgressPolicy;

/// The queues the system uses. Each has a dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueRole {
    /// Outbound messages waiting for delivery (outbound-worker).
    Outbound,
    /// One message per (lead, integration) (lead-delivery).
    LeadDelivery,
    /// Inbound events for the tenant's bot engine.
    InboundEvents,
    /// Leads waiting for their fan-out (`delay_sec`), auto-integration.
    LeadIntake,
}

impl QueueRole {
    pub const ALL: [Self; 4] = [
        Self::Outbound,
        Self::LeadDelivery,
        Self::InboundEvents,
        Self::LeadIntake,
    ];

    /// The name of the embedded queue (and the suffix of the SQS queue in `template.yaml`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::LeadDelivery => "lead-delivery",
            Self::InboundEvents => "inbound-events",
            Self::LeadIntake => "lead-intake",
        }
    }

    /// The environment variable holding the SQS queue URL.
    pub fn url_var(self) -> &'static str {
        match self {
            Self::Outbound => "OUTBOUND_QUEUE_URL",
            Self::LeadDelivery => "LEAD_DELIVERY_QUEUE_URL",
            Self::InboundEvents => "INBOUND_EVENTS_QUEUE_URL",
            Self::LeadIntake => "LEAD_INTAKE_QUEUE_URL",
        }
    }

    /// The environment variable holding the URL of the queue's dead-letter queue (set on
    /// functions that move messages there themselves, with the reason).
    pub fn dlq_url_var(self) -> &'static str {
        match self {
            Self::Outbound => "OUTBOUND_DLQ_URL",
            Self::LeadDelivery => "LEAD_DELIVERY_DLQ_URL",
            Self::InboundEvents => "INBOUND_EVENTS_DLQ_URL",
            Self::LeadIntake => "LEAD_INTAKE_DLQ_URL",
        }
    }

    /// Receives before a message moves to the DLQ (same as `maxReceiveCount` in the template).
    pub fn max_receives(self) -> u32 {
        match self {
            Self::LeadDelivery => 3,
            Self::Outbound | Self::InboundEvents | Self::LeadIntake => 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    pub table_name: String,
    pub kms_key_id: Option<String>,
    pub queue_urls: BTreeMap<QueueRole, String>,
    pub dlq_urls: BTreeMap<QueueRole, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// redb files and a local key under one directory (dev server, fast tests).
    Embedded { data_dir: PathBuf },
    /// DynamoDB, SQS and KMS, names from the environment `template.yaml` sets.
    Aws(AwsConfig),
}

/// Base URLs of every provider API, so tests point them at a local server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrls {
    pub telegram: String,
    pub wappi: String,
    pub max: String,
    pub whatsapp: String,
    pub viber: String,
    pub vk: String,
    /// Overrides the per-tenant `{subdomain}.amocrm.ru` host when set.
    pub amocrm: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    /// How the SMTP connection is secured (`SMTP_TLS`).
    pub smtp_tls: SmtpTls,
}

/// How the `email` lead target secures its SMTP connection (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// `starttls` (the default): plain connect, then STARTTLS, which the server must offer
    /// (port 587 unless `SMTP_PORT` says otherwise).
    #[default]
    StartTls,
    /// `tls`: implicit TLS from the first byte (port 465 unless `SMTP_PORT` says otherwise).
    Tls,
    /// `none`: no encryption at all — for a local relay or tests only (port 25 by default).
    None,
}

impl SmtpTls {
    /// The port used when `SMTP_PORT` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

impl std::str::FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            "none" => Ok(Self::None),
            other => Err(format!(
                "expected `starttls`, `tls` or `none`, got `{other}`"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    /// Base of the webhook URLs given to providers.
    pub public_base_url: Option<String>,
    pub providers: ProviderUrls,
    /// Issuer (`iss`) of the dashboard's JWTs (`JWT_ISSUER`), kept exactly as given: the
    /// Lambda authorizer compares it with `iss` and discovers the issuer's keys from it.
    /// `None` where no dashboard token is verified in the function.
    pub jwt_issuer: Option<String>,
    /// Accepted audiences (`aud`, or `client_id` of Cognito access tokens) of those tokens
    /// (`JWT_AUDIENCE`, comma-separated); required with `JWT_ISSUER`.
    pub jwt_audiences: Vec<String>,
    /// Whether URLs a tenant chose may reach private addresses and plain `http://`
    /// (`ALLOW_PRIVATE_TARGETS`; default: yes on the embedded backend — a laptop — and no
    /// on AWS). See [`crate::egress`].
    pub egress: EgressPolicy,
}

fn http_url(var: &'static str, value: String) -> Result<String, ConfigError> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.parse::<http::Uri>().is_ok();
    if ok {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::Invalid {
            var,
            reason: "expected an http(s) URL".into(),
        })
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let in_lambda = lookup("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let backend = match lookup("BACKEND").as_deref() {
            Some("aws") => true,
            Some("embedded") => false,
            None => in_lambda,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "BACKEND",
                    reason: format!("expected `aws` or `embedded`, got `{other}`"),
                });
            }
        };
        let backend = if backend {
            Backend::Aws(AwsConfig {
                table_name: lookup("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?,
                kms_key_id: lookup("KMS_KEY_ID"),
                queue_urls: QueueRole::ALL
                    .into_iter()
                    .filter_map(|role| {
                        lookup(role.url_var())
                            .map(|url| http_url(role.url_var(), url).map(|u| (role, u)))
                    })
                    .collect::<Result<_, _>>()?,
                dlq_urls: QueueRole::ALL
                    .into_iter()
                    .filter_map(|role| {
                        lookup(role.dlq_url_var())
                            .map(|url| http_url(role.dlq_url_var(), url).map(|u| (role, u)))
                    })
                    .collect::<Result<_, _>>()?,
            })
        } else {
            Backend::Embedded {
                data_dir: PathBuf::from(lookup("DATA_DIR").unwrap_or_else(|| ".local".into())),
            }
        };
        let url = |var: &'static str, default: &str| {
            http_url(var, lookup(var).unwrap_or_else(|| default.to_owned()))
        };
        let optional_url = |var: &'static str| lookup(var).map(|v| http_url(var, v)).transpose();
        let providers = ProviderUrls {
            telegram: url("TELEGRAM_API_BASE", "https://api.telegram.org")?,
            wappi: url("WAPPI_API_BASE", "https://wappi.pro")?,
            max: url("MAX_API_BASE", "https://platform-api2.max.ru")?,
            whatsapp: url("WHATSAPP_API_BASE", "https://graph.facebook.com/v21.0")?,
            viber: url("VIBER_API_BASE", "https://chatapi.viber.com/pa")?,
            vk: url("VK_API_BASE", "https://api.vk.com/method")?,
            amocrm: optional_url("AMOCRM_API_BASE")?,
            smtp_host: lookup("SMTP_HOST"),
            smtp_port: lookup("SMTP_PORT")
                .map(|p| {
                    p.parse().map_err(|_| ConfigError::Invalid {
                        var: "SMTP_PORT",
                        reason: "expected a port number".into(),
                    })
                })
                .transpose()?,
            smtp_tls: lookup("SMTP_TLS")
                .map(|v| {
                    v.parse().map_err(|reason| ConfigError::Invalid {
                        var: "SMTP_TLS",
                        reason,
                    })
                })
                .transpose()?
                .unwrap_or_default(),
        };
        let jwt_issuer = lookup("JWT_ISSUER")
            .map(|issuer| http_url("JWT_ISSUER", issuer.clone()).map(|_| issuer))
            .transpose()?;
        let jwt_audiences: Vec<String> = lookup("JWT_AUDIENCE")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if jwt_issuer.is_some() && jwt_audiences.is_empty() {
            return Err(ConfigError::Missing("JWT_AUDIENCE"));
        }
        let allow_private = match lookup("ALLOW_PRIVATE_TARGETS").as_deref() {
            Some("true") => true,
            Some("false") => false,
            None => matches!(backend, Backend::Embedded { .. }),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "ALLOW_PRIVATE_TARGETS",
                    reason: format!("expected `true` or `false`, got `{other}`"),
                });
            }
        };
        Ok(Self {
            backend,
            public_base_url: optional_url("PUBLIC_BASE_URL")?,
            providers,
            jwt_issuer,
            jwt_audiences,
            egress: EgressPolicy { allow_private },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn private_targets_are_allowed_on_a_laptop_and_refused_in_aws_unless_set() {
        let aws = [("BACKEND", "aws"), ("TABLE_NAME", "t")];
        assert_eq!(
            config(&[]).map(|c| c.egress),
            Ok(EgressPolicy::ALLOW_PRIVATE)
        );
        assert_eq!(
            config(&aws).map(|c| c.egress),
            Ok(EgressPolicy::PUBLIC_ONLY)
        );
        let local_aws = [aws[0], aws[1], ("ALLOW_PRIVATE_TARGETS", "true")];
        assert_eq!(
            config(&local_aws).map(|c| c.egress),
            Ok(EgressPolicy::ALLOW_PRIVATE)
        );
        let strict = [("ALLOW_PRIVATE_TARGETS", "false")];
        assert_eq!(
            config(&strict).map(|c| c.egress),
            Ok(EgressPolicy::PUBLIC_ONLY)
        );
        assert!(config(&[("ALLOW_PRIVATE_TARGETS", "yes")]).is_err());
    }

    #[test]
    fn embedded_is_the_default_outside_lambda() {
        let c = config(&[]).ok();
        assert_eq!(
            c.map(|c| c.backend),
            Some(Backend::Embedded {
                data_dir: ".local".into()
            })
        );
    }

    #[test]
    fn aws_is_the_default_inside_lambda_and_needs_the_table_name() {
        assert_eq!(
            config(&[("AWS_LAMBDA_FUNCTION_NAME", "f")]),
            Err(ConfigError::Missing("TABLE_NAME"))
        );
        let c = config(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("TABLE_NAME", "t"),
            (
                "OUTBOUND_QUEUE_URL",
                "https://sqs.eu-central-1.amazonaws.com/1/outbound",
            ),
            (
                "OUTBOUND_DLQ_URL",
                "https://sqs.eu-central-1.amazonaws.com/1/outbound-dlq",
            ),
        ]);
        let Ok(Config {
            backend: Backend::Aws(aws),
            ..
        }) = c
        else {
            panic!("expected the aws backend, got {c:?}");
        };
        assert_eq!(aws.table_name, "t");
        assert_eq!(aws.queue_urls.len(), 1);
        assert_eq!(
            aws.dlq_urls[&QueueRole::Outbound],
            "https://sqs.eu-central-1.amazonaws.com/1/outbound-dlq"
        );
    }

    #[test]
    fn an_unknown_backend_and_a_bad_url_are_named() {
        assert!(matches!(
            config(&[("BACKEND", "postgres")]),
            Err(ConfigError::Invalid { var: "BACKEND", .. })
        ));
        assert!(matches!(
            config(&[("TELEGRAM_API_BASE", "ftp://x")]),
            Err(ConfigError::Invalid {
                var: "TELEGRAM_API_BASE",
                ..
            })
        ));
    }

    #[test]
    fn the_jwt_issuer_is_kept_as_given_with_its_audiences() {
        let c = config(&[]).ok();
        assert_eq!(
            c.map(|c| (c.jwt_issuer, c.jwt_audiences)),
            Some((None, vec![]))
        );
        let c = config(&[
            ("JWT_ISSUER", "https://auth.example.com/"),
            ("JWT_AUDIENCE", "dashboard, mobile,,"),
        ])
        .ok();
        assert_eq!(
            c.map(|c| (c.jwt_issuer, c.jwt_audiences)),
            Some((
                Some("https://auth.example.com/".to_owned()),
                vec!["dashboard".to_owned(), "mobile".to_owned()]
            ))
        );
        assert_eq!(
            config(&[("JWT_ISSUER", "https://auth.example.com")]),
            Err(ConfigError::Missing("JWT_AUDIENCE"))
        );
        assert!(matches!(
            config(&[("JWT_ISSUER", "auth.example.com"), ("JWT_AUDIENCE", "a")]),
            Err(ConfigError::Invalid {
                var: "JWT_ISSUER",
                ..
            })
        ));
    }

    #[test]
    fn smtp_tls_defaults_to_starttls_and_parses_every_mode() {
        let tls = |vars: &[(&str, &str)]| config(vars).map(|c| c.providers.smtp_tls);
        assert_eq!(tls(&[]), Ok(SmtpTls::StartTls));
        assert_eq!(tls(&[("SMTP_TLS", "starttls")]), Ok(SmtpTls::StartTls));
        assert_eq!(tls(&[("SMTP_TLS", "TLS")]), Ok(SmtpTls::Tls));
        assert_eq!(tls(&[("SMTP_TLS", "none")]), Ok(SmtpTls::None));
        assert!(matches!(
            tls(&[("SMTP_TLS", "ssl")]),
            Err(ConfigError::Invalid {
                var: "SMTP_TLS",
                ..
            })
        ));
        assert_eq!(SmtpTls::StartTls.default_port(), 587);
        assert_eq!(SmtpTls::Tls.default_port(), 465);
        let c = config(&[("SMTP_HOST", "smtp.example.com"), ("SMTP_PORT", "2525")]).ok();
        assert_eq!(
            c.map(|c| (c.providers.smtp_host, c.providers.smtp_port)),
            Some((Some("smtp.example.com".to_owned()), Some(2525)))
        );
    }
}
