//! Bot prompts: `{{variable}}` placeholders, validation and substitution (seed 003,
//! properties 5 and 6). The rules are documented in `docs/prompts.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest prompt accepted.
pub const MAX_CHARS: usize = 20_000;

/// Section headings a prompt must have, each in Russian or English.
pub const REQUIRED_SECTIONS: &[(&str, &[&str])] = &[
    ("role", &["## Роль", "## Role"]),
    ("rules", &["## Правила", "## Rules"]),
];

/// Variables filled from the business profile and the catalog without being declared.
pub const BUILT_IN: &[&str] = &[
    "business_name",
    "business_type",
    "language",
    "timezone",
    "working_hours",
    "phone",
    "address",
    "website",
    "description",
    "catalog",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableSource {
    BusinessProfile,
    Catalog,
    Custom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptVariable {
    pub key: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub default_value: String,
    pub source: VariableSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptError {
    pub code: &'static str,
    pub message: String,
}

fn error(code: &'static str, message: impl Into<String>) -> PromptError {
    PromptError {
        code,
        message: message.into(),
    }
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The placeholders of a prompt in order of appearance (each once), or the first
/// unbalanced brace as an error.
pub fn placeholders(content: &str) -> Result<Vec<String>, PromptError> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(open) = rest.find("{{") {
        if rest[..open].contains("}}") {
            return Err(error("unbalanced_braces", "`}}` without `{{`"));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(error("unbalanced_braces", "`{{` is never closed"));
        };
        let name = after[..close].trim();
        if name.contains("{{") || !valid_name(name) {
            return Err(error(
                "invalid_placeholder",
                format!("`{{{{{name}}}}}` is not a variable name (a–z, 0–9, _)"),
            ));
        }
        if !found.iter().any(|f| f == name) {
            found.push(name.to_owned());
        }
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(error("unbalanced_braces", "`}}` without `{{`"));
    }
    Ok(found)
}

/// Every problem of a prompt: length, braces, unknown variables, missing sections.
pub fn validate(content: &str, variables: &[PromptVariable]) -> (Vec<PromptError>, Vec<String>) {
    let mut errors = Vec::new();
    if content.trim().is_empty() {
        errors.push(error("empty", "the prompt is empty"));
    }
    if content.chars().count() > MAX_CHARS {
        errors.push(error("too_long", format!("at most {MAX_CHARS} characters")));
    }
    for variable in variables {
        if !valid_name(&variable.key) {
            errors.push(error(
                "invalid_variable",
                format!("`{}` is not a variable name", variable.key),
            ));
        }
        if variable.default_value.contains("{{") || variable.default_value.contains("}}") {
            errors.push(error(
                "invalid_variable",
                format!(
                    "the value of `{}` must not contain `{{{{` or `}}}}`",
                    variable.key
                ),
            ));
        }
    }
    let found = match placeholders(content) {
        Ok(found) => found,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    for name in &found {
        let declared = variables.iter().any(|v| &v.key == name);
        if !declared && !BUILT_IN.contains(&name.as_str()) {
            errors.push(error(
                "unknown_variable",
                format!("`{{{{{name}}}}}` is neither declared nor built in"),
            ));
        }
    }
    for (section, headings) in REQUIRED_SECTIONS {
        if !headings
            .iter()
            .any(|h| content.lines().any(|l| l.trim_end() == *h))
        {
            errors.push(error(
                "missing_section",
                format!(
                    "the {section} section is missing (a line `{}`)",
                    headings[0]
                ),
            ));
        }
    }
    (errors, found)
}

/// Replaces every `{{name}}` whose value is given; other placeholders stay as they are.
pub fn substitute(content: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            break;
        };
        let name = after[..close].trim();
        out.push_str(&rest[..open]);
        match values.get(name) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GOOD: &str = "## Роль\nТы — оператор {{business_name}}.\n## Правила\nОтвечай на {{language}}. Скидка: {{discount}}.";

    fn discount() -> Vec<PromptVariable> {
        vec![PromptVariable {
            key: "discount".into(),
            label: "Скидка".into(),
            default_value: "10%".into(),
            source: VariableSource::Custom,
        }]
    }

    #[test]
    fn a_good_prompt_validates_and_lists_its_variables() {
        let (errors, found) = validate(GOOD, &discount());
        assert_eq!(errors, vec![]);
        assert_eq!(found, vec!["business_name", "language", "discount"]);
    }

    #[test]
    fn each_problem_is_reported() {
        let codes = |content: &str| -> Vec<&'static str> {
            validate(content, &[]).0.iter().map(|e| e.code).collect()
        };
        assert_eq!(
            codes("## Role\n## Rules\n{{business_name"),
            vec!["unbalanced_braces"]
        );
        assert_eq!(
            codes("## Role\n## Rules\nbusiness_name}}"),
            vec!["unbalanced_braces"]
        );
        assert_eq!(
            codes("## Role\n## Rules\n{{Bad Name}}"),
            vec!["invalid_placeholder"]
        );
        assert_eq!(
            codes("## Role\n## Rules\n{{mystery}}"),
            vec!["unknown_variable"]
        );
        assert_eq!(codes("## Role\nhello"), vec!["missing_section"]);
        assert_eq!(
            codes(""),
            vec!["empty", "missing_section", "missing_section"]
        );
    }

    #[test]
    fn substitution_replaces_given_values_and_keeps_the_rest() {
        let values = BTreeMap::from([("business_name".to_owned(), "Ромашка".to_owned())]);
        assert_eq!(
            substitute("Кафе {{business_name}}, {{ other }}", &values),
            "Кафе Ромашка, {{ other }}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Property 6: no placeholder of a provided variable survives substitution, even
        /// when values themselves look like text around braces.
        #[test]
        fn substitution_leaves_no_placeholder_of_a_provided_variable(
            names in proptest::collection::btree_set("[a-z][a-z0-9_]{0,8}", 1..5),
            values in proptest::collection::vec("[^{}]{0,12}", 5),
            filler in proptest::collection::vec("[^{}]{0,20}", 6),
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let mut content = String::new();
            for (i, name) in names.iter().enumerate() {
                content.push_str(&filler[i % filler.len()]);
                content.push_str(&format!("{{{{{name}}}}}"));
            }
            content.push_str(&filler[5]);
            let map: BTreeMap<String, String> = names.iter().cloned().zip(values.iter().cloned()).collect();
            let out = substitute(&content, &map);
            for name in map.keys() {
                let placeholder = format!("{{{{{name}}}}}");
                prop_assert!(!out.contains(&placeholder), "{} survived in {}", placeholder, out);
            }
        }

        /// Property 5: the validator finds unbalanced braces wherever they are, and never
        /// panics on arbitrary text.
        #[test]
        fn validator_flags_an_unclosed_placeholder_anywhere(prefix in "[^{}]{0,40}", suffix in "[^{}]{0,40}") {
            let content = format!("## Role\n## Rules\n{prefix}{{{{business_name{suffix}");
            let (errors, _) = validate(&content, &[]);
            prop_assert!(errors.iter().any(|e| e.code == "unbalanced_braces" || e.code == "invalid_placeholder"));
        }

        #[test]
        fn validator_never_panics(content in "\\PC{0,200}") {
            let _ = validate(&content, &[]);
            let _ = substitute(&content, &BTreeMap::new());
        }
    }
}
