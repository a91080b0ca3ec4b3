//! `soiree event ID`: an event with its results and dead letters.

use std::io::Write;

use comfy_table::Cell;
use soiree::Inspect;

use super::console::{Console, say};
use super::list::outcome;
use super::output::{cell, fields, or_dash, pretty, print_json, print_table, table};
use super::{letter_error, store_error};
use crate::error::{Error, Result};
use crate::opt::EventOpt;
use crate::time::format_time;
use crate::view::EventDetailView;

pub(super) async fn run(store: &dyn Inspect, opt: &EventOpt, console: &mut Console) -> Result<()> {
    let detail = store
        .event(&opt.event_id)
        .await
        .map_err(store_error(store))?
        .ok_or_else(|| Error::NotFound {
            what: "event",
            id: opt.event_id.clone(),
        })?;
    if opt.output.json {
        return print_json(console, &EventDetailView::from(detail));
    }
    let event = &detail.event;
    let rows = [
        ("id", event.id.clone()),
        ("stored", or_dash(event.at.map(format_time))),
        ("topic", event.item.topic.clone()),
        ("event id", opt.event_id.clone()),
    ];
    print_table(console, &fields(&rows))?;
    say!(console.out, "payload:");
    say!(console.out, "{}", pretty(&event.item.payload));
    if !event.item.properties.is_empty() {
        say!(console.out, "properties:");
        say!(
            console.out,
            "{}",
            pretty(&serde_json::Value::Object(event.item.properties.clone()))
        );
    }
    if detail.results.is_empty() {
        say!(console.out, "results: none");
    } else {
        say!(console.out, "results:");
        let mut rows = table(&["STORED", "LISTENER", "ATTEMPT", "OUTCOME"]);
        for result in &detail.results {
            rows.add_row(vec![
                Cell::new(or_dash(result.at.map(format_time))),
                cell(&result.item.handler_id),
                Cell::new(result.item.attempt),
                Cell::new(outcome(result.item.error.as_deref())),
            ]);
        }
        print_table(console, &rows)?;
    }
    if !detail.dead_letters.is_empty() {
        say!(console.out, "dead letters:");
        let mut rows = table(&["ID", "SET ASIDE", "DELIVERIES", "LISTENER", "ERROR"]);
        for letter in &detail.dead_letters {
            let (listener, error) = letter_error::cells(&letter.error, letter.topic());
            rows.add_row(vec![
                cell(&letter.id),
                Cell::new(or_dash(letter.at.map(format_time))),
                Cell::new(letter.deliveries),
                Cell::new(listener),
                Cell::new(error),
            ]);
        }
        print_table(console, &rows)?;
    }
    Ok(())
}
