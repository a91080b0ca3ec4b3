//! Responses bounded in bytes, not only in count: a listing shows each
//! payload (and error, raw entry) cut to [`PREVIEW_BYTES`] with a marker,
//! reads the store [`READ_CHUNK`] records at a time, and stops once its
//! body reaches [`LISTING_BUDGET`], handing back a cursor to go on from.
//! An event's own view shows up to [`DETAIL_BYTES`] unless asked for all.

use std::future::Future;

use serde::Serialize;
use serde_json::Value;
use soiree::{Page, Query};

use crate::api::{ApiError, store_call};

/// The most of one payload, error or raw entry a listing shows.
pub(crate) const PREVIEW_BYTES: usize = 4 * 1024;
/// The most of a payload an event's view shows before "show all".
pub(crate) const DETAIL_BYTES: usize = 256 * 1024;
/// The largest listing body, about: the item that crosses it ends the page.
pub(crate) const LISTING_BUDGET: usize = 2 * 1024 * 1024;
/// Records read from the store per call while filling a listing: the most
/// payloads held at once.
const READ_CHUNK: usize = 20;
/// Store calls per listing: a sparse filter returns what it found so far.
const MAX_READS: usize = 25;

/// A JSON value cut to `limit` bytes of its JSON text: `(value, None)` when
/// it fits, else `(the text's first bytes as a string, Some(full size))`.
pub(crate) fn cut_value(value: Value, limit: usize) -> (Value, Option<usize>) {
    let size = json_size(&value);
    if size <= limit {
        return (value, None);
    }
    let text = serde_json::to_string(&value).unwrap_or_default();
    (Value::String(prefix(&text, limit).to_owned()), Some(size))
}

/// Text cut to `limit` bytes: `(text, None)` when it fits, else its first
/// bytes and `Some(full size)`.
pub(crate) fn cut_text(text: String, limit: usize) -> (String, Option<usize>) {
    if text.len() <= limit {
        return (text, None);
    }
    let size = text.len();
    (prefix(&text, limit).to_owned(), Some(size))
}

/// The longest prefix of `text` of at most `limit` bytes ending on a
/// character boundary.
fn prefix(text: &str, limit: usize) -> &str {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn json_size<T: Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// A listing of up to `query.limit` items, read [`READ_CHUNK`] at a time
/// through `read`, each converted by `convert` (which cuts its payload),
/// ending early at [`LISTING_BUDGET`] bytes with `next` the id of the last
/// item given (the stores' cursors are their records' ids).
pub(crate) async fn listing<R, D, F, Fut>(
    mut query: Query,
    mut read: F,
    id_of: impl Fn(&R) -> String,
    convert: impl Fn(R) -> D,
) -> Result<(Vec<D>, Option<String>), ApiError>
where
    F: FnMut(Query) -> Fut,
    Fut: Future<Output = soiree::Result<Page<R>>>,
    D: Serialize,
{
    let want = query.limit;
    let mut items = Vec::new();
    let mut bytes = 0;
    for _ in 0..MAX_READS {
        query.limit = (want - items.len()).clamp(1, READ_CHUNK);
        let page = store_call(read(query.clone())).await?;
        let mut records = page.items.into_iter();
        for record in records.by_ref() {
            let id = id_of(&record);
            let item = convert(record);
            let size = json_size(&item);
            if !items.is_empty() && bytes + size > LISTING_BUDGET {
                // The page ends before this one: the next starts after the
                // last one given.
                return Ok((items, Some(last_id(&query, id))));
            }
            bytes += size;
            items.push(item);
            query.cursor = Some(id);
        }
        if page.next.is_none() {
            return Ok((items, None));
        }
        if items.len() >= want {
            return Ok((items, page.next));
        }
        query.cursor = page.next;
    }
    Ok((items, query.cursor))
}

/// The cursor after the last item given (the one before `refused`).
fn last_id(query: &Query, refused: String) -> String {
    query.cursor.clone().unwrap_or(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_on_character_boundaries() {
        let (small, none) = cut_value(serde_json::json!({"a": 1}), 100);
        assert_eq!(small, serde_json::json!({"a": 1}));
        assert_eq!(none, None);
        let big = serde_json::json!({ "note": "é".repeat(100) });
        let (cut, size) = cut_value(big.clone(), 11);
        assert_eq!(size, Some(serde_json::to_string(&big).unwrap().len()));
        let text = cut.as_str().unwrap();
        assert!(
            text.len() <= 11 && text.starts_with("{\"note\":\""),
            "{text}"
        );
        let (text, size) = cut_text("ab€cd".into(), 3);
        assert_eq!((text.as_str(), size), ("ab", Some(7)));
    }
}
