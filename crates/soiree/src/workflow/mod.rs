//! Workflow topics, payloads and enums of the Go package.
