//! `soiree pending`.

use comfy_table::Cell;
use soiree::{Inspect, Query};

use super::console::Console;
use super::list::say_none;
use super::output::{cell, or_dash, print_json, print_next, print_table, table};
use super::store_error;
use crate::error::Result;
use crate::opt::PendingOpt;
use crate::time::format_duration;
use crate::view::{PageView, PendingView};

pub(super) async fn run(
    store: &dyn Inspect,
    opt: &PendingOpt,
    console: &mut Console,
) -> Result<()> {
    let mut query = Query::oldest(opt.limit as usize);
    query.cursor = opt.after.clone();
    let page = store.pending(&query).await.map_err(store_error(store))?;
    if opt.output.json {
        return print_json(console, &PageView::new(page, PendingView::from));
    }
    if page.items.is_empty() {
        say_none(console, "nothing pending")?;
    } else {
        let mut rows = table(&[
            "ID",
            "CONSUMER",
            "IDLE",
            "DELIVERIES",
            "EVENTS",
            "TOPIC",
            "EVENT ID",
        ]);
        for pending in page.items {
            let event_id = pending
                .event
                .as_ref()
                .and_then(soiree::inspect::event_id_text);
            rows.add_row(vec![
                cell(&pending.id),
                cell(&pending.consumer),
                Cell::new(format_duration(pending.idle)),
                Cell::new(pending.deliveries),
                Cell::new(pending.events),
                cell(&or_dash(pending.event.as_ref().map(|e| e.topic.as_str()))),
                cell(&or_dash(event_id)),
            ]);
        }
        print_table(console, &rows)?;
    }
    print_next(console, page.next.as_deref())
}
