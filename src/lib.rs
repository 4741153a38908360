//! spot-termination-notice-handler: cordons and drains a Kubernetes node when its cloud announces a
//! spot interruption, inside the notice's deadline, and tells Slack.
//!
//! Non-goals, on purpose: no async runtime, no Kubernetes client library, no serde, no
//! OpenSSL. Plain threads, one small HTTP/1.1 client over rustls (`http`), and the few API
//! calls a drain needs (`kube`). Modules are named after the domain: a `notice` comes from the
//! metadata service (`imds`), the `handler` acts on it by a `drain` and tells people (`notify`).

// nanoserde-derive expands to code that clippy would write with `?`.
#![allow(clippy::question_mark)]
// Table tests spell their case tuples out.
#![cfg_attr(test, allow(clippy::type_complexity))]

pub mod awsapi;
pub mod cloud;
pub mod config;
pub mod credentials;
pub mod decision;
pub mod detach;
pub mod drain;
pub mod events;
pub mod handler;
pub mod http;
pub mod json;
pub mod kube;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod notice;
pub mod notify;
pub mod record;
pub mod selector;
pub mod server;
pub mod signal;
pub mod sigv4;
pub mod surge;
pub mod template;
pub mod time;
pub mod worker;
pub mod xml;

/// The Kubernetes version this build targets (`make build KUBE_VERSION=1.31.0`): printed by
/// `--version`, and it picks the Eviction API version when discovery is unavailable.
pub const KUBE_VERSION: &str = match option_env!("KUBE_VERSION") {
    Some(v) => v,
    None => "1.32.0",
};
