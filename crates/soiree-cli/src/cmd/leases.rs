//! `soiree leases list` and `soiree limits list`: who holds the leader
//! leases (and so fires the periodic schedules), and which listener limit
//! slots are taken, across every process of the store.

use std::time::SystemTime;

use comfy_table::Cell;
use serde::Serialize;
use soiree::Inspect;
use soiree::inspect::{LeaseInfo, LimitSlot};

use super::console::Console;
use super::list::say_none;
use super::output::{cell, or_dash, print_json, print_table, table};
use super::store_error;
use crate::error::Result;
use crate::opt::ViewOpt;
use crate::time::{format_duration, format_time};

/// A leader lease, for `--json`.
#[derive(Debug, Serialize)]
struct LeaseView {
    name: String,
    holder: String,
    token: u64,
    /// Whether the grant was unexpired when read.
    held: bool,
    expires_at: String,
    /// The recorded progress (a periodic schedule's last tick, Unix ms).
    progress: Option<i64>,
    /// The progress as a time.
    progress_at: Option<String>,
}

impl From<LeaseInfo> for LeaseView {
    fn from(lease: LeaseInfo) -> Self {
        Self {
            progress_at: lease.progress_time().map(format_time),
            name: lease.name,
            holder: lease.holder,
            token: lease.token,
            held: lease.held,
            expires_at: format_time(lease.expires_at),
            progress: lease.progress,
        }
    }
}

/// A limit slot, for `--json`.
#[derive(Debug, Serialize)]
struct SlotView {
    key: String,
    holder: String,
    expires_at: String,
}

impl From<LimitSlot> for SlotView {
    fn from(slot: LimitSlot) -> Self {
        Self {
            key: slot.key,
            holder: slot.holder,
            expires_at: format_time(slot.expires_at),
        }
    }
}

/// `--json` of a view: its items.
#[derive(Debug, Serialize)]
struct Items<T> {
    items: Vec<T>,
}

/// `at` relative to now: `in 12.0s`, `3.1s ago`.
fn from_now(at: SystemTime) -> String {
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => format!("in {}", format_duration(ahead)),
        Err(past) => format!("{} ago", format_duration(past.duration())),
    }
}

/// `soiree leases list`.
pub(super) async fn leases(
    store: &dyn Inspect,
    opt: &ViewOpt,
    console: &mut Console,
) -> Result<()> {
    let leases = store
        .leader_leases(opt.limit as usize)
        .await
        .map_err(store_error(store))?;
    if opt.output.json {
        let items = leases.into_iter().map(LeaseView::from).collect();
        return print_json(console, &Items { items });
    }
    if leases.is_empty() {
        return say_none(console, "no leader leases");
    }
    let mut rows = table(&["NAME", "HOLDER", "STATE", "EXPIRES", "TOKEN", "LAST TICK"]);
    for lease in leases {
        rows.add_row(vec![
            cell(&lease.name),
            cell(&lease.holder),
            Cell::new(if lease.held { "held" } else { "expired" }),
            Cell::new(format!(
                "{} ({})",
                format_time(lease.expires_at),
                from_now(lease.expires_at)
            )),
            Cell::new(lease.token),
            Cell::new(or_dash(lease.progress_time().map(format_time))),
        ]);
    }
    print_table(console, &rows)
}

/// `soiree limits list`.
pub(super) async fn limits(
    store: &dyn Inspect,
    opt: &ViewOpt,
    console: &mut Console,
) -> Result<()> {
    let slots = store
        .limit_slots(opt.limit as usize)
        .await
        .map_err(store_error(store))?;
    if opt.output.json {
        let items = slots.into_iter().map(SlotView::from).collect();
        return print_json(console, &Items { items });
    }
    if slots.is_empty() {
        return say_none(console, "no limit slots in use");
    }
    let mut rows = table(&["KEY", "HOLDER", "EXPIRES"]);
    for slot in slots {
        rows.add_row(vec![
            cell(&slot.key),
            cell(&slot.holder),
            Cell::new(format!(
                "{} ({})",
                format_time(slot.expires_at),
                from_now(slot.expires_at)
            )),
        ]);
    }
    print_table(console, &rows)
}
