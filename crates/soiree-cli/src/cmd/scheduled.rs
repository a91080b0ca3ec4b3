//! `soiree scheduled list`.

use comfy_table::Cell;
use serde::Serialize;
use serde_json::{Map, Value};
use soiree::{Inspect, ScheduledEvent};

use super::console::Console;
use super::list::{query, say_none};
use super::output::{
    CELL_WIDTH, cell, or_dash, print_json, print_next, print_table, short_json, table,
};
use super::store_error;
use crate::error::Result;
use crate::opt::ListOpt;
use crate::time::format_time;
use crate::view::PageView;

/// A delayed event, for `--json`.
#[derive(Debug, Serialize)]
struct ScheduledView {
    /// The store's id (a cursor).
    id: String,
    due_at: String,
    topic: String,
    event_id: Option<String>,
    payload: Value,
    properties: Map<String, Value>,
}

impl From<ScheduledEvent> for ScheduledView {
    fn from(scheduled: ScheduledEvent) -> Self {
        Self {
            event_id: scheduled.event_id(),
            id: scheduled.id,
            due_at: format_time(scheduled.due_at),
            topic: scheduled.event.topic,
            payload: scheduled.event.payload,
            properties: scheduled.event.properties,
        }
    }
}

/// `soiree scheduled list`.
pub(super) async fn list(store: &dyn Inspect, opt: &ListOpt, console: &mut Console) -> Result<()> {
    let page = store
        .scheduled(&query(&opt.filter, &opt.page))
        .await
        .map_err(store_error(store))?;
    if opt.output.json {
        return print_json(console, &PageView::new(page, ScheduledView::from));
    }
    if page.items.is_empty() {
        say_none(console, "no delayed events")?;
    } else {
        let mut rows = table(&["ID", "DUE", "TOPIC", "EVENT ID", "PAYLOAD"]);
        for scheduled in page.items {
            rows.add_row(vec![
                cell(&scheduled.id),
                Cell::new(format_time(scheduled.due_at)),
                cell(&scheduled.event.topic),
                cell(&or_dash(scheduled.event_id())),
                Cell::new(short_json(&scheduled.event.payload, CELL_WIDTH)),
            ]);
        }
        print_table(console, &rows)?;
    }
    print_next(console, page.next.as_deref())
}
