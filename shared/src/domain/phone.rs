//! Phone numbers in E.164, so one phone is one client across channels.
//!
//! Providers send phones in every shape: `+7 999 123-45-67`, `79991234567` (WhatsApp
//! `wa_id`, Wappi), `8 (999) 123-45-67` (a Russian trunk prefix). Parsing and validation
//! are Google's libphonenumber metadata through the `phonenumber` crate.

use phonenumber::{Mode, country};

/// The E.164 form (`+79991234567`) of a phone number, or `None` when it is not a valid
/// number. Without a `+`, a number is read as international digits first (what messengers
/// send), then as a national Russian number (`8…`), the platform's home market.
pub fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > 32 {
        return None;
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 7 || digits.len() > 15 {
        return None;
    }
    let candidates: Vec<(Option<country::Id>, String)> = if trimmed.starts_with('+') {
        vec![(None, format!("+{digits}"))]
    } else {
        vec![
            (None, format!("+{digits}")),
            (Some(country::Id::RU), digits.clone()),
        ]
    };
    candidates.into_iter().find_map(|(region, text)| {
        let number = phonenumber::parse(region, &text).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        // Only an E.164 form that is itself valid: the metadata accepts some national forms
        // whose E.164 form it refuses (`888439245676` → `+78439245676`, found by fuzzing),
        // and a stored phone must normalise to itself.
        let again = phonenumber::parse(None, &e164).ok()?;
        phonenumber::is_valid(&again).then_some(e164)
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn every_shape_of_one_number_is_one_e164() {
        for raw in [
            "+7 999 123-45-67",
            "79991234567",
            "8 (999) 123-45-67",
            "+79991234567",
            " +7(999)1234567 ",
        ] {
            assert_eq!(normalize(raw).as_deref(), Some("+79991234567"), "{raw}");
        }
        assert_eq!(normalize("16315551181").as_deref(), Some("+16315551181"));
        assert_eq!(
            normalize("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
    }

    #[test]
    fn garbage_is_not_a_phone() {
        for raw in ["", "abc", "123", "+0000000000", &"9".repeat(40)] {
            assert_eq!(normalize(raw), None, "{raw}");
        }
    }
}
