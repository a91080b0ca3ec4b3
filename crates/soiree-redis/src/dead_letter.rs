//! The dead-letter stream: entries that could not be handled.

use soiree::StoredEvent;

use crate::entry::Entry;
use crate::keys::field;
use crate::{RedisStore, Result};

/// Moves pending entries to the dead-letter stream, in one script: for each
/// entry still pending in the group, it appends a copy (the entry's `event`
/// field, or all its fields as JSON in `raw` when it has none, with the
/// error and the delivery count) and only then acknowledges it. If the
/// append fails the script stops before the acknowledgement, so an entry is
/// never acknowledged without its copy (a crash in between can only
/// duplicate it). An entry no longer pending (acknowledged meanwhile) is
/// left alone. Returns how many entries were moved.
///
/// KEYS: events stream, dead-letter stream. ARGV: group, max length (0:
/// none), then (entry id, error) pairs.
pub(crate) const SCRIPT: &str = r"
local moved = 0
for i = 3, #ARGV, 2 do
  local id, err = ARGV[i], ARGV[i + 1]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 then
    local add = {'XADD', KEYS[2]}
    if ARGV[2] ~= '0' then
      add[#add + 1] = 'MAXLEN'
      add[#add + 1] = '~'
      add[#add + 1] = ARGV[2]
    end
    add[#add + 1] = '*'
    add[#add + 1] = 'entry_id'
    add[#add + 1] = id
    add[#add + 1] = 'error'
    add[#add + 1] = err
    add[#add + 1] = 'deliveries'
    add[#add + 1] = tostring(pending[1][4])
    local found = redis.call('XRANGE', KEYS[1], id, id)
    if #found == 1 then
      local fields, event, raw = found[1][2], nil, {}
      for j = 1, #fields, 2 do
        if fields[j] == 'event' then event = fields[j + 1] end
        raw[fields[j]] = fields[j + 1]
      end
      if event then
        add[#add + 1] = 'event'
        add[#add + 1] = event
      else
        add[#add + 1] = 'raw'
        add[#add + 1] = cjson.encode(raw)
      end
    end
    redis.call(unpack(add))
    moved = moved + redis.call('XACK', KEYS[1], ARGV[1], id)
  end
end
return moved
";

/// Entries moved per script call: a script blocks the server while it runs.
const SCRIPT_BATCH: usize = 64;

/// An entry set aside in the dead-letter stream.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree_redis::Result<()> {
/// let store = soiree_redis::RedisStore::builder("redis://127.0.0.1:6379").build().await?;
/// let page = store.dead_letters(None, 100).await?;
/// for letter in &page.items {
///     println!("{} after {} deliveries: {}", letter.entry_id, letter.deliveries, letter.error);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The dead letter's id in the dead-letter stream.
    pub id: String,
    /// The id the entry had in the events stream.
    pub entry_id: String,
    /// Why it was set aside: a parse error, the error of a listener that
    /// still failed (or panicked) after its retries, an invalid topic, or
    /// the last handler error after too many deliveries.
    pub error: String,
    /// How many times it had been delivered. For an entry set aside after
    /// too many deliveries this counts the delivery that found it over
    /// `max_deliveries` and set it aside without running it (so
    /// `max_deliveries + 1` for an entry that kept failing).
    pub deliveries: u64,
    /// The event, when the entry held a well-formed one.
    pub event: Option<StoredEvent>,
    /// The entry's raw `event` field (or all its fields, as JSON, when it
    /// had none), for entries that could not be parsed.
    pub raw: Option<String>,
}

impl DeadLetter {
    pub(crate) fn from_entry(entry: &Entry) -> Self {
        let raw = entry.text(field::EVENT);
        let event = raw
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw).ok());
        Self {
            id: entry.id.clone(),
            entry_id: entry.text(field::ENTRY_ID).unwrap_or_default(),
            error: entry.text(field::ERROR).unwrap_or_default(),
            deliveries: entry
                .text(field::DELIVERIES)
                .and_then(|n| n.parse().ok())
                .unwrap_or_default(),
            raw: if event.is_some() {
                None
            } else {
                raw.or_else(|| entry.text("raw"))
            },
            event,
        }
    }
}

impl RedisStore {
    /// Moves pending entries, each with its error, to the dead-letter
    /// stream and acknowledges them. Returns how many were moved (entries
    /// acknowledged meanwhile are skipped).
    pub(crate) async fn dead_letter(&self, failures: &[(&str, &str)]) -> Result<u64> {
        let inner = &self.inner;
        let mut moved = 0;
        for batch in failures.chunks(SCRIPT_BATCH) {
            let mut invocation = inner.dead_letter_script.prepare_invoke();
            invocation
                .key(&inner.keys.events)
                .key(&inner.keys.dead)
                .arg(&inner.options.group)
                .arg(inner.options.dead_letter_max_len.unwrap_or(0));
            for (entry_id, error) in batch {
                invocation.arg(*entry_id).arg(*error);
            }
            let mut conn = inner.conn.clone();
            let count = invocation.invoke_async::<u64>(&mut conn).await?;
            moved += count;
            inner.metrics.dead_lettered.inc_by(count);
            for (entry_id, error) in batch {
                tracing::warn!(%entry_id, error, "entry moved to the dead-letter stream");
            }
        }
        Ok(moved)
    }
}

/// The dead letter as [`soiree::Inspect`] lists it: the same id, error and
/// delivery count, the time it was set aside (its id's millisecond part),
/// and its event or, for an entry that held none, its raw text.
impl From<DeadLetter> for soiree::DeadLetter {
    fn from(letter: DeadLetter) -> Self {
        let at = crate::inspect::entry_time(&letter.id);
        let deliveries = u32::try_from(letter.deliveries).unwrap_or(u32::MAX);
        match letter.event {
            Some(event) => soiree::DeadLetter::new(letter.id, event, letter.error, deliveries),
            None => soiree::DeadLetter::malformed(
                letter.id,
                letter.raw.unwrap_or_default(),
                letter.error,
            ),
        }
        .deliveries(deliveries)
        .at(at)
    }
}
