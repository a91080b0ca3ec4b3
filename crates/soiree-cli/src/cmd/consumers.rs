//! `soiree consumers`.

use comfy_table::Cell;
use soiree::Inspect;

use super::console::Console;
use super::list::say_none;
use super::output::{cell, or_dash, print_json, print_table, table};
use super::store_error;
use crate::error::Result;
use crate::opt::OutputOpt;
use crate::time::format_duration;
use crate::view::{ConsumerView, ConsumersView};

pub(super) async fn run(store: &dyn Inspect, opt: &OutputOpt, console: &mut Console) -> Result<()> {
    let consumers = store.consumers().await.map_err(store_error(store))?;
    if opt.json {
        let view = ConsumersView {
            group: store.info().group,
            consumers: consumers.into_iter().map(ConsumerView::from).collect(),
        };
        return print_json(console, &view);
    }
    if consumers.is_empty() {
        return say_none(console, "no consumers");
    }
    let mut rows = table(&["CONSUMER", "PENDING", "IDLE"]);
    for consumer in consumers {
        rows.add_row(vec![
            cell(&consumer.name),
            Cell::new(consumer.pending),
            Cell::new(or_dash(consumer.idle.map(format_duration))),
        ]);
    }
    print_table(console, &rows)
}
