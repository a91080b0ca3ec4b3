//! Listener errors: their content, and the error handler that may transform
//! or swallow them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use soiree::{Error, EventBus};

#[derive(Debug, thiserror::Error)]
#[error("quota exceeded for {0}")]
struct QuotaExceeded(&'static str);

#[tokio::test]
async fn a_listener_error_names_the_listener_topic_and_source() {
    let bus = EventBus::new();
    bus.on_named("billing", "invoice.*", |_ctx| async {
        Err(QuotaExceeded("acme").into())
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("invoice.paid", ()).collect().await;
    assert_eq!(errors.len(), 1);
    let err = &errors[0];
    match err {
        Error::Listener {
            listener_id,
            topic,
            source,
        } => {
            assert_eq!(listener_id, "billing");
            assert_eq!(topic, "invoice.paid");
            let quota = source
                .downcast_ref::<QuotaExceeded>()
                .expect("the listener's own error is the source");
            assert_eq!(quota.0, "acme");
        }
        other => panic!("expected a listener error, got {other:?}"),
    }
    // The source chain is kept for error reporters.
    let source = std::error::Error::source(err).expect("a source");
    assert_eq!(source.to_string(), "quota exceeded for acme");
    let text = err.to_string();
    assert!(
        text.contains("billing") && text.contains("invoice.paid"),
        "{text}"
    );
    assert!(text.contains("quota exceeded for acme"), "{text}");
}

#[tokio::test]
async fn a_failing_listener_does_not_stop_the_others() {
    let bus = EventBus::new();
    let ran = Arc::new(AtomicUsize::new(0));
    for (n, pattern) in ["a.b", "a.*", "**"].into_iter().enumerate() {
        let ran = Arc::clone(&ran);
        bus.on(pattern, move |_ctx| {
            ran.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err("first fails".into())
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    }
    let errors: Vec<Error> = bus.emit("a.b", ()).collect().await;
    assert_eq!(errors.len(), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_error_handler_can_transform_errors() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let bus = EventBus::builder()
        .error_handler(move |event, err| {
            log.lock()
                .unwrap()
                .push((event.topic().to_owned(), err.to_string()));
            Some(Error::InvalidConfig(format!("wrapped: {err}")))
        })
        .build()
        .unwrap();
    bus.on_named("l", "a.b", |_ctx| async { Err("boom".into()) })
        .unwrap();
    let errors: Vec<Error> = bus.emit("a.b", ()).collect().await;
    match errors.as_slice() {
        [Error::InvalidConfig(text)] => assert!(text.starts_with("wrapped: "), "{text}"),
        other => panic!("expected the transformed error, got {other:?}"),
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "a.b");
    assert!(seen[0].1.contains("boom"));
}

#[tokio::test]
async fn the_error_handler_can_swallow_errors() {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let bus = EventBus::builder()
        .error_handler(move |_event, err| {
            count.fetch_add(1, Ordering::SeqCst);
            // Keep only errors from the "important" listener.
            match &err {
                Error::Listener { listener_id, .. } if listener_id == "important" => Some(err),
                _ => None,
            }
        })
        .build()
        .unwrap();
    bus.on_named("noisy", "a.*", |_ctx| async { Err("ignore me".into()) })
        .unwrap();
    bus.on_named("important", "a.b", |_ctx| async {
        Err("look at me".into())
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("a.b", ()).collect().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("look at me"));
    let errors: Vec<Error> = bus.emit("a.c", ()).collect().await;
    assert!(errors.is_empty(), "swallowed: {errors:?}");
    assert_eq!(handled.load(Ordering::SeqCst), 3);
}

#[test]
fn error_messages_are_lowercase() {
    let errors = [
        Error::TopicNotFound("a".into()),
        Error::ListenerNotFound("x".into()),
        Error::Closed,
        Error::AlreadyClosed,
        Error::NilPayload,
        Error::Cancelled {
            listener_id: "x".into(),
        },
    ];
    for err in errors {
        let text = err.to_string();
        let first = text.chars().next().expect("a message");
        assert!(first.is_lowercase(), "{text:?}");
    }
}
