//! `soiree tail [PATTERN]`: events as they are stored.

use std::future::Future;
use std::io::Write;

use futures::StreamExt;
use soiree::{Filter, Inspect, Record, StoredEvent};

use super::console::{Console, say};
use super::output::{json_line, or_dash, short_json};
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::TailOpt;
use crate::time::format_time;
use crate::view::EventView;

/// The widest payload a human tail line shows.
const PAYLOAD_WIDTH: usize = 120;

/// Prints events until `stop` resolves (ctrl-c), the stream ends or
/// `--count` events were printed. Read errors are reported on stderr and
/// polling goes on.
pub(super) async fn run(
    store: &dyn Inspect,
    opt: &TailOpt,
    console: &mut Console,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    if opt.count == Some(0) {
        return Ok(());
    }
    let mut filter = Filter::default();
    if let Some(pattern) = &opt.pattern {
        filter = filter.topic(pattern);
    }
    let mut events = store.tail(filter, opt.every);
    let mut printed = 0;
    let mut stop = std::pin::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => break,
            next = events.next() => next,
        };
        match next {
            None => break,
            Some(Ok(record)) => {
                line(console, record, opt.json)?;
                console.out.flush().map_err(Error::Output)?;
                printed += 1;
                if opt.count.is_some_and(|count| printed >= count) {
                    break;
                }
            }
            Some(Err(err)) => {
                let err = Error::from_store(&store.info().kind, err).to_string();
                say!(console.err, "error: {}", escape(&err));
            }
        }
    }
    Ok(())
}

fn line(console: &mut Console, record: Record<StoredEvent>, json: bool) -> Result<()> {
    if json {
        say!(console.out, "{}", json_line(&EventView::from(record))?);
    } else {
        let event_id = soiree::inspect::event_id_text(&record.item);
        say!(
            console.out,
            "{}  {}  {}  {}",
            or_dash(record.at.map(format_time)),
            escape(&record.item.topic),
            escape(&or_dash(event_id)),
            short_json(&record.item.payload, PAYLOAD_WIDTH)
        );
    }
    Ok(())
}
