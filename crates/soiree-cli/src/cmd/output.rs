//! Tables for people, JSON for scripts.

use std::io::Write;

use comfy_table::{Cell, Table, TableComponent, presets};
use serde::Serialize;
use serde_json::Value;

use super::console::{Console, say};
use crate::error::{Error, Result};
use crate::escape::{self, escape};

/// The widest a payload or error cell gets, in characters.
pub(super) const CELL_WIDTH: usize = 60;

/// A table with these column titles.
pub(super) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    // Columns apart, a rule under the header, nothing else: greppable.
    table.load_preset(presets::NOTHING);
    for component in [
        TableComponent::HeaderLines,
        TableComponent::MiddleHeaderIntersections,
        TableComponent::LeftHeaderIntersection,
        TableComponent::RightHeaderIntersection,
    ] {
        table.set_style(component, '─');
    }
    table.set_header(header.iter().map(|title| Cell::new(*title)));
    table
}

/// A cell showing a stored string, escaped.
pub(super) fn cell(text: &str) -> Cell {
    Cell::new(escape(text))
}

/// A two-column table of names and values (values escaped).
pub(super) fn fields(rows: &[(&str, String)]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    for (name, value) in rows {
        table.add_row(vec![Cell::new(*name), cell(value)]);
    }
    table
}

/// Prints a table (and a newline) to standard output. Cells are escaped
/// when made (so that widths are right); lines are escaped again in case a
/// cell was not (escaping is idempotent).
pub(super) fn print_table(console: &mut Console, table: &Table) -> Result<()> {
    for line in table.lines() {
        say!(console.out, "{}", escape(line.trim_end()));
    }
    Ok(())
}

/// Prints one JSON document (pretty) to standard output, with the
/// characters a terminal acts on escaped.
pub(super) fn print_json<T: Serialize>(console: &mut Console, value: &T) -> Result<()> {
    let document = serde_json::to_string_pretty(value).map_err(|err| Error::Output(err.into()))?;
    say!(console.out, "{}", escape::json(document));
    Ok(())
}

/// One JSON document on one line, escaped as by [`print_json`].
pub(super) fn json_line<T: Serialize>(value: &T) -> Result<String> {
    let document = serde_json::to_string(value).map_err(|err| Error::Output(err.into()))?;
    Ok(escape::json(document))
}

/// Indented JSON, escaped as by [`print_json`].
pub(super) fn pretty(value: &Value) -> String {
    escape::json(serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()))
}

/// Prints `next` as the cursor of the next page, when there is one.
pub(super) fn print_next(console: &mut Console, next: Option<&str>) -> Result<()> {
    if let Some(next) = next {
        say!(
            console.out,
            "more follow: pass --after {} for the next page",
            escape(next)
        );
    }
    Ok(())
}

/// Compact JSON, cut to `width` characters.
pub(super) fn short_json(value: &Value, width: usize) -> String {
    cut(&escape::json(value.to_string()), width)
}

/// `text` escaped (so on one line), cut to `width` characters with `…`.
pub(super) fn cut(text: &str, width: usize) -> String {
    let one_line = escape(text);
    match one_line.char_indices().nth(width.saturating_sub(1)) {
        Some((at, _)) if one_line.chars().count() > width => format!("{}…", &one_line[..at]),
        _ => one_line.into_owned(),
    }
}

/// An optional value, `-` when absent.
pub(super) fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// A rate for people: `11,425/s`, with one decimal below 10 (`0.5/s`).
pub(super) fn rate(per_sec: f64) -> String {
    if per_sec.is_finite() && per_sec >= 10.0 {
        // Rates are far below 2^53: the cast is exact after rounding.
        let whole = per_sec.round() as u64;
        format!("{}/s", count(whole))
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// Thousands separators for counts: `1,234,567`.
pub(super) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cut_on_one_line() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 5), "abcd…");
        assert_eq!(cut("ab\ncd", 6), "ab\\ncd");
        assert_eq!(cut("\x1b[2J", 40), "\\u{1b}[2J");
        assert_eq!(cut("ééééééé", 3), "éé…");
        assert_eq!(count(0), "0");
        assert_eq!(count(1234), "1,234");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(rate(11_424.756_5), "11,425/s");
        assert_eq!(rate(10.0), "10/s");
        assert_eq!(rate(0.5), "0.5/s");
        assert_eq!(rate(0.0), "0.0/s");
    }
}
