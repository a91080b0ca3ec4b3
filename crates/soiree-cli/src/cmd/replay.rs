//! `soiree replay EVENT_ID`.

use std::io::Write;

use soiree::{Filter, Inspect, Query};

use super::console::{Console, say};
use super::output::{count, print_json};
use super::store_error;
use crate::audit;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::ReplayOpt;
use crate::time::format_time;
use crate::view::ActionView;

/// The most pages of dead letters read to find a dead-lettered event.
const MAX_PAGES: usize = 1_000;

pub(super) async fn run(store: &dyn Inspect, opt: &ReplayOpt, console: &mut Console) -> Result<()> {
    let quoted = format!("\"{}\"", escape(&opt.event_id));
    if opt.dry_run {
        let summary = summary(store, &opt.event_id).await?;
        if opt.output.json {
            return print_json(console, &view(opt, 0, true));
        }
        say!(console.out, "{summary}");
        say!(
            console.out,
            "dry run: would replay event {quoted}; nothing was changed"
        );
        return Ok(());
    }
    if !opt.confirm.yes && console.interactive {
        let summary = summary(store, &opt.event_id).await?;
        say!(console.err, "{summary}");
    }
    console.confirm(opt.confirm.yes, &format!("replay event {quoted}"))?;
    let selection = format!("event {}", opt.event_id);
    if let Err(err) = store.replay(&opt.event_id).await {
        let err = store_error(store)(err);
        audit::record(
            &store.info(),
            "replay",
            &selection,
            1,
            0,
            Some(&err.to_string()),
        );
        return Err(err);
    }
    audit::record(&store.info(), "replay", &selection, 1, 1, None);
    if opt.output.json {
        return print_json(console, &view(opt, 1, false));
    }
    say!(console.out, "replayed event {quoted}");
    Ok(())
}

fn view(opt: &ReplayOpt, done: u64, dry_run: bool) -> ActionView {
    ActionView {
        action: "replay",
        selected: 1,
        done,
        event_id: Some(opt.event_id.clone()),
        dry_run,
        items: None,
    }
}

/// One line on what would be replayed: the stored event (topic, time,
/// attempts, dead letters), or its dead letter when only that is left.
///
/// # Errors
///
/// [`Error::NotFound`] when the store holds neither.
async fn summary(store: &dyn Inspect, event_id: &str) -> Result<String> {
    let quoted = format!("\"{}\"", escape(event_id));
    if let Some(detail) = store.event(event_id).await.map_err(store_error(store))? {
        let failed = detail
            .results
            .iter()
            .filter(|result| !result.item.succeeded())
            .count() as u64;
        return Ok(format!(
            "event {quoted}: topic \"{}\", stored {}, {} listener attempt(s) ({} failed), {} dead letter(s)",
            escape(&detail.event.item.topic),
            detail.event.at.map_or_else(|| "-".to_owned(), format_time),
            count(detail.results.len() as u64),
            count(failed),
            count(detail.dead_letters.len() as u64),
        ));
    }
    // A filtered page may be empty while more follow (stores scan a
    // bounded number of records per call).
    let mut query = Query::oldest(1).filter(Filter::default().event_id(event_id));
    for _ in 0..MAX_PAGES {
        let page = store
            .dead_letters(&query)
            .await
            .map_err(store_error(store))?;
        if let Some(letter) = page.items.first() {
            return Ok(format!(
                "event {quoted}: dead letter {} on topic \"{}\"",
                escape(&letter.id),
                escape(letter.topic().unwrap_or("-")),
            ));
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    Err(Error::NotFound {
        what: "event",
        id: event_id.to_owned(),
    })
}
