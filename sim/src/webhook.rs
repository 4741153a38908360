//! Webhook sinks on 127.0.0.1: a generic one that records everything, and fakes of the four
//! services issue 10 names, each checking the request shape its documentation describes and
//! answering the way that service answers.
//!
//! Every sink records each request (method, path with query, headers, body, status answered,
//! and the shape check's verdict) and can be scripted with [`WebhookMode`]: answer normally,
//! hang (bounded), answer a fixed status, or rate-limit the next N requests the service's way.
//! A sink can also listen with TLS ([`SinkTls`]): with the test CA's certificate, or with one
//! no client trusts (the handshake fails, nothing is recorded, [`WebhookSink::connections`]
//! still counts the attempt).
//!
//! | kind | URL | shape checked | answer |
//! |---|---|---|---|
//! | Generic | `/hooks/stnh-sim/<secret>` | none (any body) | `200 ok` |
//! | Teams (Workflows) | `/powerautomate/automations/direct/workflows/<id>/triggers/manual/paths/invoke?api-version=1&sp=...&sv=1.0&sig=<sig>` | message + Adaptive Card attachments | `202`, empty body |
//! | Google Chat | `/v1/spaces/<space>/messages?key=<key>&token=<token>` | Message resource | `200` + the created Message |
//! | Discord | `/api/webhooks/<id>/<token>[?wait=true]` | content/embeds limits | `204`, or `200` + message with `wait=true` |
//! | PagerDuty | `/v2/enqueue` | Events API v2 event | `202` `{"status":"success",...}` |
//!
//! The checks are written from each service's documentation (cited at each check). Where the
//! documentation gives no wording for an error, the body follows the service's documented error
//! shape with the simulator's own wording; where a behaviour is only known from observation it
//! says so.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::http::{Request, Response, Server};
use crate::lock;
use crate::pki::{self, ServerCert};
use crate::util;

/// The longest a [`WebhookMode::Hang`] holds a request.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Secret part of the generic sink's URL.
pub const GENERIC_SECRET: &str = "XXXXWEBHOOKSECRETXXXX";
/// The Teams workflow id in the sink's URL.
pub const TEAMS_WORKFLOW: &str = "0d3f5e1c8a2b4c6d9e7f1a2b3c4d5e6f";
/// The Teams workflow URL's `sig` (the credential).
pub const TEAMS_SIG: &str = "XXXXTEAMSSIGXXXX";
/// The Google Chat space in the sink's URL.
pub const CHAT_SPACE: &str = "AAAAstnhsim";
/// The Google Chat webhook `key`.
pub const CHAT_KEY: &str = "AIzaSyXXXXCHATKEYXXXX";
/// The Google Chat webhook `token` (the credential).
pub const CHAT_TOKEN: &str = "XXXXCHATTOKENXXXX";
/// The Discord webhook id.
pub const DISCORD_ID: &str = "1234567890123456789";
/// The Discord webhook token (the credential).
pub const DISCORD_TOKEN: &str = "XXXXDISCORDTOKENXXXX";
/// A 32-character PagerDuty integration (routing) key the sink accepts.
pub const PAGERDUTY_ROUTING_KEY: &str = "R0123456789abcdef0123456789abcde";

/// Which service a sink fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// Records anything, answers `200 ok`.
    Generic,
    /// Microsoft Teams workflow webhook (Power Automate "When a Teams webhook request is
    /// received").
    Teams,
    /// Google Chat incoming webhook.
    GoogleChat,
    /// Discord webhook.
    Discord,
    /// PagerDuty Events API v2.
    PagerDuty,
}

impl WebhookKind {
    /// A short name for logs (`generic`, `teams`, `googlechat`, `discord`, `pagerduty`).
    pub fn name(self) -> &'static str {
        match self {
            WebhookKind::Generic => "generic",
            WebhookKind::Teams => "teams",
            WebhookKind::GoogleChat => "googlechat",
            WebhookKind::Discord => "discord",
            WebhookKind::PagerDuty => "pagerduty",
        }
    }

    /// Parses [`WebhookKind::name`] (also `gchat`, `pd`).
    pub fn parse(s: &str) -> Option<WebhookKind> {
        Some(match s {
            "generic" => WebhookKind::Generic,
            "teams" => WebhookKind::Teams,
            "googlechat" | "gchat" => WebhookKind::GoogleChat,
            "discord" => WebhookKind::Discord,
            "pagerduty" | "pd" => WebhookKind::PagerDuty,
            _ => return None,
        })
    }

    fn path_and_query(self) -> String {
        match self {
            WebhookKind::Generic => format!("/hooks/stnh-sim/{GENERIC_SECRET}"),
            WebhookKind::Teams => format!(
                "/powerautomate/automations/direct/workflows/{TEAMS_WORKFLOW}/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
            ),
            WebhookKind::GoogleChat => {
                format!("/v1/spaces/{CHAT_SPACE}/messages?key={CHAT_KEY}&token={CHAT_TOKEN}")
            }
            WebhookKind::Discord => format!("/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}"),
            WebhookKind::PagerDuty => "/v2/enqueue".to_string(),
        }
    }
}

/// How a sink answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookMode {
    /// Check the shape and answer as the service does.
    Ok,
    /// Read the request and answer nothing for this long (at most [`HANG_LIMIT`]), then close.
    Hang(Duration),
    /// Answer this status and body (JSON if it starts with `{`, else text/plain).
    Status(u16, String),
    /// Answer the next N requests with the service's rate-limit response, then behave like `Ok`.
    RateLimited(usize),
}

/// Whether a sink listens with TLS, and with which certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain HTTP.
    Plain,
    /// HTTPS with the test CA's server certificate ([`pki::CA_CRT`] verifies it).
    TestCa,
    /// HTTPS with a certificate signed by an unrelated CA: every honest client refuses it.
    Untrusted,
}

/// One request a sink received.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// Headers as sent.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
    /// Status answered (0: left hanging).
    pub status: u16,
    /// The shape check: `Ok` or the problems found (a generic sink always passes).
    pub check: Result<(), Vec<String>>,
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub time: SystemTime,
}

impl WebhookRequest {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// True when the shape check passed.
    pub fn passed(&self) -> bool {
        self.check.is_ok()
    }
}

#[derive(Debug)]
struct SinkState {
    kind: WebhookKind,
    mode: WebhookMode,
    log: Vec<WebhookRequest>,
    seq: u64,
}

/// A running sink. Dropping it stops the listener.
pub struct WebhookSink {
    kind: WebhookKind,
    tls: SinkTls,
    state: Arc<Mutex<SinkState>>,
    server: Server,
}

/// Called with each recorded request (the simulator's observer).
pub(crate) type SinkObserver = Arc<dyn Fn(WebhookKind, &WebhookRequest) + Send + Sync>;

impl WebhookSink {
    /// Starts a plain-HTTP sink answering normally.
    pub fn start(kind: WebhookKind) -> io::Result<WebhookSink> {
        WebhookSink::start_with(kind, SinkTls::Plain, WebhookMode::Ok)
    }

    /// Starts a sink with TLS settings and an initial mode.
    pub fn start_with(
        kind: WebhookKind,
        tls: SinkTls,
        mode: WebhookMode,
    ) -> io::Result<WebhookSink> {
        WebhookSink::start_observed(kind, tls, mode, None)
    }

    pub(crate) fn start_observed(
        kind: WebhookKind,
        tls: SinkTls,
        mode: WebhookMode,
        observer: Option<SinkObserver>,
    ) -> io::Result<WebhookSink> {
        let state = Arc::new(Mutex::new(SinkState {
            kind,
            mode,
            log: Vec::new(),
            seq: 0,
        }));
        let st = state.clone();
        let cfg = match tls {
            SinkTls::Plain => None,
            SinkTls::TestCa => Some(pki::server_config(ServerCert::Normal)?),
            SinkTls::Untrusted => Some(pki::server_config(ServerCert::Untrusted)?),
        };
        let server = Server::start(
            &format!("webhook-{}", kind.name()),
            Arc::new(move |req, _ctx| {
                let (resp, rec) = {
                    let mut s = lock(&st);
                    let (resp, rec) = handle(&mut s, req);
                    s.log.push(rec.clone());
                    (resp, rec)
                };
                if let Some(o) = &observer {
                    o(kind, &rec);
                }
                resp
            }),
            cfg,
        )?;
        Ok(WebhookSink {
            kind,
            tls,
            state,
            server,
        })
    }

    /// Which service this sink fakes.
    pub fn kind(&self) -> WebhookKind {
        self.kind
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The webhook URL to configure (`http://` or `https://127.0.0.1:PORT/...`).
    pub fn url(&self) -> String {
        let scheme = if self.tls == SinkTls::Plain {
            "http"
        } else {
            "https"
        };
        format!(
            "{scheme}://127.0.0.1:{}{}",
            self.addr().port(),
            self.kind.path_and_query()
        )
    }

    /// Changes how the sink answers.
    pub fn set_mode(&self, m: WebhookMode) {
        lock(&self.state).mode = m;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<WebhookRequest> {
        lock(&self.state).log.clone()
    }

    /// The requests that passed the shape check and got a 2xx answer.
    pub fn accepted(&self) -> Vec<WebhookRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.passed() && (200..300).contains(&r.status))
            .collect()
    }

    /// How many TCP connections were accepted (TLS handshakes that failed included).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }
}

// ---- request handling ---------------------------------------------------------------------

fn json_resp(status: u16, v: &Value) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    Response::with_body(status, "application/json; charset=UTF-8", body)
}

fn fixed(status: u16, body: &str) -> Response {
    let ct = if body.trim_start().starts_with('{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Response::with_body(status, ct, body.to_string())
}

fn handle(st: &mut SinkState, req: &Request) -> (Response, WebhookRequest) {
    let mut rec = WebhookRequest {
        method: req.method.clone(),
        path: req.target.clone(),
        headers: req.headers.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: 0,
        check: Ok(()),
        at: Instant::now(),
        time: SystemTime::now(),
    };
    st.seq += 1;
    let seq = st.seq;
    let kind = st.kind;
    // Wrong path or credentials are answered first, as the services' front ends do.
    let (resp, check) = match route(kind, req) {
        Err(resp) => (
            resp,
            Err(vec![format!("not the webhook's URL: {}", req.target)]),
        ),
        Ok(()) => {
            let check = check_shape(kind, req);
            let resp = match st.mode.clone() {
                WebhookMode::Hang(d) => Response::hang(d.min(HANG_LIMIT)),
                WebhookMode::Status(code, body) => fixed(code, &body),
                WebhookMode::RateLimited(n) if n > 0 => {
                    st.mode = if n > 1 {
                        WebhookMode::RateLimited(n - 1)
                    } else {
                        WebhookMode::Ok
                    };
                    rate_limited(kind)
                }
                WebhookMode::RateLimited(_) | WebhookMode::Ok => answer(kind, req, &check, seq),
            };
            (resp, check.map_err(|e| e.problems))
        }
    };
    rec.status = resp.status;
    rec.check = check;
    (resp, rec)
}

/// A failed shape check: the problems (for tests) and the service's answer.
struct Rejection {
    problems: Vec<String>,
    response: Response,
}

fn route(kind: WebhookKind, req: &Request) -> Result<(), Response> {
    let q = |k: &str| req.query_param(k).unwrap_or("");
    match kind {
        WebhookKind::Generic => {
            if req.path != format!("/hooks/stnh-sim/{GENERIC_SECRET}") {
                return Err(fixed(404, "not found"));
            }
        }
        WebhookKind::Teams => {
            let path = format!(
                "/powerautomate/automations/direct/workflows/{TEAMS_WORKFLOW}/triggers/manual/paths/invoke"
            );
            if req.path != path {
                return Err(json_resp(
                    404,
                    &json!({"error": {"code": "WorkflowNotFound",
                        "message": "The workflow was not found."}}),
                ));
            }
            // Observed, not documented: a missing or wrong `sig` is a 401 from the trigger.
            if q("sig") != TEAMS_SIG {
                return Err(json_resp(
                    401,
                    &json!({"error": {"code": "DirectApiAuthorizationRequired",
                        "message": "The request must be authenticated only by Shared Access scheme."}}),
                ));
            }
        }
        WebhookKind::GoogleChat => {
            if req.path != format!("/v1/spaces/{CHAT_SPACE}/messages") {
                return Err(json_resp(
                    404,
                    &json!({"error": {"code": 404, "message": "Requested entity was not found.",
                        "status": "NOT_FOUND"}}),
                ));
            }
            if q("key") != CHAT_KEY || q("token") != CHAT_TOKEN {
                return Err(json_resp(
                    401,
                    &json!({"error": {"code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED"}}),
                ));
            }
        }
        WebhookKind::Discord => {
            // JSON error codes 10015 Unknown Webhook and 50027 Invalid Webhook Token
            // (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json).
            let rest = req.path.strip_prefix("/api/webhooks/").unwrap_or("");
            let rest = rest.strip_prefix("v10/").unwrap_or(rest);
            match rest.split_once('/') {
                Some((id, token)) if id == DISCORD_ID => {
                    if token.trim_end_matches('/') != DISCORD_TOKEN {
                        return Err(json_resp(
                            401,
                            &json!({"message": "Invalid Webhook Token", "code": 50027}),
                        ));
                    }
                }
                _ => {
                    return Err(json_resp(
                        404,
                        &json!({"message": "Unknown Webhook", "code": 10015}),
                    ))
                }
            }
        }
        WebhookKind::PagerDuty => {
            if req.path != "/v2/enqueue" {
                return Err(fixed(404, "Not Found"));
            }
        }
    }
    if req.method != "POST" {
        return Err(fixed(405, "method not allowed"));
    }
    Ok(())
}

fn rate_limited(kind: WebhookKind) -> Response {
    match kind {
        WebhookKind::Generic => fixed(429, "rate limited").header("Retry-After", "1"),
        // Logic Apps throttles a flow's trigger with 429 (observed shape).
        WebhookKind::Teams => json_resp(
            429,
            &json!({"error": {"code": "WorkflowTriggerIsThrottled",
                "message": "The workflow trigger is throttled. Please retry later."}}),
        )
        .header("Retry-After", "1"),
        // Google's error model (https://cloud.google.com/apis/design/errors): RESOURCE_EXHAUSTED.
        WebhookKind::GoogleChat => json_resp(
            429,
            &json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED"}}),
        ),
        // https://discord.com/developers/docs/topics/rate-limits: body with retry_after (seconds,
        // float) and global, plus Retry-After and the X-RateLimit-* headers.
        WebhookKind::Discord => json_resp(
            429,
            &json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false}),
        )
        .header("Retry-After", "1")
        .header("X-RateLimit-Limit", "5")
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset-After", "1.000")
        .header("X-RateLimit-Bucket", "stnhsimwebhookbucket")
        .header("X-RateLimit-Scope", "shared"),
        // https://developer.pagerduty.com/docs/events-api-v2/rate-limits/:
        // "The response to the API call will say 429 - Request Limit Exceeded".
        WebhookKind::PagerDuty => fixed(429, "Request Limit Exceeded"),
    }
}

fn check_shape(kind: WebhookKind, req: &Request) -> Result<(), Rejection> {
    match kind {
        WebhookKind::Generic => Ok(()),
        WebhookKind::Teams => check_teams(req),
        WebhookKind::GoogleChat => check_chat(req),
        WebhookKind::Discord => check_discord(req),
        WebhookKind::PagerDuty => check_pagerduty(req),
    }
}

fn answer(kind: WebhookKind, req: &Request, check: &Result<(), Rejection>, seq: u64) -> Response {
    match check {
        Err(r) => r.response.clone(),
        Ok(()) => match kind {
            WebhookKind::Generic => fixed(200, "ok"),
            // A Request trigger without a Response action answers 202 Accepted at once
            // (https://learn.microsoft.com/azure/connectors/connectors-native-reqres).
            WebhookKind::Teams => Response::new(202),
            WebhookKind::GoogleChat => chat_created(req, seq),
            WebhookKind::Discord => discord_created(req, seq),
            WebhookKind::PagerDuty => pagerduty_accepted(req),
        },
    }
}

// ---- Microsoft Teams workflow webhook -----------------------------------------------------

/// Shape: what the "When a Teams webhook request is received" trigger's Adaptive Card flow
/// expects, as Microsoft documents for webhooks posting Adaptive Cards
/// (https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook,
/// "Send Adaptive Cards using an Incoming Webhook"; Workflows accept Adaptive Cards only:
/// https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using):
/// `type` is `message`; `attachments` is a non-empty array whose items have `contentType`
/// `application/vnd.microsoft.card.adaptive` and a `content` object that is an Adaptive Card
/// (`type` `AdaptiveCard`, a `version`, a `body` array of elements each with a `type`); the
/// message is at most 28 KB (the documented Teams message size limit).
///
/// The answer does not depend on the shape: the trigger accepts any JSON with 202 and the flow
/// run fails later without posting, which is why the verdict is recorded. Only a body that is
/// not JSON is refused at once (400 `InvalidRequestContent`, observed Logic Apps behaviour).
fn check_teams(req: &Request) -> Result<(), Rejection> {
    let bad_request = |msg: String| Rejection {
        problems: vec![msg.clone()],
        response: json_resp(
            400,
            &json!({"error": {"code": "InvalidRequestContent", "message": msg}}),
        ),
    };
    let ct = req.media_type().unwrap_or_default();
    if ct != "application/json" {
        return Err(bad_request(format!(
            "The input body for trigger 'manual' of type 'Request' must be of type JSON, but was of type '{}'.",
            if ct.is_empty() { "application/octet-stream" } else { ct.as_str() }
        )));
    }
    let v: Value = serde_json::from_slice(&req.body).map_err(|e| {
        bad_request(format!(
            "The request content is not valid and could not be deserialized: '{e}'."
        ))
    })?;
    let mut p = Vec::new();
    if req.body.len() > 28 * 1024 {
        p.push(format!(
            "message is {} bytes, the limit is 28 KB",
            req.body.len()
        ));
    }
    if v["type"] != "message" {
        p.push(format!("type must be \"message\", got {}", v["type"]));
    }
    match v["attachments"].as_array() {
        None => p.push("attachments must be an array".into()),
        Some(a) if a.is_empty() => p.push("attachments must not be empty".into()),
        Some(a) => {
            for (i, att) in a.iter().enumerate() {
                if att["contentType"] != "application/vnd.microsoft.card.adaptive" {
                    p.push(format!(
                        "attachments[{i}].contentType must be application/vnd.microsoft.card.adaptive, got {}",
                        att["contentType"]
                    ));
                }
                let c = &att["content"];
                if !c.is_object() {
                    p.push(format!(
                        "attachments[{i}].content must be an Adaptive Card object"
                    ));
                    continue;
                }
                if c["type"] != "AdaptiveCard" {
                    p.push(format!(
                        "attachments[{i}].content.type must be \"AdaptiveCard\", got {}",
                        c["type"]
                    ));
                }
                if !c["version"].is_string() {
                    p.push(format!(
                        "attachments[{i}].content.version must be a string such as \"1.4\""
                    ));
                }
                match c["body"].as_array() {
                    None => p.push(format!("attachments[{i}].content.body must be an array")),
                    Some(body) => {
                        for (j, el) in body.iter().enumerate() {
                            if !el["type"].is_string() {
                                p.push(format!(
                                    "attachments[{i}].content.body[{j}].type must be an element type such as \"TextBlock\""
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    if p.is_empty() {
        Ok(())
    } else {
        // Accepted anyway: the run fails later, out of the caller's sight.
        Err(Rejection {
            problems: p,
            response: Response::new(202),
        })
    }
}

// ---- Google Chat ------------------------------------------------------------------------

/// The fields of `google.chat.v1.Message` a request body may carry, in both JSON spellings
/// proto JSON parsing accepts (https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages).
const CHAT_FIELDS: &[&str] = &[
    "name",
    "sender",
    "createTime",
    "create_time",
    "lastUpdateTime",
    "deleteTime",
    "text",
    "formattedText",
    "cards",
    "cardsV2",
    "cards_v2",
    "annotations",
    "thread",
    "space",
    "fallbackText",
    "fallback_text",
    "actionResponse",
    "argumentText",
    "slashCommand",
    "attachment",
    "matchedUrl",
    "threadReply",
    "clientAssignedMessageId",
    "emojiReactionSummaries",
    "privateMessageViewer",
    "deletionMetadata",
    "quotedMessageMetadata",
    "attachedGifs",
    "accessoryWidgets",
    "accessory_widgets",
];

fn google_error(status: u16, message: &str, violations: &[String]) -> Response {
    let mut e =
        json!({"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}});
    if !violations.is_empty() {
        let fv: Vec<Value> = violations
            .iter()
            .map(|d| json!({"field": "message", "description": d}))
            .collect();
        e["error"]["details"] =
            json!([{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": fv}]);
    }
    json_resp(status, &e)
}

/// Shape, from `spaces.messages.create` (the endpoint an incoming webhook URL is): the body is
/// a `Message` resource; it needs `text` and/or `cardsV2` (each item an object with a `card`;
/// `cardId` a string); the whole message is at most 32,000 bytes ("The maximum message size,
/// including text and cards, is 32,000 bytes":
/// https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/create;
/// webhooks: https://developers.google.com/workspace/chat/quickstart/webhooks). Errors use
/// Google's error model (https://cloud.google.com/apis/design/errors): 400 `INVALID_ARGUMENT`;
/// an unknown field reads `Invalid JSON payload received. Unknown name "x" at 'message': Cannot
/// find field.` with a `BadRequest` field violation (as observed from the service), and an
/// empty message `Message cannot be empty.` (observed).
fn check_chat(req: &Request) -> Result<(), Rejection> {
    let reject = |problems: Vec<String>, resp: Response| Rejection {
        problems,
        response: resp,
    };
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            let msg = format!(
                "Invalid JSON payload received. Unexpected token.\n{}\n^",
                String::from_utf8_lossy(&req.body)
                    .chars()
                    .take(40)
                    .collect::<String>()
            );
            return Err(reject(vec![msg.clone()], google_error(400, &msg, &[])));
        }
    };
    let Some(o) = v.as_object() else {
        let msg = "Invalid JSON payload received. Expected an object.".to_string();
        return Err(reject(vec![msg.clone()], google_error(400, &msg, &[])));
    };
    let unknown: Vec<String> = o
        .keys()
        .filter(|k| !CHAT_FIELDS.contains(&k.as_str()))
        .map(|k| format!("Invalid JSON payload received. Unknown name {k:?} at 'message': Cannot find field."))
        .collect();
    if !unknown.is_empty() {
        return Err(reject(
            unknown.clone(),
            google_error(400, &unknown.join("\n"), &unknown),
        ));
    }
    let mut p = Vec::new();
    if let Some(t) = o.get("text") {
        if !t.is_string() {
            p.push(format!(
                "Invalid value at 'message.text' (TYPE_STRING), {t}"
            ));
        }
    }
    let cards = o.get("cardsV2").or_else(|| o.get("cards_v2"));
    if let Some(c) = cards {
        match c.as_array() {
            None => p.push(format!("Invalid value at 'message.cards_v2', {c}")),
            Some(a) => {
                for (i, item) in a.iter().enumerate() {
                    if !item["card"].is_object() {
                        p.push(format!("message.cards_v2[{i}].card must be a Card object"));
                    }
                    if item.get("cardId").is_some_and(|x| !x.is_string()) {
                        p.push(format!(
                            "Invalid value at 'message.cards_v2[{i}].card_id' (TYPE_STRING)"
                        ));
                    }
                }
            }
        }
    }
    if !p.is_empty() {
        return Err(reject(p.clone(), google_error(400, &p.join("\n"), &p)));
    }
    let has_text = o
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let has_cards = cards
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
        || o.get("cards")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    if !has_text && !has_cards {
        let msg = "Message cannot be empty.".to_string();
        return Err(reject(vec![msg.clone()], google_error(400, &msg, &[])));
    }
    if req.body.len() > 32_000 {
        let msg = format!(
            "Message is too large: {} bytes, the maximum message size is 32000 bytes.",
            req.body.len()
        );
        return Err(reject(vec![msg.clone()], google_error(400, &msg, &[])));
    }
    Ok(())
}

/// 200 with the created Message resource, as `spaces.messages.create` returns it.
fn chat_created(req: &Request, seq: u64) -> Response {
    let v: Value = serde_json::from_slice(&req.body).unwrap_or_else(|_| json!({}));
    let id = format!("stnhsim{seq:06}.stnhsim{seq:06}");
    let thread = match v["thread"]["threadKey"].as_str() {
        Some(k) => format!("spaces/{CHAT_SPACE}/threads/{}", util::percent_encode(k)),
        None => format!("spaces/{CHAT_SPACE}/threads/stnhsim{seq:06}"),
    };
    let now = util::rfc3339_micros(SystemTime::now());
    let mut m = json!({
        "name": format!("spaces/{CHAT_SPACE}/messages/{id}"),
        "sender": {"name": "users/114022495153014004089", "displayName": "stnh-sim webhook",
            "avatarUrl": "", "email": "", "domainId": "", "type": "BOT", "isAnonymous": false},
        "createTime": now,
        "thread": {"name": thread},
        "space": {"name": format!("spaces/{CHAT_SPACE}"), "type": "ROOM", "singleUserBotDm": false,
            "threaded": false, "displayName": "stnh-sim", "spaceThreadingState": "THREADED_MESSAGES",
            "spaceType": "SPACE"},
        "retentionSettings": {"state": "PERMANENT"},
        "formattedText": v["text"].as_str().unwrap_or("")
    });
    if let Some(t) = v["text"].as_str() {
        m["text"] = json!(t);
        m["argumentText"] = json!(t);
    }
    if let Some(c) = v.get("cardsV2").or_else(|| v.get("cards_v2")) {
        m["cardsV2"] = c.clone();
    }
    json_resp(200, &m)
}

// ---- Discord ----------------------------------------------------------------------------

fn discord_invalid(errors: Value) -> Response {
    json_resp(
        400,
        &json!({"code": 50035, "errors": errors, "message": "Invalid Form Body"}),
    )
}

fn max_len_error(n: usize) -> Value {
    json!({"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": format!("Must be {n} or fewer in length.")}]})
}

/// Shape, from Execute Webhook (https://discord.com/developers/docs/resources/webhook#execute-webhook):
/// at least one of `content`, `embeds`, `components`, `poll` (files are multipart, not modelled);
/// `content` up to 2000 characters; `embeds` an array of up to 10 embeds; each embed within the
/// documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
/// title 256, description 4096, 25 fields with name 256 and value 1024, footer text 2048,
/// author name 256, and 6000 characters over all embeds. Errors are Discord's: 400 with code
/// 50006 "Cannot send an empty message", or 50035 "Invalid Form Body" with the nested `errors`
/// object (https://discord.com/developers/docs/reference#error-messages).
fn check_discord(req: &Request) -> Result<(), Rejection> {
    let reject = |problems: Vec<String>, response: Response| Rejection { problems, response };
    let empty = || {
        reject(
            vec!["Cannot send an empty message".into()],
            json_resp(
                400,
                &json!({"message": "Cannot send an empty message", "code": 50006}),
            ),
        )
    };
    if req.media_type().as_deref() != Some("application/json") {
        // Without a JSON body Discord sees no fields at all.
        return Err(empty());
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            return Err(reject(
                vec!["body is not JSON".into()],
                json_resp(
                    400,
                    &json!({"message": "The request body contains invalid JSON.", "code": 50109}),
                ),
            ))
        }
    };
    let mut errors = Map::new();
    let mut problems = Vec::new();
    let chars = |s: &str| s.chars().count();
    match v.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if chars(s) > 2000 => {
            errors.insert("content".into(), max_len_error(2000));
            problems.push(format!("content is {} characters, at most 2000", chars(s)));
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            errors.insert(
                "content".into(),
                json!({"_errors": [{"code": "BASE_TYPE_STRING",
                "message": format!("Could not interpret \"{other}\" as string.")}]}),
            );
            problems.push("content is not a string".into());
        }
    }
    let mut ck = EmbedCheck {
        total: 0,
        problems: Vec::new(),
    };
    match v.get("embeds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.len() > 10 => {
            errors.insert("embeds".into(), max_len_error(10));
            problems.push(format!("{} embeds, at most 10", list.len()));
        }
        Some(Value::Array(list)) => {
            let mut emb_errors = Map::new();
            for (i, e) in list.iter().enumerate() {
                let ee = ck.embed(i, e);
                if !ee.is_empty() {
                    emb_errors.insert(i.to_string(), Value::Object(ee));
                }
            }
            problems.append(&mut ck.problems);
            if !emb_errors.is_empty() {
                errors.insert("embeds".into(), Value::Object(emb_errors));
            } else if ck.total > 6000 {
                errors.insert(
                    "embeds".into(),
                    json!({"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED",
                    "message": "Embed size exceeds maximum size of 6000"}]}),
                );
                problems.push(format!(
                    "embeds total {} characters, at most 6000",
                    ck.total
                ));
            }
        }
        Some(_) => {
            errors.insert(
                "embeds".into(),
                json!({"_errors": [{"code": "BASE_TYPE_ARRAY",
                "message": "Must be an array."}]}),
            );
            problems.push("embeds is not an array".into());
        }
    }
    if !errors.is_empty() {
        return Err(reject(problems, discord_invalid(Value::Object(errors))));
    }
    let has = |k: &str| match v.get(k) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(_)) => true,
        _ => false,
    };
    if !has("content") && !has("embeds") && !has("components") && !has("poll") {
        return Err(empty());
    }
    Ok(())
}

/// Per-embed limits, summing the characters counted towards the 6000 total.
struct EmbedCheck {
    total: usize,
    problems: Vec<String>,
}

impl EmbedCheck {
    fn lim(
        &mut self,
        errs: &mut Map<String, Value>,
        key: &str,
        val: &Value,
        n: usize,
        label: &str,
    ) {
        if let Some(s) = val.as_str() {
            let c = s.chars().count();
            self.total += c;
            if c > n {
                errs.insert(key.into(), max_len_error(n));
                self.problems
                    .push(format!("{label} is {c} characters, at most {n}"));
            }
        }
    }

    fn embed(&mut self, i: usize, e: &Value) -> Map<String, Value> {
        let mut ee = Map::new();
        self.lim(
            &mut ee,
            "title",
            &e["title"],
            256,
            &format!("embeds[{i}].title"),
        );
        self.lim(
            &mut ee,
            "description",
            &e["description"],
            4096,
            &format!("embeds[{i}].description"),
        );
        for (obj, key, n) in [("footer", "text", 2048), ("author", "name", 256)] {
            let mut sub = Map::new();
            self.lim(
                &mut sub,
                key,
                &e[obj][key],
                n,
                &format!("embeds[{i}].{obj}.{key}"),
            );
            if !sub.is_empty() {
                ee.insert(obj.into(), Value::Object(sub));
            }
        }
        if let Some(fields) = e["fields"].as_array() {
            if fields.len() > 25 {
                ee.insert("fields".into(), max_len_error(25));
                self.problems.push(format!(
                    "embeds[{i}] has {} fields, at most 25",
                    fields.len()
                ));
            } else {
                let mut fe = Map::new();
                for (j, f) in fields.iter().enumerate() {
                    let mut one = Map::new();
                    for (k, n) in [("name", 256), ("value", 1024)] {
                        if f[k].is_string() {
                            self.lim(
                                &mut one,
                                k,
                                &f[k],
                                n,
                                &format!("embeds[{i}].fields[{j}].{k}"),
                            );
                        } else {
                            one.insert(
                                k.into(),
                                json!({"_errors": [{"code": "BASE_TYPE_REQUIRED",
                                "message": "This field is required"}]}),
                            );
                            self.problems
                                .push(format!("embeds[{i}].fields[{j}].{k} is required"));
                        }
                    }
                    if !one.is_empty() {
                        fe.insert(j.to_string(), Value::Object(one));
                    }
                }
                if !fe.is_empty() {
                    ee.insert("fields".into(), Value::Object(fe));
                }
            }
        }
        if let Some(c) = e.get("color").filter(|c| !c.is_null() && !c.is_u64()) {
            ee.insert(
                "color".into(),
                json!({"_errors": [{"code": "NUMBER_TYPE_COERCE",
                "message": format!("Value \"{c}\" is not int.")}]}),
            );
            self.problems
                .push(format!("embeds[{i}].color is not an integer"));
        }
        ee
    }
}

/// 204 without `?wait=true`; with it, 200 and the created message object.
fn discord_created(req: &Request, seq: u64) -> Response {
    let wait = matches!(req.query_param("wait"), Some("true" | "True" | "1"));
    if !wait {
        return Response::new(204);
    }
    let v: Value = serde_json::from_slice(&req.body).unwrap_or_else(|_| json!({}));
    let id = format!("13{:017}", seq);
    let mut embeds = v["embeds"].as_array().cloned().unwrap_or_default();
    for e in embeds.iter_mut() {
        e["type"] = json!("rich");
    }
    json_resp(
        200,
        &json!({
            "type": 0, "channel_id": "1122334455667788990", "content": v["content"].as_str().unwrap_or(""),
            "attachments": [], "embeds": embeds, "timestamp": util::rfc3339_micros(SystemTime::now()),
            "edited_timestamp": null, "flags": 0, "components": [], "id": id,
            "author": {"id": DISCORD_ID, "username": v["username"].as_str().unwrap_or("stnh-sim"),
                "avatar": null, "discriminator": "0000", "public_flags": 0, "flags": 0, "bot": true,
                "global_name": null},
            "mentions": [], "mention_roles": [], "pinned": false, "mention_everyone": false,
            "tts": v["tts"].as_bool().unwrap_or(false), "webhook_id": DISCORD_ID
        }),
    )
}

// ---- PagerDuty Events API v2 --------------------------------------------------------------

/// ISO 8601 timestamps as PagerDuty's examples write them (`2015-07-17T08:42:58.315+0000`)
/// and RFC 3339.
fn iso8601_ok(s: &str) -> bool {
    if crate::kubetime::parse_time(s).is_ok() {
        return true;
    }
    // `+0000` / `-0530` offsets without a colon.
    let b = s.as_bytes();
    if b.len() > 5 {
        let (head, tail) = s.split_at(s.len() - 5);
        let tb = tail.as_bytes();
        if (tb[0] == b'+' || tb[0] == b'-') && tb[1..].iter().all(u8::is_ascii_digit) {
            let fixed = format!("{head}{}:{}", &tail[..3], &tail[3..]);
            return crate::kubetime::parse_time(&fixed).is_ok();
        }
    }
    false
}

/// Shape, from "Send an Alert Event"
/// (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): `routing_key` required,
/// the 32-character integration key; `event_action` required, `trigger`, `acknowledge` or
/// `resolve`; `dedup_key` at most 255 characters (required to acknowledge or resolve: there is
/// nothing to apply them to otherwise); for `trigger`, `payload` with `summary` (required, at
/// most 1024 characters), `source` (required), `severity` (required: `critical`, `error`,
/// `warning`, `info`), an optional ISO 8601 `timestamp`, `component`/`group`/`class` strings,
/// `custom_details` an object; `images[].src` and `links[].href` required. Payloads are at most
/// 512 KB (https://developer.pagerduty.com/docs/events-api-v2/overview/). Answers: 202
/// `{"status":"success","message":"Event processed","dedup_key":...}` (the key generated when
/// none was sent), 400 `{"status":"invalid event","message":"Event object is invalid",
/// "errors":[...]}` (the error strings are the simulator's wording).
fn check_pagerduty(req: &Request) -> Result<(), Rejection> {
    let invalid = |errors: Vec<String>| Rejection {
        problems: errors.clone(),
        response: json_resp(
            400,
            &json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
        ),
    };
    if req.body.len() > 512 * 1024 {
        return Err(invalid(vec!["Event is larger than 512 KB".into()]));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&req.body) else {
        return Err(invalid(vec!["Event is not valid JSON".into()]));
    };
    if !v.is_object() {
        return Err(invalid(vec!["Event must be a JSON object".into()]));
    }
    let mut e = Vec::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let rk = s(&v, "routing_key");
    if rk.is_empty() {
        e.push("'routing_key' is missing or blank".to_string());
    } else if rk.chars().count() != 32 {
        e.push("Length of 'routing_key' is incorrect (should be 32 characters)".to_string());
    }
    let action = s(&v, "event_action");
    match action.as_str() {
        "" => e.push("'event_action' is missing or blank".to_string()),
        "trigger" | "acknowledge" | "resolve" => {}
        _ => e.push(
            "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)".to_string(),
        ),
    }
    let dedup = s(&v, "dedup_key");
    if dedup.chars().count() > 255 {
        e.push("'dedup_key' is too long (maximum is 255 characters)".to_string());
    }
    if (action == "acknowledge" || action == "resolve") && dedup.is_empty() {
        e.push(format!(
            "'dedup_key' is missing or blank (required to {action})"
        ));
    }
    if action == "trigger" {
        let p = &v["payload"];
        if !p.is_object() {
            e.push("'payload' is missing or blank".to_string());
        } else {
            let summary = s(p, "summary");
            if summary.is_empty() {
                e.push("'payload.summary' is missing or blank".to_string());
            } else if summary.chars().count() > 1024 {
                e.push("'payload.summary' is too long (maximum is 1024 characters)".to_string());
            }
            if s(p, "source").is_empty() {
                e.push("'payload.source' is missing or blank".to_string());
            }
            match s(p, "severity").as_str() {
                "" => e.push("'payload.severity' is missing or blank".to_string()),
                "critical" | "error" | "warning" | "info" => {}
                _ => e.push(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                        .to_string(),
                ),
            }
            if let Some(t) = p.get("timestamp").filter(|t| !t.is_null()) {
                if !t.as_str().is_some_and(iso8601_ok) {
                    e.push(
                        "'payload.timestamp' is invalid (must be an ISO 8601 timestamp)"
                            .to_string(),
                    );
                }
            }
            for k in ["component", "group", "class"] {
                if p.get(k).is_some_and(|x| !x.is_null() && !x.is_string()) {
                    e.push(format!("'payload.{k}' must be a string"));
                }
            }
            if p.get("custom_details")
                .is_some_and(|x| !x.is_null() && !x.is_object())
            {
                e.push("'payload.custom_details' must be an object".to_string());
            }
        }
        for (list, key) in [("images", "src"), ("links", "href")] {
            if let Some(a) = v.get(list).filter(|x| !x.is_null()) {
                match a.as_array() {
                    None => e.push(format!("'{list}' must be an array")),
                    Some(items) => {
                        for (i, it) in items.iter().enumerate() {
                            if s(it, key).is_empty() {
                                e.push(format!("'{list}[{i}].{key}' is missing or blank"));
                            }
                        }
                    }
                }
            }
        }
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(invalid(e))
    }
}

fn pagerduty_accepted(req: &Request) -> Response {
    let v: Value = serde_json::from_slice(&req.body).unwrap_or_else(|_| json!({}));
    let key = match v["dedup_key"].as_str() {
        Some(k) if !k.is_empty() => k.to_string(),
        _ => util::uuid().replace('-', ""),
    };
    json_resp(
        202,
        &json!({"status": "success", "message": "Event processed", "dedup_key": key}),
    )
}

// ---- Scenario / Sim wiring ----------------------------------------------------------------

impl crate::Scenario {
    /// Starts a webhook sink of this kind with the simulator (plain HTTP). Several may be added;
    /// find them with [`crate::Sim::webhook`] / [`crate::Sim::webhook_sinks`].
    pub fn webhook_sink(self, kind: WebhookKind) -> Self {
        self.webhook_sink_with(kind, SinkTls::Plain, WebhookMode::Ok)
    }

    /// Like [`crate::Scenario::webhook_sink`] with TLS settings and an initial mode.
    pub fn webhook_sink_with(mut self, kind: WebhookKind, tls: SinkTls, mode: WebhookMode) -> Self {
        self.webhook_sinks.push((kind, tls, mode));
        self
    }
}

impl crate::Sim {
    /// The first webhook sink of this kind the scenario started.
    pub fn webhook(&self, kind: WebhookKind) -> Option<&WebhookSink> {
        self.webhooks.iter().find(|w| w.kind() == kind)
    }

    /// Every webhook sink the scenario started, in the order added.
    pub fn webhook_sinks(&self) -> &[WebhookSink] {
        &self.webhooks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerduty_timestamps() {
        assert!(iso8601_ok("2015-07-17T08:42:58.315+0000"));
        assert!(iso8601_ok("2024-05-01T10:00:05Z"));
        assert!(iso8601_ok("2024-05-01T10:00:05.123+02:00"));
        assert!(!iso8601_ok("yesterday"));
        assert!(!iso8601_ok("2024-05-01 10:00:05"));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            WebhookKind::Generic,
            WebhookKind::Teams,
            WebhookKind::GoogleChat,
            WebhookKind::Discord,
            WebhookKind::PagerDuty,
        ] {
            assert_eq!(WebhookKind::parse(k.name()), Some(k));
        }
        assert_eq!(PAGERDUTY_ROUTING_KEY.len(), 32);
    }
}
