//! The integration registry: every provider the platform connects, with the schema of
//! its configuration. Connecting validates a config against its provider's schema here,
//! and `password` fields are what responses mask and `SecretBox` seals.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::egress::EgressPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    Channel,
    Crm,
    LeadTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Password,
    Url,
    Select,
}

/// An extra rule on a field's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    None,
    /// `[A-Za-z0-9_-]{16,256}`: accepted by Telegram `secret_token` and MAX `secret` alike.
    Token,
    /// An optionally negative integer (chat and group ids).
    Integer,
    /// One or more e-mail addresses separated by commas.
    Emails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SelectOption {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfigField {
    pub key: &'static str,
    pub label: &'static str,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<&'static str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub options: &'static [SelectOption],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'static str>,
    #[serde(skip)]
    pub rule: Rule,
}

impl ConfigField {
    const fn new(
        key: &'static str,
        label: &'static str,
        field_type: FieldType,
        required: bool,
    ) -> Self {
        Self {
            key,
            label,
            field_type,
            required,
            placeholder: None,
            options: &[],
            help: None,
            rule: Rule::None,
        }
    }

    const fn help(mut self, help: &'static str) -> Self {
        self.help = Some(help);
        self
    }

    const fn placeholder(mut self, placeholder: &'static str) -> Self {
        self.placeholder = Some(placeholder);
        self
    }

    const fn rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }

    const fn options(mut self, options: &'static [SelectOption]) -> Self {
        self.options = options;
        self
    }

    pub fn is_secret(&self) -> bool {
        self.field_type == FieldType::Password
    }
}

const fn text(key: &'static str, label: &'static str) -> ConfigField {
    ConfigField::new(key, label, FieldType::Text, true)
}

const fn secret(key: &'static str, label: &'static str) -> ConfigField {
    ConfigField::new(key, label, FieldType::Password, true)
}

const fn url(key: &'static str, label: &'static str) -> ConfigField {
    ConfigField::new(key, label, FieldType::Url, true)
}

const fn select(
    key: &'static str,
    label: &'static str,
    options: &'static [SelectOption],
) -> ConfigField {
    ConfigField::new(key, label, FieldType::Select, true).options(options)
}

const fn optional(mut field: ConfigField) -> ConfigField {
    field.required = false;
    field
}

/// Every channel accepts it; generated when absent (SPEC §5).
const WEBHOOK_SECRET: ConfigField = optional(secret("webhook_secret", "Webhook secret"))
    .rule(Rule::Token)
    .help("16–256 characters A–Z, a–z, 0–9, _ and -; generated when empty");

const META_APP_SECRET: ConfigField =
    secret("app_secret", "App Secret").help("Signs webhooks (X-Hub-Signature-256)");
const META_VERIFY_TOKEN: ConfigField = secret("verify_token", "Webhook Verify Token")
    .help("Answered in the hub.challenge handshake when subscribing the webhook");

const WAPPI_PLATFORMS: &[SelectOption] = &[
    SelectOption {
        value: "telegram",
        label: "Telegram",
    },
    SelectOption {
        value: "whatsapp",
        label: "WhatsApp",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IntegrationMeta {
    pub provider: &'static str,
    pub kind: IntegrationKind,
    pub name: &'static str,
    pub description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<&'static str>,
    pub config_schema: &'static [ConfigField],
}

const fn meta(
    provider: &'static str,
    kind: IntegrationKind,
    name: &'static str,
    description: &'static str,
    docs_url: Option<&'static str>,
    config_schema: &'static [ConfigField],
) -> IntegrationMeta {
    IntegrationMeta {
        provider,
        kind,
        name,
        description,
        docs_url,
        config_schema,
    }
}

use IntegrationKind::{Channel, Crm, LeadTarget};

/// Every provider, in the order the dashboard lists them.
pub static REGISTRY: &[IntegrationMeta] = &[
    meta(
        "telegram_bot",
        Channel,
        "Telegram Bot",
        "Telegram bot through the Bot API",
        Some("https://core.telegram.org/bots/api"),
        &[
            secret("bot_token", "Bot Token").help("Токен от @BotFather"),
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "wappi",
        Channel,
        "Wappi",
        "Personal Telegram or WhatsApp account through the Wappi gateway",
        Some("https://wappi.pro/api-documentation"),
        &[
            secret("api_token", "API Token"),
            text("profile_id", "Profile ID"),
            select("platform", "Platform", WAPPI_PLATFORMS),
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "telegram_crm",
        Channel,
        "Telegram CRM",
        "Personal Telegram account through the user-bot gateway",
        None,
        &[
            url("api_base", "Gateway URL"),
            secret("api_token", "API Token"),
            text("account_id", "Account ID"),
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "max",
        Channel,
        "MAX",
        "MAX messenger bot",
        Some("https://dev.max.ru/docs-api"),
        &[secret("access_token", "Bot Token"), WEBHOOK_SECRET],
    ),
    meta(
        "whatsapp",
        Channel,
        "WhatsApp",
        "WhatsApp Business Cloud API",
        Some("https://developers.facebook.com/docs/whatsapp/cloud-api"),
        &[
            text("phone_number_id", "Phone Number ID"),
            secret("access_token", "Access Token"),
            META_APP_SECRET,
            META_VERIFY_TOKEN,
            optional(text("business_account_id", "WhatsApp Business Account ID")),
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "viber",
        Channel,
        "Viber",
        "Viber bot",
        Some("https://developers.viber.com/docs/api/rest-bot-api/"),
        &[secret("auth_token", "Auth Token"), WEBHOOK_SECRET],
    ),
    meta(
        "vk",
        Channel,
        "ВКонтакте",
        "VK community messages (Callback API)",
        Some("https://dev.vk.com/ru/api/callback/getting-started"),
        &[
            text("group_id", "ID группы").rule(Rule::Integer),
            secret("access_token", "Access Token"),
            text("confirmation_code", "Строка подтверждения")
                .help("The string VK expects in answer to `confirmation`"),
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "instagram",
        Channel,
        "Instagram Direct",
        "Instagram Direct messages through the Meta platform",
        Some("https://developers.facebook.com/docs/messenger-platform/instagram"),
        &[
            text("page_id", "Facebook Page ID"),
            secret("access_token", "Access Token"),
            META_APP_SECRET,
            META_VERIFY_TOKEN,
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "messenger",
        Channel,
        "Facebook Messenger",
        "Messenger conversations of a Facebook page",
        Some("https://developers.facebook.com/docs/messenger-platform"),
        &[
            text("page_id", "Facebook Page ID"),
            secret("access_token", "Page Access Token"),
            META_APP_SECRET,
            META_VERIFY_TOKEN,
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "web_widget",
        Channel,
        "Веб-виджет",
        "Chat widget embedded in the business's site",
        None,
        &[
            optional(text("allowed_domains", "Разрешённые домены"))
                .help("Через запятую, например: example.com, shop.example.com"),
            WEBHOOK_SECRET,
        ],
    ),
    meta(
        "bitrix24",
        Crm,
        "Bitrix24",
        "Leads and contacts in Bitrix24 CRM",
        Some("https://apidocs.bitrix24.ru/"),
        &[url("webhook_url", "Webhook URL").help("URL вебхука из настроек Bitrix24")],
    ),
    meta(
        "amocrm",
        Crm,
        "amoCRM",
        "Leads in the amoCRM sales pipeline",
        Some("https://www.amocrm.ru/developers/"),
        &[
            text("subdomain", "Поддомен").placeholder("yourcompany"),
            text("client_id", "Client ID"),
            secret("client_secret", "Client Secret"),
            optional(url("redirect_uri", "Redirect URI")),
            optional(secret("access_token", "Access Token")),
            optional(secret("refresh_token", "Refresh Token")),
        ],
    ),
    meta(
        "hubspot",
        Crm,
        "HubSpot",
        "Contacts and deals in HubSpot CRM",
        Some("https://developers.hubspot.com/"),
        &[secret("api_key", "Private App Access Token")],
    ),
    meta(
        "salesforce",
        Crm,
        "Salesforce",
        "Leads in Salesforce",
        Some("https://developer.salesforce.com/"),
        &[
            url("instance_url", "Instance URL"),
            text("client_id", "Consumer Key"),
            secret("client_secret", "Consumer Secret"),
        ],
    ),
    meta(
        "syrve",
        Crm,
        "Syrve (iiko Cloud)",
        "Orders and menus in Syrve for restaurants",
        Some("https://api-ru.syrve.live/swagger/ui/index"),
        &[
            secret("api_login", "API Login"),
            text("organization_id", "Organization ID"),
        ],
    ),
    meta(
        "iiko",
        Crm,
        "iiko",
        "Orders and menus in iiko for restaurants",
        Some("https://api-ru.iiko.services/"),
        &[secret("api_login", "API Login")],
    ),
    meta(
        "email",
        LeadTarget,
        "E-mail",
        "Each lead as an e-mail (SMTP with STARTTLS)",
        None,
        &[
            text("recipients", "Получатели")
                .rule(Rule::Emails)
                .help("Через запятую"),
            optional(text("from_address", "Отправитель")).rule(Rule::Emails),
            optional(text("smtp_username", "SMTP user")),
            optional(secret("smtp_password", "SMTP password")),
        ],
    ),
    meta(
        "telegram",
        LeadTarget,
        "Telegram (leads to a chat)",
        "Each lead as a message from a bot to a chat or channel",
        Some("https://core.telegram.org/bots/api#sendmessage"),
        &[
            secret("bot_token", "Bot Token").help("Токен от @BotFather"),
            text("chat_id", "Chat ID")
                .rule(Rule::Integer)
                .help("ID чата или канала, куда бот добавлен"),
        ],
    ),
    meta(
        "webhooks",
        LeadTarget,
        "Webhooks",
        "Each lead POSTed as JSON, signed with the Standard Webhooks scheme",
        Some("https://www.standardwebhooks.com/"),
        &[
            url("url", "Endpoint URL"),
            optional(secret("secret", "Signing secret")).help("whsec_…; generated when empty"),
        ],
    ),
    meta(
        "getresponse",
        LeadTarget,
        "GetResponse",
        "E-mail marketing lists (leads are not delivered yet)",
        Some("https://apireference.getresponse.com/"),
        &[secret("api_key", "API Key")],
    ),
    meta(
        "sendpulse",
        LeadTarget,
        "SendPulse",
        "E-mail and messenger campaigns (leads are not delivered yet)",
        Some("https://sendpulse.com/integrations/api"),
        &[text("client_id", "ID"), secret("client_secret", "Secret")],
    ),
    meta(
        "unisender",
        LeadTarget,
        "Unisender",
        "E-mail campaigns (leads are not delivered yet)",
        Some("https://www.unisender.com/ru/support/api/"),
        &[secret("api_key", "API Key")],
    ),
    meta(
        "lptracker",
        LeadTarget,
        "LPTracker",
        "Lead tracking CRM (leads are not delivered yet)",
        None,
        &[text("login", "Login"), secret("password", "Password")],
    ),
    meta(
        "uontravel",
        LeadTarget,
        "U-ON.Travel",
        "Travel agency CRM (leads are not delivered yet)",
        Some("https://api.u-on.ru/"),
        &[secret("api_key", "API Key")],
    ),
];

pub fn find(provider: &str) -> Option<&'static IntegrationMeta> {
    REGISTRY.iter().find(|m| m.provider == provider)
}

/// Why a field of a config was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }
}

/// What is wrong with a `url` field's value under `egress`, if anything.
pub fn url_problem(key: &str, value: &str, egress: EgressPolicy) -> Option<FieldError> {
    let plain_http_ok =
        egress.allow_private && value.starts_with("http://") && value.parse::<http::Uri>().is_ok();
    if !(is_https_url(value) || plain_http_ok) {
        let expected = if egress.allow_private {
            "expected an http:// or https:// URL"
        } else {
            "expected an https:// URL"
        };
        return Some(FieldError::new(key, "not_https", expected));
    }
    egress
        .check_url(value)
        .err()
        .map(|refused| FieldError::new(key, "private_address", refused.to_string()))
}

fn is_https_url(value: &str) -> bool {
    value
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace))
        && value.parse::<http::Uri>().is_ok()
}

fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.contains(char::is_whitespace)
        && !domain.contains('@')
}

fn check_rule(field: &ConfigField, value: &str) -> Option<FieldError> {
    let bad = |code, message: &str| Some(FieldError::new(field.key, code, message));
    match field.rule {
        Rule::None => None,
        Rule::Token => {
            let ok = (16..=256).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if ok {
                None
            } else {
                bad(
                    "invalid_format",
                    "expected 16–256 characters of A–Z, a–z, 0–9, _ and -",
                )
            }
        }
        Rule::Integer => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                bad("invalid_format", "expected an integer")
            }
        }
        Rule::Emails => {
            if value.split(',').map(str::trim).all(is_email) {
                None
            } else {
                bad(
                    "invalid_format",
                    "expected e-mail addresses separated by commas",
                )
            }
        }
    }
}

impl IntegrationMeta {
    pub fn field(&self, key: &str) -> Option<&'static ConfigField> {
        self.config_schema.iter().find(|f| f.key == key)
    }

    /// Validates a config against the schema. Returns the fields as strings (empty optional
    /// fields dropped), or every problem at once, each naming its field. `url` fields
    /// follow `egress`: `https://` to a public host, or (private targets allowed) also
    /// `http://` and private addresses.
    pub fn validate(
        &self,
        config: &Map<String, Value>,
        egress: EgressPolicy,
    ) -> Result<BTreeMap<String, String>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        for key in config.keys() {
            if self.field(key).is_none() {
                errors.push(FieldError::new(
                    key,
                    "unknown_field",
                    format!("{} has no field `{key}`", self.provider),
                ));
            }
        }
        for field in self.config_schema {
            let value = match config.get(field.key) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.trim()),
                Some(_) => {
                    errors.push(FieldError::new(
                        field.key,
                        "wrong_type",
                        "expected a string",
                    ));
                    continue;
                }
            };
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                if field.required {
                    errors.push(FieldError::new(
                        field.key,
                        "required",
                        format!("{} is required", field.label),
                    ));
                }
                continue;
            };
            let problem = match field.field_type {
                FieldType::Url => url_problem(field.key, value, egress),
                FieldType::Select if !field.options.iter().any(|o| o.value == value) => {
                    let allowed: Vec<&str> = field.options.iter().map(|o| o.value).collect();
                    Some(FieldError::new(
                        field.key,
                        "not_in_options",
                        format!("expected one of: {}", allowed.join(", ")),
                    ))
                }
                _ => check_rule(field, value),
            };
            match problem {
                Some(e) => errors.push(e),
                None => {
                    out.insert(field.key.to_owned(), value.to_owned());
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn every_provider_of_the_spec_is_registered_once() {
        let expected = [
            "telegram_bot",
            "wappi",
            "telegram_crm",
            "max",
            "whatsapp",
            "viber",
            "vk",
            "instagram",
            "messenger",
            "web_widget",
            "bitrix24",
            "amocrm",
            "hubspot",
            "salesforce",
            "syrve",
            "iiko",
            "email",
            "telegram",
            "webhooks",
            "getresponse",
            "sendpulse",
            "unisender",
            "lptracker",
            "uontravel",
        ];
        let names: Vec<&str> = REGISTRY.iter().map(|m| m.provider).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn every_channel_accepts_a_webhook_secret_and_every_select_has_options() {
        for meta in REGISTRY {
            if meta.kind == IntegrationKind::Channel {
                assert!(meta.field("webhook_secret").is_some(), "{}", meta.provider);
            }
            for field in meta.config_schema {
                assert_eq!(
                    field.field_type == FieldType::Select,
                    !field.options.is_empty(),
                    "{}.{}",
                    meta.provider,
                    field.key
                );
            }
        }
    }

    #[test]
    fn each_problem_names_its_field() {
        let wappi = find("wappi").unwrap_or_else(|| unreachable!());
        let errors = wappi
            .validate(
                &obj(json!({"api_token": 42, "platform": "icq", "color": "red"})),
                EgressPolicy::PUBLIC_ONLY,
            )
            .err()
            .unwrap_or_default();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            found,
            vec![
                ("color", "unknown_field"),
                ("api_token", "wrong_type"),
                ("profile_id", "required"),
                ("platform", "not_in_options")
            ]
        );
    }

    #[test]
    fn urls_must_be_https_and_tokens_well_formed() {
        let bitrix = find("bitrix24").unwrap_or_else(|| unreachable!());
        let err = bitrix.validate(
            &obj(json!({"webhook_url": "http://b24.example.com/rest/1/x/"})),
            EgressPolicy::PUBLIC_ONLY,
        );
        assert_eq!(err.err().map(|e| e[0].code), Some("not_https"));
        assert!(
            bitrix
                .validate(
                    &obj(json!({"webhook_url": "https://b24.example.com/rest/1/x/"})),
                    EgressPolicy::PUBLIC_ONLY
                )
                .is_ok()
        );
        let tg = find("telegram_bot").unwrap_or_else(|| unreachable!());
        let err = tg.validate(
            &obj(json!({"bot_token": "1:x", "webhook_secret": "short"})),
            EgressPolicy::PUBLIC_ONLY,
        );
        assert_eq!(err.err().map(|e| e[0].code), Some("invalid_format"));
    }

    #[test]
    fn a_private_literal_host_is_refused_in_aws_and_plain_http_allowed_only_locally() {
        let hooks = find("webhooks").unwrap_or_else(|| unreachable!());
        let code = |url: &str, egress| {
            hooks
                .validate(&obj(json!({ "url": url })), egress)
                .err()
                .map(|e| (e[0].field.clone(), e[0].code))
        };
        for url in [
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/hook",
            "https://[::1]:8443/hook",
            "https://2130706433/",
        ] {
            assert_eq!(
                code(url, EgressPolicy::PUBLIC_ONLY),
                Some(("url".to_owned(), "private_address")),
                "{url}"
            );
            assert_eq!(
                code(url, EgressPolicy::ALLOW_PRIVATE),
                None,
                "{url} locally"
            );
        }
        let local = "http://127.0.0.1:8080/hook";
        assert_eq!(
            code(local, EgressPolicy::PUBLIC_ONLY),
            Some(("url".to_owned(), "not_https"))
        );
        assert_eq!(code(local, EgressPolicy::ALLOW_PRIVATE), None);
        assert_eq!(
            code("https://crm.example.com/hook", EgressPolicy::PUBLIC_ONLY),
            None
        );
    }

    fn valid_value(field: &ConfigField) -> String {
        match (field.field_type, field.rule) {
            (FieldType::Url, _) => "https://crm.example.com/hook".into(),
            (FieldType::Select, _) => field.options[0].value.into(),
            (_, Rule::Token) => "abcdefghijklmnop_-123".into(),
            (_, Rule::Integer) => "-100123".into(),
            (_, Rule::Emails) => "sales@example.com, boss@example.com".into(),
            _ => "value-1".into(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Property 1 (schema completeness): a config with every required field passes, and
        /// dropping any one required field is refused naming exactly that field.
        #[test]
        fn schema_names_every_required_field(index in 0usize..REGISTRY.len(), drop_seed in any::<usize>()) {
            let meta = &REGISTRY[index % REGISTRY.len()];
            let full: Map<String, Value> = meta
                .config_schema
                .iter()
                .filter(|f| f.required)
                .map(|f| (f.key.to_owned(), Value::String(valid_value(f))))
                .collect();
            prop_assert!(meta.validate(&full, EgressPolicy::PUBLIC_ONLY).is_ok(), "{}", meta.provider);
            let required: Vec<&ConfigField> = meta.config_schema.iter().filter(|f| f.required).collect();
            prop_assume!(!required.is_empty());
            let dropped = required[drop_seed % required.len()];
            let mut partial = full.clone();
            partial.remove(dropped.key);
            let errors = meta.validate(&partial, EgressPolicy::PUBLIC_ONLY).err().unwrap_or_default();
            prop_assert_eq!(errors.len(), 1);
            prop_assert_eq!(errors[0].field.as_str(), dropped.key);
            prop_assert_eq!(errors[0].code, "required");
        }

        /// Arbitrary JSON never panics the validator and never passes unknown keys through.
        #[test]
        fn arbitrary_configs_are_refused_or_clean(index in 0usize..REGISTRY.len(), keys in proptest::collection::vec("[a-z_]{1,12}", 0..6), value in ".*") {
            let meta = &REGISTRY[index % REGISTRY.len()];
            let config: Map<String, Value> = keys.iter().map(|k| (k.clone(), Value::String(value.clone()))).collect();
            if let Ok(clean) = meta.validate(&config, EgressPolicy::PUBLIC_ONLY) {
                prop_assert!(clean.keys().all(|k| meta.field(k).is_some()));
            }
        }
    }
}
