//! `soiree pending`.

use comfy_table::Cell;
use soiree::{Inspect, Query};

use super::console::Console;
use super::list::say_none;
use super::output::{cell, cut, or_dash, print_json, print_next, print_table, table};
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
            "EXPIRES IN",
            "EVENTS",
            "TOPIC",
            "EVENT IDS",
        ]);
        for pending in page.items {
            rows.add_row(vec![
                cell(&pending.id),
                cell(&pending.consumer),
                Cell::new(format_duration(pending.idle)),
                Cell::new(pending.deliveries),
                Cell::new(or_dash(pending.expires_in.map(format_duration))),
                Cell::new(pending.events),
                cell(&or_dash(pending.event.as_ref().map(|e| e.topic.as_str()))),
                cell(&or_dash(event_ids(&pending).map(|ids| cut(&ids, 80)))),
            ]);
        }
        print_table(console, &rows)?;
    }
    print_next(console, page.next.as_deref())
}

/// The first event ids of a delivery, `…` when it covers more.
fn event_ids(pending: &soiree::PendingDelivery) -> Option<String> {
    const SHOWN: usize = 3;
    if pending.event_ids.is_empty() {
        return None;
    }
    let mut text = pending
        .event_ids
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if pending.events > SHOWN as u64 || pending.event_ids.len() > SHOWN {
        text.push_str(&format!(", … ({} events)", pending.events));
    }
    Some(text)
}
