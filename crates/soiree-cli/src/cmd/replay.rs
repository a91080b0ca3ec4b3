//! `soiree replay EVENT_ID`.

use std::io::Write;

use soiree::Inspect;

use super::console::{Console, say};
use super::output::print_json;
use super::store_error;
use crate::audit;
use crate::error::Result;
use crate::escape::escape;
use crate::opt::ReplayOpt;
use crate::view::ActionView;

pub(super) async fn run(store: &dyn Inspect, opt: &ReplayOpt, console: &mut Console) -> Result<()> {
    console.confirm(
        opt.confirm.yes,
        &format!("replay event \"{}\"", escape(&opt.event_id)),
    )?;
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
        return print_json(
            console,
            &ActionView {
                action: "replay",
                selected: 1,
                done: 1,
                event_id: Some(opt.event_id.clone()),
            },
        );
    }
    say!(console.out, "replayed event \"{}\"", escape(&opt.event_id));
    Ok(())
}
