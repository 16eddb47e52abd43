//! Typed identifiers.
//!
//! Every id that becomes part of a table key is validated on construction: ASCII letters,
//! digits, `-` and `_`, 1..=64 characters. A key separator (`#`) can therefore never be
//! smuggled in through an id, which is what makes tenant-prefixed keys safe.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than 64 characters")]
    TooLong { kind: &'static str },
    #[error("{kind} may contain only letters, digits, '-' and '_'")]
    InvalidCharacter { kind: &'static str },
}

/// A ULID that sorts after every other one this process made, even within one
/// millisecond (a plain ULID is random below the millisecond). For sort keys of events
/// that must list in the order they happened.
pub fn ordered_ulid() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > 64 {
        return Err(IdError::TooLong { kind });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::InvalidCharacter { kind });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            /// A fresh, time-ordered id (ULID, lower case).
            pub fn generate() -> Self {
                Self(ulid::Ulid::new().to_string().to_ascii_lowercase())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A business using the platform; every key is prefixed with it.
    TenantId,
    "tenant_id"
);
id_type!(
    /// A connected messenger account, CRM or lead target.
    IntegrationId,
    "integration_id"
);
id_type!(
    /// A customer of a tenant.
    ClientId,
    "client_id"
);
id_type!(
    /// A conversation of one client through one integration.
    DialogId,
    "dialog_id"
);
id_type!(
    /// A stored inbound or outbound message.
    MessageId,
    "message_id"
);

id_type!(
    /// A lead (a request from a site form, a back office, a bot).
    LeadId,
    "lead_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_key_separators_and_empty_values() {
        assert!(TenantId::parse("acme-1_x").is_ok());
        assert_eq!(
            TenantId::parse("acme#INTEGRATION"),
            Err(IdError::InvalidCharacter { kind: "tenant_id" })
        );
        assert_eq!(
            TenantId::parse(""),
            Err(IdError::Empty { kind: "tenant_id" })
        );
        assert!(TenantId::parse("a".repeat(65)).is_err());
    }

    #[test]
    fn generated_ids_are_valid_and_unique() {
        let a = IntegrationId::generate();
        let b = IntegrationId::generate();
        assert_ne!(a, b);
        assert!(IntegrationId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn ordered_ulids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| ordered_ulid()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn deserializing_an_invalid_id_fails() {
        let r: Result<TenantId, _> = serde_json::from_str("\"a b\"");
        assert!(r.is_err());
    }
}
