//! Fake Alibaba Cloud ECS metadata service (plain HTTP), after Alibaba's ECS documentation
//! ("Instance metadata", "Detect and respond to spot instance interruption events"; see
//! sim/README.md for what was confirmed and where).
//!
//! - `GET /latest/meta-data/instance/spot/termination-time`: 404 while the instance is not
//!   scheduled for release (documented; [`WhenNone::EmptyBody`] gives the "empty output" of an
//!   older page instead), and the release time in UTC, `2015-01-05T18:02:00Z`, once it is.
//! - Security hardening mode, like IMDSv2: `PUT /latest/api/token` with
//!   `X-aliyun-ecs-metadata-token-ttl-seconds: 1..21600` returns a token (out of range or
//!   missing: 400 "Missing or Invalid Parameters"; `X-Forwarded-For`: 403); GETs send it as
//!   `X-aliyun-ecs-metadata-token`. An invalid or expired token is 401. In
//!   [`AlibabaMode::Required`] (hardened only) a GET without a token is **403** (Alibaba:
//!   "Any attempt to access metadata in normal mode returns a 403 - Forbidden error").
//! - Identity: `instance-id`, `instance/instance-type`, `zone-id`, `region-id`, `hostname`,
//!   `private-ipv4`, `/latest/dynamic/instance-identity/document`.
//! - Errors are small XHTML pages titled `<code> - <reason>`; values are `text/plain`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::http::{ConnCtx, Request, Response};
use crate::metadata::{Clock, Cloud, MetaRequest, Pending};
use crate::util::{self, rfc3339};
use crate::{lock, Observer, SimEvent};

/// Instance id of the scenario node.
pub const INSTANCE_ID: &str = "i-bp13znx0m0me8cquu4k2";
/// Region.
pub const REGION: &str = "cn-hangzhou";
/// Zone.
pub const ZONE: &str = "cn-hangzhou-i";

/// Metadata access mode (`HttpTokens` / `HttpEndpoint` of the instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlibabaMode {
    /// Normal and security hardening modes both work (`HttpTokens=optional`, the default).
    #[default]
    Optional,
    /// Security hardening mode only (`HttpTokens=required`): a GET without a token is 403.
    Required,
    /// The token PUT answers this status (an image or host without hardened mode); tokenless
    /// GETs still work.
    TokenStatus(u16),
    /// `HttpEndpoint=disabled`: every request 403 (what a disabled endpoint answers is not
    /// documented; unverified).
    Disabled,
}

/// What `termination-time` answers while no release is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenNone {
    /// 404 (Alibaba's current page: "If 404 is returned, the instance is available").
    #[default]
    NotFound,
    /// 200 with an empty body (an older page: "If the output is empty, you can continue
    /// using the preemptible instance").
    EmptyBody,
}

/// A scripted Alibaba change.
#[derive(Debug, Clone)]
pub enum AlibabaStep {
    /// termination-time = the step's instant + this (metadata clock).
    Termination(Duration),
    /// No release scheduled any more.
    Clear,
}

/// Mutable state of the fake.
#[derive(Debug)]
pub struct AlibabaState {
    mode: AlibabaMode,
    when_none: WhenNone,
    termination: Option<SystemTime>,
    tokens: HashMap<String, Instant>,
    pending: Pending<AlibabaStep>,
    hostname: String,
    /// Never answer (an unrouted address on this host).
    pub silent: bool,
    log: Vec<MetaRequest>,
}

/// The fake Alibaba metadata service's shared state.
pub struct Alibaba {
    st: Mutex<AlibabaState>,
    clock: Arc<Clock>,
    observer: Option<Observer>,
}

/// `<title>404 - Not Found</title>` pages; 400 reads "Missing or Invalid Parameters" as in
/// Alibaba's FAQ.
fn page(status: u16) -> Response {
    let reason = match status {
        400 => "Missing or Invalid Parameters",
        s => crate::http::reason(s),
    };
    let title = format!("{status} - {reason}");
    Response::with_body(
        status,
        "text/html",
        format!(
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
        ),
    )
}

fn text(body: impl Into<Vec<u8>>) -> Response {
    Response::with_body(200, "text/plain", body)
}

impl Alibaba {
    /// A spot ECS instance [`INSTANCE_ID`] in `cn-hangzhou-i`, no release scheduled.
    pub fn new(clock: Arc<Clock>, observer: Option<Observer>) -> Alibaba {
        Alibaba {
            st: Mutex::new(AlibabaState {
                mode: AlibabaMode::Optional,
                when_none: WhenNone::NotFound,
                termination: None,
                tokens: HashMap::new(),
                pending: Pending::default(),
                hostname: format!("iZ{}Z", &INSTANCE_ID[2..]),
                silent: false,
                log: Vec::new(),
            }),
            clock,
            observer,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, AlibabaState> {
        let mut st = lock(&self.st);
        for (at, step) in st.pending.due(Instant::now()) {
            st.termination = match step {
                AlibabaStep::Termination(d) => Some(self.clock.service_time(at) + d),
                AlibabaStep::Clear => None,
            };
        }
        st
    }

    pub(crate) fn schedule(&self, steps: Vec<(Instant, AlibabaStep)>) {
        let mut st = lock(&self.st);
        for (at, s) in steps {
            st.pending.push(at, s);
        }
    }

    pub(crate) fn configure(&self, mode: AlibabaMode, when_none: WhenNone) {
        let mut st = lock(&self.st);
        st.mode = mode;
        st.when_none = when_none;
    }

    /// Handles one request.
    pub fn handle(&self, req: &Request, _ctx: &ConnCtx) -> Response {
        let mut entry = MetaRequest::new(Cloud::Alibaba, req);
        let resp = {
            let mut st = self.state();
            if st.silent {
                Response::hang(crate::gcp::HOLD_LIMIT)
            } else {
                respond(&mut st, req, &mut entry).header("Date", &self.clock.date_header())
            }
        };
        entry.status = resp.status;
        entry.answered = Instant::now();
        lock(&self.st).log.push(entry.clone());
        if let Some(o) = &self.observer {
            o(&SimEvent::Metadata(&entry));
        }
        resp
    }
}

fn respond(st: &mut AlibabaState, req: &Request, entry: &mut MetaRequest) -> Response {
    let now = Instant::now();
    st.tokens.retain(|_, exp| *exp > now);
    if st.mode == AlibabaMode::Disabled {
        return page(403);
    }
    let path = req.path.as_str();
    if path == "/latest/api/token" {
        if req.method != "PUT" {
            return page(405);
        }
        if let AlibabaMode::TokenStatus(s) = st.mode {
            return page(s);
        }
        if req.header("x-forwarded-for").is_some() {
            return page(403);
        }
        let ttl = req
            .header("x-aliyun-ecs-metadata-token-ttl-seconds")
            .and_then(|v| v.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
            return page(400);
        };
        let raw: Vec<u8> = (0..32).map(|_| util::rand_u64() as u8).collect();
        let token = util::base64(&raw, false);
        st.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl as u64));
        return text(token);
    }
    if req.method != "GET" && req.method != "HEAD" {
        return page(405);
    }
    match req.header("x-aliyun-ecs-metadata-token") {
        Some(t) if !st.tokens.contains_key(t) => {
            entry.note = "invalid token".into();
            return page(401);
        }
        Some(_) => entry.note = "token".into(),
        None if st.mode == AlibabaMode::Required => {
            entry.note = "normal mode refused".into();
            return page(403);
        }
        None => {}
    }
    let s = |v: &str| Some(v.as_bytes().to_vec());
    let body = match path.trim_end_matches('/') {
        "/latest/meta-data/instance/spot/termination-time" => match st.termination {
            Some(t) => s(&rfc3339(t)),
            None => match st.when_none {
                WhenNone::NotFound => None,
                WhenNone::EmptyBody => Some(Vec::new()),
            },
        },
        "/latest/meta-data/instance/spot" => st
            .termination
            .is_some()
            .then(|| b"termination-time".to_vec()),
        "/latest/meta-data/instance-id" => s(INSTANCE_ID),
        "/latest/meta-data/instance/instance-type" => s("ecs.g6e.large"),
        "/latest/meta-data/instance/instance-name" => s("spot-worker-3"),
        "/latest/meta-data/instance" => s(if st.termination.is_some() {
            "instance-name\ninstance-type\nspot/\nvirtualization-solution\nvirtualization-solution-version"
        } else {
            "instance-name\ninstance-type\nvirtualization-solution\nvirtualization-solution-version"
        }),
        "/latest/meta-data/instance/virtualization-solution" => s("ECS Virt"),
        "/latest/meta-data/instance/virtualization-solution-version" => s("2"),
        "/latest/meta-data/zone-id" => s(ZONE),
        "/latest/meta-data/region-id" => s(REGION),
        "/latest/meta-data/hostname" => s(&st.hostname.clone()),
        "/latest/meta-data/private-ipv4" => s("10.0.1.23"),
        "/latest/meta-data/owner-account-id" => s("1609000000000000"),
        "/latest/meta-data" => s("hostname\nimage-id\ninstance/\ninstance-id\nowner-account-id\nprivate-ipv4\nregion-id\nzone-id"),
        "/latest/meta-data/image-id" => s("aliyun_3_x64_20G_alibase_20250629.vhd"),
        "/latest/dynamic/instance-identity/document" => s(&format!(
            "{{\"zone-id\":\"{ZONE}\",\"serial-number\":\"4acd2b47-b328-4762-852f-998a2c1b0d3e\",\"instance-id\":\"{INSTANCE_ID}\",\"region-id\":\"{REGION}\",\"private-ipv4\":\"10.0.1.23\",\"owner-account-id\":\"1609000000000000\",\"mac\":\"00:16:3e:0f:12:34\",\"image-id\":\"aliyun_3_x64_20G_alibase_20250629.vhd\",\"instance-type\":\"ecs.g6e.large\"}}"
        )),
        "/latest/dynamic/instance-identity" => s("document"),
        "/latest/dynamic" => s("instance-identity/"),
        "/latest" => s("dynamic\nmeta-data\nuser-data"),
        _ => None,
    };
    match body {
        Some(b) => text(b),
        None => page(404),
    }
}

/// Alibaba metadata knobs.
impl crate::Sim {
    /// `http://127.0.0.1:PORT` of the fake Alibaba metadata service.
    pub fn alibaba_metadata_url(&self) -> String {
        self.meta.alibaba_url()
    }

    /// Schedules the release now at `time` (`None`: no release scheduled).
    pub fn alibaba_set_termination(&self, time: Option<SystemTime>) {
        self.meta.alibaba.state().termination = time;
    }

    /// The scheduled release time, if any.
    pub fn alibaba_termination(&self) -> Option<SystemTime> {
        self.meta.alibaba.state().termination
    }

    /// What termination-time answers while none is scheduled.
    pub fn alibaba_set_when_none(&self, w: WhenNone) {
        self.meta.alibaba.state().when_none = w;
    }

    /// Switches the metadata access mode.
    pub fn alibaba_set_mode(&self, m: AlibabaMode) {
        self.meta.alibaba.state().mode = m;
    }

    /// Invalidates every token issued so far (the next use gets 401).
    pub fn alibaba_revoke_tokens(&self) {
        self.meta.alibaba.state().tokens.clear();
    }

    /// Every request to the Alibaba fake so far.
    pub fn alibaba_requests(&self) -> Vec<MetaRequest> {
        lock(&self.meta.alibaba.st).log.clone()
    }

    /// How many Alibaba requests had a path (with query) starting with `path_prefix`.
    pub fn alibaba_count(&self, path_prefix: &str) -> usize {
        let st = lock(&self.meta.alibaba.st);
        crate::metadata::count_prefix(st.log.iter().map(|r| r.path.as_str()), path_prefix)
    }
}
