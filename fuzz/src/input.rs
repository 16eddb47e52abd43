//! The text format of the HTTP-shaped inputs, easy to seed from real requests and for
//! AFL++ to mutate:
//!
//! ```text
//! <flags byte><head lines, each ending in \n>\n<body bytes>
//! ```
//!
//! A head line `name: value` is a header, `?key=value` a query parameter; the first empty
//! line ends the head (an input without one is all head and an empty body... no: all body).

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};

/// An input split into its parts.
pub struct HttpInput<'a> {
    pub flags: u8,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: &'a [u8],
}

/// Splits `data` (see the module doc); `None` for an empty input.
pub fn split(data: &[u8]) -> Option<HttpInput<'_>> {
    let (&flags, rest) = data.split_first()?;
    let (head, body) = match find(rest, b"\n\n") {
        Some(at) => (&rest[..at + 1], &rest[at + 2..]),
        None => (&b""[..], rest),
    };
    let mut headers = HeaderMap::new();
    let mut query = HashMap::new();
    for line in head.split(|&b| b == b'\n') {
        if let Some(pair) = line.strip_prefix(b"?") {
            let pair = String::from_utf8_lossy(pair);
            let (k, v) = pair.split_once('=').unwrap_or((&pair, ""));
            query.insert(k.to_owned(), v.to_owned());
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = HeaderName::from_bytes(line[..colon].trim_ascii());
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
    }
    Some(HttpInput {
        flags,
        headers,
        query,
        body,
    })
}

/// Writes an input in the format [`split`] reads.
pub fn join(flags: u8, head: &[(String, String)], query: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    for (name, value) in head {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    for (k, v) in query {
        out.extend_from_slice(format!("?{k}={v}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `data` cut at the first `\n`: (the line, the rest).
pub fn line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}
