//! A dead letter's error in a listing: the listener that failed in a column
//! of its own and the error without the `listener X failed on "topic": `
//! prefix (the topic is a column already), so that a cut cell keeps the
//! useful end ("card declined") rather than the repeated start.

use super::output::cut;
use crate::escape::escape;

/// The widest an error cell of a dead-letter listing gets, in characters:
/// generous, since it is what an operator reads the listing for.
pub(super) const ERROR_WIDTH: usize = 120;

/// The listener named by a bus error (`listener X failed on "t": …`,
/// `listener X panicked: …`, `listener X timed out after 30s on "t"`) and
/// the rest of it; `None` and the whole error for any other text.
pub(super) fn split<'a>(error: &'a str, topic: Option<&str>) -> (Option<&'a str>, &'a str) {
    let Some(rest) = error.strip_prefix("listener ") else {
        return (None, error);
    };
    if let Some(topic) = topic {
        let failed_on = format!(" failed on {topic:?}: ");
        if let Some((listener, cause)) = rest.split_once(&failed_on) {
            return (Some(listener), cause);
        }
        let timed_out = format!(" on {topic:?}");
        if let Some(before) = rest.strip_suffix(&timed_out)
            && let Some(at) = before.find(" timed out after ")
        {
            return (Some(&before[..at]), &before[at + 1..]);
        }
    }
    if let Some(at) = rest.find(" panicked: ") {
        return (Some(&rest[..at]), &rest[at + 1..]);
    }
    (None, error)
}

/// The listener cell and the error cell (escaped, at most
/// [`ERROR_WIDTH`] characters; a longer error keeps its start and its end,
/// where a chain of causes ends with the root one).
pub(super) fn cells(error: &str, topic: Option<&str>) -> (String, String) {
    let (listener, cause) = split(error, topic);
    (
        cut(listener.unwrap_or("-"), ERROR_WIDTH),
        cut_middle(&escape(cause), ERROR_WIDTH),
    )
}

/// `text` with its middle replaced by `…` when it is longer than `width`
/// characters: the first third and the rest from the end.
fn cut_middle(text: &str, width: usize) -> String {
    let chars = text.chars().count();
    if chars <= width {
        return text.to_owned();
    }
    let head = width / 3;
    let tail = width.saturating_sub(head + 1);
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(chars - tail).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_the_columns_repeat_is_left_out() {
        let error =
            r#"listener charge-card failed on "order.created": card declined: insufficient funds"#;
        assert_eq!(
            split(error, Some("order.created")),
            (Some("charge-card"), "card declined: insufficient funds")
        );
        assert_eq!(
            split(
                r#"listener slow timed out after 30s on "order.created""#,
                Some("order.created")
            ),
            (Some("slow"), "timed out after 30s")
        );
        assert_eq!(
            split("listener p panicked: index out of bounds", None),
            (Some("p"), "panicked: index out of bounds")
        );
        // Another topic, or no bus prefix: the whole error.
        assert_eq!(split(error, Some("order.paid")).0, None);
        assert_eq!(
            split("undecodable row", Some("a")),
            (None, "undecodable row")
        );
        // A long cause keeps its start and its end within the width.
        let long = format!(
            r#"listener charge-card failed on "order.created": gateway: {} card declined"#,
            "retry: ".repeat(40)
        );
        let (listener, cause) = cells(&long, Some("order.created"));
        assert_eq!(listener, "charge-card");
        assert!(cause.starts_with("gateway: retry"), "{cause}");
        assert!(cause.ends_with("retry:  card declined"), "{cause}");
        assert_eq!(cause.chars().count(), ERROR_WIDTH);
        assert!(cause.contains('…'), "{cause}");
        assert_eq!(cut_middle("short", 10), "short");
    }
}
