//! Domain text functions: phone normalisation and the prompt template language.

use std::collections::BTreeMap;

use shared::domain::phone;
use shared::domain::prompt::{self, PromptVariable, VariableSource};

use crate::input;

/// `phone::normalize`: a result is E.164 (`+`, 8-16 characters, digits), and normalising
/// it again gives it back (one phone is one client).
pub fn phone(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Some(e164) = phone::normalize(raw) else {
        return;
    };
    let digits = e164
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("{raw:?} → {e164:?}: no +"));
    assert!(
        (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "{raw:?} → {e164:?} is not E.164"
    );
    assert_eq!(
        phone::normalize(&e164).as_deref(),
        Some(e164.as_str()),
        "{raw:?} → {e164:?} does not normalise to itself"
    );
}

/// `prompt::{placeholders, validate, substitute}` on `<declared keys, comma-separated>\n
/// <value>\n<content>`:
/// * `validate` lists exactly what `placeholders` finds, and reports its error;
/// * substituting nothing changes nothing;
/// * after every found placeholder is given a non-empty value without braces, none of
///   them is left, and nothing else changed where there was no placeholder.
pub fn prompt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (keys, rest) = input::line(text.as_bytes());
    let (value, content) = input::line(rest);
    let (Ok(keys), Ok(value), Ok(content)) = (
        std::str::from_utf8(keys),
        std::str::from_utf8(value),
        std::str::from_utf8(content),
    ) else {
        return;
    };
    let variables: Vec<PromptVariable> = keys
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|key| PromptVariable {
            key: key.to_owned(),
            label: String::new(),
            default_value: value.to_owned(),
            source: VariableSource::Custom,
        })
        .collect();
    let found = prompt::placeholders(content);
    let (errors, listed) = prompt::validate(content, &variables);
    match &found {
        Ok(names) => assert_eq!(&listed, names, "validate and placeholders disagree"),
        Err(e) => {
            assert!(listed.is_empty());
            assert!(errors.contains(e), "validate misses {e:?}");
        }
    }
    assert_eq!(prompt::substitute(content, &BTreeMap::new()), content);
    let Ok(names) = found else {
        return;
    };
    let value: String = value.chars().filter(|c| *c != '{' && *c != '}').collect();
    let value = if value.is_empty() {
        "v".to_owned()
    } else {
        value
    };
    let values: BTreeMap<String, String> =
        names.iter().map(|n| (n.clone(), value.clone())).collect();
    let filled = prompt::substitute(content, &values);
    if let Ok(left) = prompt::placeholders(&filled) {
        assert!(
            left.iter().all(|n| !values.contains_key(n)),
            "{content:?} → {filled:?} still has {left:?}"
        );
    }
    if names.is_empty() {
        assert_eq!(filled, content);
    }
}
