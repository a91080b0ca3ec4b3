//! `soiree dead-letters list|show`.

use std::io::Write;

use comfy_table::{Cell, Table};
use soiree::{DeadLetter, Inspect};

use super::console::{Console, say};
use super::list::{query, say_none};
use super::output::{cell, fields, or_dash, pretty, print_json, print_next, print_table, table};
use super::{letter_error, store_error};
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::{ListOpt, ShowOpt};
use crate::time::format_time;
use crate::view::{DeadLetterView, PageView};

/// `soiree dead-letters list`.
pub(super) async fn list(store: &dyn Inspect, opt: &ListOpt, console: &mut Console) -> Result<()> {
    let page = store
        .dead_letters(&query(&opt.filter, &opt.page))
        .await
        .map_err(store_error(store))?;
    if opt.output.json {
        return print_json(console, &PageView::new(page, DeadLetterView::from));
    }
    if page.items.is_empty() {
        say_none(console, "no dead letters")?;
    } else {
        print_table(console, &letters_table(&page.items))?;
    }
    print_next(console, page.next.as_deref())
}

/// A table of dead letters: the listing's, the preview's, the dry run's.
pub(super) fn letters_table(letters: &[DeadLetter]) -> Table {
    let mut rows = table(&[
        "ID",
        "SET ASIDE",
        "TOPIC",
        "EVENT ID",
        "DELIVERIES",
        "LISTENER",
        "ERROR",
    ]);
    for letter in letters {
        let (listener, error) = letter_error::cells(&letter.error, letter.topic());
        rows.add_row(vec![
            cell(&letter.id),
            Cell::new(or_dash(letter.at.map(format_time))),
            cell(&or_dash(letter.topic())),
            cell(&or_dash(letter.event_id())),
            Cell::new(letter.deliveries),
            Cell::new(listener),
            Cell::new(error),
        ]);
    }
    rows
}

/// `soiree dead-letters show ID`.
pub(super) async fn show(store: &dyn Inspect, opt: &ShowOpt, console: &mut Console) -> Result<()> {
    let letter = store
        .dead_letter(&opt.id)
        .await
        .map_err(store_error(store))?
        .ok_or_else(|| Error::NotFound {
            what: "dead letter",
            id: opt.id.clone(),
        })?;
    if opt.output.json {
        return print_json(console, &DeadLetterView::from(letter));
    }
    let rows = [
        ("id", letter.id.clone()),
        ("set aside", or_dash(letter.at.map(format_time))),
        ("topic", or_dash(letter.topic())),
        ("event id", or_dash(letter.event_id())),
        ("deliveries", letter.deliveries.to_string()),
        ("error", letter.error.clone()),
    ];
    print_table(console, &fields(&rows))?;
    match (&letter.event, &letter.raw) {
        (Some(event), _) => {
            say!(console.out, "payload:");
            say!(console.out, "{}", pretty(&event.payload));
            if !event.properties.is_empty() {
                say!(console.out, "properties:");
                say!(
                    console.out,
                    "{}",
                    pretty(&serde_json::Value::Object(event.properties.clone()))
                );
            }
        }
        (None, Some(raw)) => {
            say!(console.out, "raw entry (not an event):");
            say!(console.out, "{}", escape(raw));
        }
        (None, None) => {}
    }
    Ok(())
}
