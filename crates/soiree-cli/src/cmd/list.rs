//! `soiree events` and `soiree results`, and the query every listing builds.

use comfy_table::Cell;
use soiree::{Filter, Inspect, Query};

use super::console::Console;
use super::output::{
    CELL_WIDTH, cell, cut, or_dash, print_json, print_next, print_table, short_json, table,
};
use super::store_error;
use crate::error::Result;
use crate::opt::{FilterOpt, ListOpt, PageOpt};
use crate::time::format_time;
use crate::view::{EventView, PageView, ResultView};

/// The store's filter for the options.
pub(super) fn filter(opt: &FilterOpt) -> Filter {
    let mut filter = Filter::default();
    if let Some(topic) = &opt.topic {
        filter = filter.topic(topic);
    }
    if let Some(event_id) = &opt.event_id {
        filter = filter.event_id(event_id);
    }
    if let Some(since) = opt.since {
        filter = filter.since(since);
    }
    if let Some(until) = opt.until {
        filter = filter.until(until);
    }
    filter
}

/// The page the options ask for.
pub(super) fn query(filter_opt: &FilterOpt, page: &PageOpt) -> Query {
    let limit = page.limit as usize;
    let mut query = if page.newest {
        Query::newest(limit)
    } else {
        Query::oldest(limit)
    }
    .filter(filter(filter_opt));
    query.cursor = page.after.clone();
    query
}

/// `soiree events`.
pub(super) async fn events(
    store: &dyn Inspect,
    opt: &ListOpt,
    console: &mut Console,
) -> Result<()> {
    let page = store
        .events(&query(&opt.filter, &opt.page))
        .await
        .map_err(store_error(store))?;
    if opt.output.json {
        return print_json(console, &PageView::new(page, EventView::from));
    }
    if page.items.is_empty() {
        say_none(console, "no events")?;
    } else {
        let mut rows = table(&["ID", "STORED", "TOPIC", "EVENT ID", "PAYLOAD"]);
        for record in page.items {
            let event_id = soiree::inspect::event_id_text(&record.item);
            rows.add_row(vec![
                cell(&record.id),
                Cell::new(or_dash(record.at.map(format_time))),
                cell(&record.item.topic),
                cell(&or_dash(event_id)),
                Cell::new(short_json(&record.item.payload, CELL_WIDTH)),
            ]);
        }
        print_table(console, &rows)?;
    }
    print_next(console, page.next.as_deref())
}

/// `soiree results`.
pub(super) async fn results(
    store: &dyn Inspect,
    opt: &ListOpt,
    console: &mut Console,
) -> Result<()> {
    let page = store
        .results(&query(&opt.filter, &opt.page))
        .await
        .map_err(store_error(store))?;
    if opt.output.json {
        return print_json(console, &PageView::new(page, ResultView::from));
    }
    if page.items.is_empty() {
        say_none(console, "no results")?;
    } else {
        let mut rows = table(&[
            "ID", "STORED", "TOPIC", "EVENT ID", "LISTENER", "ATTEMPT", "OUTCOME",
        ]);
        for record in page.items {
            let result = record.item;
            rows.add_row(vec![
                cell(&record.id),
                Cell::new(or_dash(record.at.map(format_time))),
                cell(&result.topic),
                cell(&result.event_id),
                cell(&result.handler_id),
                Cell::new(result.attempt),
                Cell::new(outcome(result.error.as_deref())),
            ]);
        }
        print_table(console, &rows)?;
    }
    print_next(console, page.next.as_deref())
}

/// `ok`, `snoozed: …` (a [`Snooze`](soiree::Snooze): neither a success nor
/// a failure) or `failed: …`, the error escaped and cut to a cell.
pub(super) fn outcome(error: Option<&str>) -> String {
    match error {
        None => "ok".to_owned(),
        Some(error) => match error.strip_prefix(soiree::SNOOZED_PREFIX) {
            Some(snooze) => format!("snoozed: {}", cut(snooze, CELL_WIDTH)),
            None => format!("failed: {}", cut(error, CELL_WIDTH)),
        },
    }
}

/// Says that a listing is empty.
pub(super) fn say_none(console: &mut Console, what: &str) -> Result<()> {
    use std::io::Write;
    super::console::say!(console.out, "{what}");
    Ok(())
}
