//! Display names: text a person types once and every screen shows back (integration,
//! API key, business, catalog item, client and lead names, usernames).

/// What is wrong with a display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must have 1 to {max} characters")]
    Length { max: usize },
    /// NUL, line breaks, escapes and the other Unicode control characters (category Cc):
    /// a name is one line of visible text, and such characters break logs, CSV exports
    /// and the terminals that show them.
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl NameError {
    /// The stable code a field error carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::Length { .. } => "invalid_length",
            Self::ControlCharacter => "control_character",
        }
    }
}

/// A required display name: trimmed, 1 to `max` characters, no control characters.
pub fn display_name(raw: &str, max: usize) -> Result<String, NameError> {
    let name = raw.trim();
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    let count = name.chars().count();
    if count == 0 || count > max {
        return Err(NameError::Length { max });
    }
    Ok(name.to_owned())
}

/// An optional display name: absent or blank is `None`, anything else as [`display_name`].
pub fn optional_display_name(raw: Option<&str>, max: usize) -> Result<Option<String>, NameError> {
    match raw.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => display_name(name, max).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_name_is_trimmed_and_bounded() {
        assert_eq!(display_name("  Кафе «Уют» ", 100), Ok("Кафе «Уют»".into()));
        assert_eq!(
            display_name("   ", 100),
            Err(NameError::Length { max: 100 })
        );
        assert_eq!(display_name("ab", 1), Err(NameError::Length { max: 1 }));
        assert_eq!(display_name("ёж", 2), Ok("ёж".into()));
        assert_eq!(optional_display_name(Some("  "), 5), Ok(None));
        assert_eq!(optional_display_name(None, 5), Ok(None));
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        for bad in [
            "a\u{0}b",
            "a\nb",
            "a\tb",
            "a\u{1b}[31mb",
            "a\u{7f}",
            "a\u{85}b",
        ] {
            assert_eq!(
                display_name(bad, 100),
                Err(NameError::ControlCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(
            optional_display_name(Some("x\u{0}"), 5),
            Err(NameError::ControlCharacter)
        );
    }

    proptest! {
        #[test]
        fn an_accepted_name_is_one_line_of_visible_text(raw in any::<String>()) {
            if let Ok(name) = display_name(&raw, 200) {
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!(!name.is_empty() && name.chars().count() <= 200);
                prop_assert_eq!(name.trim(), name.as_str());
            }
        }
    }
}
