//! `soiree dead-letters list|show|replay|purge`.

use std::io::Write;

use comfy_table::Cell;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use soiree::{DeadLetterSelection, Inspect, Query};

use super::console::{Console, say};
use super::list::{filter, query, say_none};
use super::output::{
    cell, count, fields, or_dash, pretty, print_json, print_next, print_table, table,
};
use super::{letter_error, store_error};
use crate::audit;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::{ListOpt, SelectOpt, ShowOpt};
use crate::time::format_time;
use crate::view::{ActionView, DeadLetterView, PageView};

/// Dead letters replayed per call: a long replay goes in chunks, with
/// progress.
pub(super) const REPLAY_CHUNK: usize = 100;
/// Dead letters purged per call.
pub(super) const PURGE_CHUNK: usize = 1_000;

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
        let mut rows = table(&[
            "ID",
            "SET ASIDE",
            "TOPIC",
            "EVENT ID",
            "DELIVERIES",
            "LISTENER",
            "ERROR",
        ]);
        for letter in page.items {
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
        print_table(console, &rows)?;
    }
    print_next(console, page.next.as_deref())
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

/// `soiree dead-letters replay`.
pub(super) async fn replay(
    store: &dyn Inspect,
    opt: &SelectOpt,
    console: &mut Console,
) -> Result<()> {
    let ids = select(store, opt).await?;
    act(store, opt, console, ids, Action::Replay).await
}

/// `soiree dead-letters purge`.
pub(super) async fn purge(
    store: &dyn Inspect,
    opt: &SelectOpt,
    console: &mut Console,
) -> Result<()> {
    let ids = select(store, opt).await?;
    act(store, opt, console, ids, Action::Purge).await
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Replay,
    Purge,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Purge => "purge",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Self::Replay => "replayed",
            Self::Purge => "purged",
        }
    }

    fn chunk(self) -> usize {
        match self {
            Self::Replay => REPLAY_CHUNK,
            Self::Purge => PURGE_CHUNK,
        }
    }
}

/// The ids of the dead letters the options select, oldest first: the
/// named ones (each must exist), or every one the filters (or `--all`)
/// select. Refuses an empty selection without `--all`.
async fn select(store: &dyn Inspect, opt: &SelectOpt) -> Result<Vec<String>> {
    if !opt.ids.is_empty() {
        let mut ids: Vec<String> = Vec::with_capacity(opt.ids.len());
        for id in &opt.ids {
            if ids.contains(id) {
                continue;
            }
            if store
                .dead_letter(id)
                .await
                .map_err(store_error(store))?
                .is_none()
            {
                return Err(Error::NotFound {
                    what: "dead letter",
                    id: id.clone(),
                });
            }
            ids.push(id.clone());
        }
        return Ok(ids);
    }
    if opt.filter.is_empty() && !opt.all {
        return Err(Error::Refused(
            "no dead letters selected: pass --id ID, a filter (--topic, --event-id, --since, --until) or --all"
                .to_owned(),
        ));
    }
    let mut query = Query::oldest(Query::MAX_LIMIT).filter(filter(&opt.filter));
    let mut ids = Vec::new();
    loop {
        let page = store
            .dead_letters(&query)
            .await
            .map_err(store_error(store))?;
        ids.extend(page.items.into_iter().map(|letter| letter.id));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    Ok(ids)
}

/// Confirms, then replays or purges `ids` in chunks, with a progress bar
/// when there are many.
async fn act(
    store: &dyn Inspect,
    opt: &SelectOpt,
    console: &mut Console,
    ids: Vec<String>,
    action: Action,
) -> Result<()> {
    let selected = ids.len() as u64;
    let mut done = 0;
    if selected > 0 {
        let what = match selected {
            1 => "1 dead letter".to_owned(),
            n => format!("{} dead letters", count(n)),
        };
        console.confirm(opt.confirm.yes, &format!("{} {what}", action.verb()))?;
        let bar = if console.progress && ids.len() > action.chunk() {
            let bar = ProgressBar::with_draw_target(Some(selected), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(action.done());
            Some(bar)
        } else {
            None
        };
        for chunk in ids.chunks(action.chunk()) {
            let selection = DeadLetterSelection::Ids(chunk.to_vec());
            let result = match action {
                Action::Replay => store.replay_dead_letters(&selection).await,
                Action::Purge => store.purge_dead_letters(&selection).await,
            };
            match result {
                Ok(n) => done += n,
                Err(err) => {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    let err = store_error(store)(err);
                    audit::record(
                        &store.info(),
                        action.verb(),
                        &opt.describe(),
                        selected,
                        done,
                        Some(&err.to_string()),
                    );
                    if done > 0 {
                        say!(
                            console.err,
                            "{} {done} of {selected} dead letters before the error",
                            action.done()
                        );
                    }
                    return Err(err);
                }
            }
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        audit::record(
            &store.info(),
            action.verb(),
            &opt.describe(),
            selected,
            done,
            None,
        );
    }
    if opt.output.json {
        return print_json(
            console,
            &ActionView {
                action: action.verb(),
                selected,
                done,
                event_id: None,
            },
        );
    }
    if selected == 0 {
        say!(
            console.out,
            "no dead letters selected: nothing to {}",
            action.verb()
        );
    } else if done == selected {
        say!(
            console.out,
            "{} {} dead letter(s)",
            action.done(),
            count(done)
        );
    } else {
        say!(
            console.out,
            "{} {} of {} dead letters ({} left: gone meanwhile{})",
            action.done(),
            count(done),
            count(selected),
            count(selected - done),
            match action {
                Action::Replay => ", or holding no event",
                Action::Purge => "",
            }
        );
    }
    Ok(())
}
