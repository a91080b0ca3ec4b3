//! Trace context across processes (feature `otel`): the emitter's
//! OpenTelemetry context is written into a stored event's properties as W3C
//! `traceparent`/`tracestate`, and a delivery's listener spans continue it.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Event;

/// The property prefix of the propagated fields (`soiree.traceparent`,
/// `soiree.tracestate`).
const PREFIX: &str = "soiree.";

/// Writes the trace context of the event's span (the emitter's) into its
/// properties, unless it carries one already (a replay keeps the original).
pub(crate) fn inject(event: &Event) {
    let properties = event.properties();
    if properties.get("soiree.traceparent").is_some() {
        return;
    }
    let cx = event.context().span().context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    for (field, value) in carrier {
        properties.set(format!("{PREFIX}{field}"), value);
    }
}

/// Makes a delivered event's listener spans continue the trace its emitter
/// started (a `soiree.delivery` span whose parent is the remote context).
pub(crate) fn continue_trace(event: &mut Event) {
    if !tracing::dispatcher::has_been_set() {
        return;
    }
    let properties = event.properties();
    let mut carrier = HashMap::new();
    for field in ["traceparent", "tracestate"] {
        if let Some(serde_json::Value::String(value)) = properties.get(&format!("{PREFIX}{field}"))
        {
            carrier.insert(field.to_owned(), value);
        }
    }
    if carrier.is_empty() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    if !parent.span().span_context().is_valid() {
        return;
    }
    let span = tracing::info_span!("soiree.delivery", topic = event.topic());
    if span.set_parent(parent).is_ok() {
        let context = event.context().clone().with_span(span);
        event.set_context(context);
    }
}
