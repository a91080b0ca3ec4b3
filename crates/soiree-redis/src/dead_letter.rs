//! The dead-letter stream: entries that could not be handled.

use soiree::StoredEvent;

use crate::entry::Entry;
use crate::keys::field;
use crate::{RedisStore, Result};

/// Appends to the dead-letter stream, then acknowledges the entry, in one
/// script: if the append fails the script stops before the acknowledgement,
/// so an entry is never acknowledged without its copy (a crash in between
/// can only duplicate it).
///
/// KEYS: events stream, dead-letter stream. ARGV: group, entry id, max
/// length (0: none), then field/value pairs.
pub(crate) const SCRIPT: &str = r"
local add = {'XADD', KEYS[2]}
if ARGV[3] ~= '0' then
  add[#add + 1] = 'MAXLEN'
  add[#add + 1] = '~'
  add[#add + 1] = ARGV[3]
end
add[#add + 1] = '*'
for i = 4, #ARGV do add[#add + 1] = ARGV[i] end
redis.call(unpack(add))
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
";

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
    /// Why it was set aside: a parse error, or the last handler error after
    /// too many deliveries.
    pub error: String,
    /// How many times it had been delivered, counting the delivery that
    /// found it over `max_deliveries` and set it aside without running it
    /// (so `max_deliveries + 1` for an entry that kept failing).
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
    /// Moves an entry to the dead-letter stream and acknowledges it.
    pub(crate) async fn dead_letter(
        &self,
        entry: &Entry,
        error: &str,
        deliveries: u64,
    ) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.dead_letter_script.prepare_invoke();
        invocation
            .key(&inner.keys.events)
            .key(&inner.keys.dead)
            .arg(&inner.options.group)
            .arg(&entry.id)
            .arg(inner.options.dead_letter_max_len.unwrap_or(0))
            .arg(field::ENTRY_ID)
            .arg(&entry.id)
            .arg(field::ERROR)
            .arg(error)
            .arg(field::DELIVERIES)
            .arg(deliveries);
        match entry.field(field::EVENT) {
            Some(event) => {
                invocation.arg(field::EVENT).arg(event);
            }
            None => {
                let fields: serde_json::Map<String, serde_json::Value> = entry
                    .fields
                    .iter()
                    .flatten()
                    .map(|(key, value)| {
                        (
                            key.clone(),
                            String::from_utf8_lossy(value).into_owned().into(),
                        )
                    })
                    .collect();
                invocation
                    .arg("raw")
                    .arg(serde_json::Value::Object(fields).to_string());
            }
        }
        let mut conn = inner.conn.clone();
        invocation.invoke_async::<u64>(&mut conn).await?;
        inner.metrics.dead_lettered.inc();
        tracing::warn!(entry_id = %entry.id, error, deliveries, "entry moved to the dead-letter stream");
        Ok(())
    }
}
