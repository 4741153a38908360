//! Slack incoming-webhook sink (plain HTTP on 127.0.0.1).
//!
//! Records every POST and answers like hooks.slack.com: `200 ok`, `400 invalid_payload` for a body
//! that is not JSON, `400 no_text` for a message with neither `text`, `blocks` nor `attachments`,
//! `404 no_service` for a path other than the webhook's. [`SlackMode`] scripts failures.

use std::time::{Instant, SystemTime};

use serde_json::Value;

use crate::http::{Request, Response};

/// The path part of the webhook URL the sink hands out.
pub const WEBHOOK_PATH: &str = "/services/T000/B000/XXXXSECRETXXXX";

/// How the sink answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackMode {
    /// `200 ok` (after validating the payload like Slack does).
    Ok,
    /// Read the request and never answer (the socket is held for at most 30 s).
    Hang,
    /// Answer this status and plain-text body, e.g. `(500, "rollup_error")`, `(404, "no_service")`.
    Status(u16, String),
    /// `429` with `Retry-After: 1` for the next N requests, then behave like `Ok`.
    RateLimited(usize),
}

/// One POST received by the sink.
#[derive(Debug, Clone)]
pub struct SlackMessage {
    /// Request path (contains the webhook secret).
    pub path: String,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Body as text.
    pub body: String,
    /// Status answered (0 when left hanging).
    pub status: u16,
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub time: SystemTime,
}

impl SlackMessage {
    /// The body parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The message's top-level `text`.
    pub fn text(&self) -> Option<String> {
        self.json()?.get("text")?.as_str().map(str::to_string)
    }
}

/// Mutable sink state.
#[derive(Debug)]
pub struct SlackState {
    /// Current mode.
    pub mode: SlackMode,
    /// Every POST so far.
    pub log: Vec<SlackMessage>,
}

fn plain(status: u16, body: &str) -> Response {
    Response::with_body(status, "text/html", body.to_string())
}

/// Handles one request. Returns the response and, for POSTs, the record to log.
pub fn handle(st: &mut SlackState, req: &Request) -> (Response, Option<SlackMessage>) {
    if req.method != "POST" {
        return (plain(405, "invalid_method"), None);
    }
    let mut msg = SlackMessage {
        path: req.target.clone(),
        content_type: req.header("content-type").map(str::to_string),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: 0,
        at: Instant::now(),
        time: SystemTime::now(),
    };
    let resp = if req.path != WEBHOOK_PATH {
        plain(404, "no_service")
    } else {
        match st.mode.clone() {
            SlackMode::Hang => Response::hang(crate::imds::HANG_LIMIT),
            SlackMode::Status(code, body) => plain(code, &body),
            SlackMode::RateLimited(n) if n > 0 => {
                st.mode = if n > 1 {
                    SlackMode::RateLimited(n - 1)
                } else {
                    SlackMode::Ok
                };
                plain(429, "rate_limited").header("Retry-After", "1")
            }
            SlackMode::RateLimited(_) | SlackMode::Ok => validate(&msg.body),
        }
    };
    msg.status = resp.status;
    (resp, Some(msg))
}

fn validate(body: &str) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return plain(400, "invalid_payload");
    };
    let has = |k: &str| v.get(k).is_some_and(|x| !x.is_null() && x != "");
    if !v.is_object() {
        return plain(400, "invalid_payload");
    }
    if !has("text") && !has("blocks") && !has("attachments") {
        return plain(400, "no_text");
    }
    plain(200, "ok")
}
