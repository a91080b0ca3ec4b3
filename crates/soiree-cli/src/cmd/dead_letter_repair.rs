//! `soiree dead-letters replay|purge`: select, preview or dry-run, confirm,
//! act in chunks, audit.

use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use soiree::{DeadLetter, DeadLetterSelection, Inspect, Query};

use super::console::{Console, say};
use super::dead_letters::letters_table;
use super::list::filter;
use super::output::{count, print_json, print_table, rate};
use super::store_error;
use crate::audit;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::SelectOpt;
use crate::view::{ActionView, DeadLetterView};

/// Dead letters replayed per call: a long replay goes in chunks, with
/// progress.
pub(super) const REPLAY_CHUNK: usize = 100;
/// Dead letters purged per call.
pub(super) const PURGE_CHUNK: usize = 1_000;
/// Dead letters listed before the confirmation prompt.
const PREVIEW_ROWS: usize = 20;

/// `soiree dead-letters replay`.
pub(super) async fn replay(
    store: &dyn Inspect,
    opt: &SelectOpt,
    console: &mut Console,
) -> Result<()> {
    run_action(store, opt, console, Action::Replay).await
}

/// `soiree dead-letters purge`.
pub(super) async fn purge(
    store: &dyn Inspect,
    opt: &SelectOpt,
    console: &mut Console,
) -> Result<()> {
    run_action(store, opt, console, Action::Purge).await
}

/// Selects, then shows what a dry run would do, or previews, confirms and
/// acts.
async fn run_action(
    store: &dyn Inspect,
    opt: &SelectOpt,
    console: &mut Console,
    action: Action,
) -> Result<()> {
    let letters = select(store, opt).await?;
    if opt.dry_run {
        return dry_run(console, opt, &letters, action);
    }
    if !letters.is_empty() && !opt.confirm.yes && console.interactive {
        preview(console, &letters)?;
    }
    let ids = letters.into_iter().map(|letter| letter.id).collect();
    act(store, opt, console, ids, action).await
}

/// Prints what `action` would change, and changes nothing.
fn dry_run(
    console: &mut Console,
    opt: &SelectOpt,
    letters: &[DeadLetter],
    action: Action,
) -> Result<()> {
    let selected = letters.len() as u64;
    if opt.output.json {
        return print_json(
            console,
            &ActionView {
                action: action.verb(),
                selected,
                done: 0,
                event_id: None,
                dry_run: true,
                items: Some(letters.iter().cloned().map(DeadLetterView::from).collect()),
            },
        );
    }
    if !letters.is_empty() {
        print_table(console, &letters_table(letters))?;
    }
    say!(
        console.out,
        "dry run: would {} {}; nothing was changed",
        action.verb(),
        letters_count(selected)
    );
    Ok(())
}

/// Shows the selection on stderr before the confirmation prompt: the first
/// [`PREVIEW_ROWS`] dead letters and how many more.
fn preview(console: &mut Console, letters: &[DeadLetter]) -> Result<()> {
    let shown = &letters[..letters.len().min(PREVIEW_ROWS)];
    for line in letters_table(shown).lines() {
        say!(console.err, "{}", escape(line.trim_end()));
    }
    if letters.len() > shown.len() {
        say!(
            console.err,
            "… and {} more",
            count((letters.len() - shown.len()) as u64)
        );
    }
    Ok(())
}

/// `1 dead letter`, `1,234 dead letters`.
fn letters_count(n: u64) -> String {
    match n {
        1 => "1 dead letter".to_owned(),
        n => format!("{} dead letters", count(n)),
    }
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

/// The dead letters the options select, oldest first, at most `--limit`:
/// the named ones (each must exist), or every one the filters (or `--all`)
/// select. Refuses an empty selection without `--all`.
async fn select(store: &dyn Inspect, opt: &SelectOpt) -> Result<Vec<DeadLetter>> {
    let limit = opt.limit.map_or(usize::MAX, |limit| limit as usize);
    if !opt.ids.is_empty() {
        let mut letters: Vec<DeadLetter> = Vec::with_capacity(opt.ids.len().min(limit));
        for id in &opt.ids {
            if letters.len() == limit {
                break;
            }
            if letters.iter().any(|letter| &letter.id == id) {
                continue;
            }
            let letter = store
                .dead_letter(id)
                .await
                .map_err(store_error(store))?
                .ok_or_else(|| Error::NotFound {
                    what: "dead letter",
                    id: id.clone(),
                })?;
            letters.push(letter);
        }
        return Ok(letters);
    }
    if opt.filter.is_empty() && !opt.all {
        return Err(Error::Refused(
            "no dead letters selected: pass --id ID, a filter (--topic, --event-id, --since, --until) or --all"
                .to_owned(),
        ));
    }
    let mut query = Query::oldest(Query::MAX_LIMIT.min(limit)).filter(filter(&opt.filter));
    let mut letters = Vec::new();
    loop {
        let page = store
            .dead_letters(&query)
            .await
            .map_err(store_error(store))?;
        letters.extend(page.items.into_iter().take(limit - letters.len()));
        match page.next {
            Some(next) if letters.len() < limit => query.cursor = Some(next),
            _ => break,
        }
    }
    Ok(letters)
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
        console.confirm(
            opt.confirm.yes,
            &format!("{} {}", action.verb(), letters_count(selected)),
        )?;
        let bar = if console.progress && ids.len() > action.chunk() {
            let bar = ProgressBar::with_draw_target(Some(selected), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({rate}, {eta} left)")
            {
                // indicatif's own {per_sec} prints `11424.7565/s`.
                let style = style
                    .with_key(
                        "rate",
                        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = w.write_str(&rate(state.per_sec()));
                        },
                    )
                    .progress_chars("=> ");
                bar.set_style(style);
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
                dry_run: false,
                items: None,
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
