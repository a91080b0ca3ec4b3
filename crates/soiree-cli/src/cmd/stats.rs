//! `soiree stats`: counts, and rates from two snapshots.

use soiree::Inspect;

use super::console::Console;
use super::output::{count, fields, or_dash, print_json, print_table, rate};
use super::store_error;
use crate::error::Result;
use crate::opt::StatsOpt;
use crate::time::{format_duration, format_time};
use crate::view::StatsView;

pub(super) async fn run(store: &dyn Inspect, opt: &StatsOpt, console: &mut Console) -> Result<()> {
    let first = store.stats().await.map_err(store_error(store))?;
    let (stats, rates) = if opt.interval.is_zero() {
        (first, None)
    } else {
        tokio::time::sleep(opt.interval).await;
        let second = store.stats().await.map_err(store_error(store))?;
        let rates = second.rates_since(&first);
        (second, rates)
    };
    let info = store.info();
    if opt.output.json {
        return print_json(console, &StatsView::new(info, &stats, rates));
    }
    let location = match &info.group {
        Some(group) => format!("{} {} (group {group})", info.kind, info.location),
        None => format!("{} {}", info.kind, info.location),
    };
    let per_sec = |value: Option<f64>| or_dash(value.map(rate));
    let rows = [
        ("store", location),
        ("taken at", or_dash(stats.taken_at.map(format_time))),
        ("events", count(stats.events)),
        ("emitted", count(stats.emitted)),
        ("results", count(stats.results)),
        ("backlog", count(stats.backlog)),
        ("in flight", count(stats.in_flight)),
        ("dead letters", count(stats.dead_letters)),
        ("scheduled", count(stats.scheduled)),
        ("consumers", count(stats.consumers)),
        (
            "oldest pending",
            or_dash(stats.oldest_pending_age.map(format_duration)),
        ),
        ("emit rate", per_sec(rates.map(|r| r.emitted_per_sec))),
        ("handle rate", per_sec(rates.map(|r| r.handled_per_sec))),
    ];
    print_table(console, &fields(&rows))
}
