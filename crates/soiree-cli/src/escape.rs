//! Stored strings made safe for a terminal: every string a store holds
//! (topics, ids, listener names, errors, payloads) is hostile, so control
//! characters reach the terminal only as visible escapes.
//!
//! One rule, [`is_unsafe`], for the two ways out: [`escape`] for text
//! (tables, detail views, tail lines, error messages) and [`json`] for JSON
//! documents, where serde_json already escapes C0 and the rest become
//! `\u009b`-style escapes (valid JSON, the same string once parsed).

use std::borrow::Cow;
use std::fmt::Write;

/// Reports whether `c` must not reach a terminal as is: C0 controls
/// (newlines and tabs included: a stored string is one cell), DEL, C1
/// controls (U+009B is a CSI on many terminals), the bidi marks, embeddings,
/// overrides and isolates (U+061C, U+200E–200F, U+202A–202E, U+2066–2069)
/// that reorder what is shown, and the line and paragraph separators.
pub(crate) fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with every unsafe character written as a visible escape: `\n`,
/// `\t`, `\r`, or `\u{1b}`. Backslashes are left alone (paths stay
/// readable), so the output shows the characters rather than round-trips.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A JSON document (from serde_json) with the unsafe characters serde_json
/// leaves raw (DEL, C1, bidi, separators) written as `\uXXXX` escapes.
/// They can only stand inside strings (JSON's own syntax is ASCII), where
/// such an escape means the same character.
pub(crate) fn json(document: String) -> String {
    // serde_json escapes every C0 character inside strings: those left are
    // the layout's newlines and indentation.
    let raw = |c: char| c >= ' ' && is_unsafe(c);
    if !document.chars().any(raw) {
        return document;
    }
    let mut out = String::with_capacity(document.len() + 16);
    for c in document.chars() {
        if raw(c) {
            // Every unsafe character is in the basic plane: one escape.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(escape("order.created"), "order.created");
        assert_eq!(escape("C:\\path é"), "C:\\path é");
        assert_eq!(escape("a\x1b]0;pwned\x07b"), "a\\u{1b}]0;pwned\\u{7}b");
        assert_eq!(escape("l1\nl2\tx\r"), "l1\\nl2\\tx\\r");
        assert_eq!(escape("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(
            escape("\u{202e}abc\u{2066}\u{200f}"),
            "\\u{202e}abc\\u{2066}\\u{200f}"
        );
        // Escaping escaped text changes nothing.
        let once = escape("\x1b[2J").into_owned();
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn json_escapes_what_serde_json_leaves_raw() {
        let hostile = "x\u{9b}2J\u{7f}\u{202e}\x1b";
        let document = serde_json::to_string(&serde_json::json!({ "k": hostile })).unwrap();
        let safe = json(document);
        assert!(!safe.chars().any(is_unsafe), "{safe:?}");
        assert_eq!(safe, r#"{"k":"x\u009b2J\u007f\u202e\u001b"}"#);
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["k"], hostile);
    }
}
