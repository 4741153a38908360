//! Fake AWS EC2 instance metadata service (plain HTTP), modelled on real IMDS and on AEMM.
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 1..=21600` returns an
//!   opaque token and echoes the TTL; a missing or out-of-range TTL is 400, `X-Forwarded-For` is
//!   403. Tokens expire after their TTL (real time).
//! - GETs: in [`ImdsMode::Optional`] a GET without a token works and one with an unknown or
//!   expired token is 401; in [`ImdsMode::Required`] a GET without a valid token is 401.
//!   [`ImdsMode::TokenStatus`] makes the token endpoint answer a fixed status (v1 GETs still work);
//!   [`ImdsMode::TokenHang`] makes it read the PUT and never answer (hop limit 1 seen from a pod
//!   network namespace), holding the socket for at most [`HANG_LIMIT`].
//! - Everything is `text/plain` (JSON documents included), errors are small XHTML pages.
//! - `spot/instance-action` and `spot/termination-time` are 404 until the scripted notice time;
//!   `termination-time` only exists for `terminate`, as on real IMDS.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crate::http::{reason, ConnCtx, Request, Response};
use crate::util::{self, rfc3339};

/// How long a hanging token PUT holds its socket.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// IMDS behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsMode {
    /// `HttpTokens=optional`: v1 and v2 both work (default).
    Optional,
    /// `HttpTokens=required`: GETs without a valid token get 401.
    Required,
    /// The token endpoint answers this status (e.g. 403, 404, 405); v1 GETs still work.
    TokenStatus(u16),
    /// The token endpoint reads the PUT and never answers (hop limit 1); v1 GETs still work.
    TokenHang,
    /// `HttpEndpoint=disabled`: every request gets 403.
    Disabled,
}

/// The scripted spot interruption notice.
#[derive(Debug, Clone)]
pub struct Notice {
    /// When the notice becomes visible.
    pub appear_at: Instant,
    /// `terminate`, `stop` or `hibernate`.
    pub action: String,
    /// The notice's `time` field.
    pub deadline: SystemTime,
}

/// One IMDS request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct ImdsRequest {
    /// HTTP method.
    pub method: String,
    /// Path (with query, as sent).
    pub path: String,
    /// An `X-aws-ec2-metadata-token` header was sent.
    pub token_sent: bool,
    /// ... and it was a live token.
    pub token_valid: bool,
    /// The `X-aws-ec2-metadata-token-ttl-seconds` request header, if any.
    pub ttl_header: Option<String>,
    /// Response status; 0 when the request was left hanging.
    pub status: u16,
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub time: SystemTime,
}

/// The instance identity served by the fake IMDS.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `instance-id`.
    pub instance_id: String,
    /// `instance-type`.
    pub instance_type: String,
    /// `placement/availability-zone`.
    pub zone: String,
    /// `placement/region`.
    pub region: String,
    /// `local-hostname`.
    pub local_hostname: String,
    /// `local-ipv4`.
    pub local_ipv4: String,
}

/// Mutable IMDS state.
#[derive(Debug)]
pub struct ImdsState {
    /// Current mode.
    pub mode: ImdsMode,
    /// The scripted notice, if any.
    pub notice: Option<Notice>,
    /// Raw body override for `spot/instance-action` (served with 200 while set).
    pub notice_body: Option<Vec<u8>>,
    /// Rebalance recommendation: (visible from, noticeTime).
    pub rebalance: Option<(Instant, SystemTime)>,
    /// Forced statuses by exact path.
    pub forced: HashMap<String, u16>,
    /// Live tokens and their expiry.
    pub tokens: HashMap<String, Instant>,
    /// Identity data.
    pub identity: Identity,
    /// Request log.
    pub log: Vec<ImdsRequest>,
}

impl ImdsState {
    /// Fresh state.
    pub fn new(mode: ImdsMode, identity: Identity) -> ImdsState {
        ImdsState {
            mode,
            notice: None,
            notice_body: None,
            rebalance: None,
            forced: HashMap::new(),
            tokens: HashMap::new(),
            identity,
            log: Vec::new(),
        }
    }

    fn active_notice(&self, now: Instant) -> Option<&Notice> {
        self.notice.as_ref().filter(|n| n.appear_at <= now)
    }
}

/// The XHTML error page real IMDS (and AEMM) send.
pub fn xhtml(status: u16) -> Response {
    let title = format!("{status} - {}", reason(status));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n\
 <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    Response::with_body(status, "text/html", body).header("Server", "EC2ws")
}

fn text(body: impl Into<Vec<u8>>) -> Response {
    Response::with_body(200, "text/plain", body)
        .header("Accept-Ranges", "none")
        .header("Server", "EC2ws")
}

/// Handles one IMDS request; returns the response and the log entry to record.
pub fn handle(st: &mut ImdsState, req: &Request, _ctx: &ConnCtx) -> (Response, ImdsRequest) {
    let now = Instant::now();
    let token = req.header("x-aws-ec2-metadata-token");
    let token_valid = token.is_some_and(|t| st.tokens.get(t).is_some_and(|exp| *exp > now));
    st.tokens.retain(|_, exp| *exp > now);
    let mut entry = ImdsRequest {
        method: req.method.clone(),
        path: req.target.clone(),
        token_sent: token.is_some(),
        token_valid,
        ttl_header: req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .map(str::to_string),
        status: 0,
        at: now,
        time: SystemTime::now(),
    };
    let resp = respond(st, req, token.is_some(), token_valid, now);
    entry.status = resp.status;
    (resp, entry)
}

fn respond(
    st: &mut ImdsState,
    req: &Request,
    token_sent: bool,
    token_valid: bool,
    now: Instant,
) -> Response {
    if st.mode == ImdsMode::Disabled {
        return xhtml(403);
    }
    let path = req.path.as_str();
    if path == "/latest/api/token" {
        if req.method != "PUT" {
            return xhtml(405);
        }
        match st.mode {
            ImdsMode::TokenStatus(s) => return xhtml(s),
            ImdsMode::TokenHang => return Response::hang(HANG_LIMIT),
            _ => {}
        }
        if req.header("x-forwarded-for").is_some() {
            return xhtml(403);
        }
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
            return xhtml(400);
        };
        let raw: Vec<u8> = (0..42).map(|_| util::rand_u64() as u8).collect();
        let token = format!("AQAEA{}", util::base64(&raw, false));
        st.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl as u64));
        return text(token).header("X-aws-ec2-metadata-token-ttl-seconds", &ttl.to_string());
    }
    if req.method != "GET" && req.method != "HEAD" {
        return xhtml(405);
    }
    if token_sent && !token_valid {
        return xhtml(401);
    }
    if !token_valid && st.mode == ImdsMode::Required {
        return xhtml(401);
    }
    if let Some(&s) = st.forced.get(path) {
        return if s == 200 { text("") } else { xhtml(s) };
    }
    match lookup(st, path, now) {
        Some(body) => text(body),
        None => xhtml(404),
    }
}

fn lookup(st: &ImdsState, path: &str, now: Instant) -> Option<Vec<u8>> {
    let id = &st.identity;
    let notice = st.active_notice(now);
    let s = |v: &str| Some(v.as_bytes().to_vec());
    let trimmed = path.trim_end_matches('/');
    match trimmed {
        "/latest/meta-data/spot/instance-action" => {
            if let Some(raw) = &st.notice_body {
                return Some(raw.clone());
            }
            let n = notice?;
            s(&format!(
                "{{\"action\": \"{}\", \"time\": \"{}\"}}",
                n.action,
                rfc3339(n.deadline)
            ))
        }
        "/latest/meta-data/spot/termination-time" => {
            let n = notice.filter(|n| n.action == "terminate")?;
            s(&rfc3339(n.deadline))
        }
        "/latest/meta-data/spot" => {
            let mut items = Vec::new();
            if notice.is_some() || st.notice_body.is_some() {
                items.push("instance-action");
            }
            if notice.is_some_and(|n| n.action == "terminate") {
                items.push("termination-time");
            }
            if items.is_empty() {
                None
            } else {
                s(&items.join("\n"))
            }
        }
        "/latest/meta-data/events/recommendations/rebalance" => {
            let (_, t) = st.rebalance.filter(|(at, _)| *at <= now)?;
            s(&format!("{{\"noticeTime\": \"{}\"}}", rfc3339(t)))
        }
        "/latest/meta-data/instance-id" => s(&id.instance_id),
        "/latest/meta-data/instance-type" => s(&id.instance_type),
        "/latest/meta-data/instance-life-cycle" => s("spot"),
        "/latest/meta-data/instance-action" => s("none"),
        "/latest/meta-data/placement/availability-zone" => s(&id.zone),
        "/latest/meta-data/placement/region" => s(&id.region),
        "/latest/meta-data/placement" => s("availability-zone\nregion"),
        "/latest/meta-data/local-hostname" | "/latest/meta-data/hostname" => {
            s(&id.local_hostname)
        }
        "/latest/meta-data/local-ipv4" => s(&id.local_ipv4),
        "/latest/meta-data/ami-id" => s("ami-0b69ea66ff7391e80"),
        "/latest/meta-data" => {
            let mut items = vec![
                "ami-id",
                "events/",
                "hostname",
                "instance-action",
                "instance-id",
                "instance-life-cycle",
                "instance-type",
                "local-hostname",
                "local-ipv4",
                "placement/",
            ];
            if notice.is_some() || st.notice_body.is_some() {
                items.push("spot/");
            }
            s(&items.join("\n"))
        }
        "/latest/meta-data/events" => s("recommendations/"),
        "/latest/dynamic/instance-identity/document" => s(&format!(
            "{{\n  \"accountId\" : \"0123456789\",\n  \"architecture\" : \"x86_64\",\n  \"availabilityZone\" : \"{}\",\n  \"imageId\" : \"ami-0b69ea66ff7391e80\",\n  \"instanceId\" : \"{}\",\n  \"instanceType\" : \"{}\",\n  \"privateIp\" : \"{}\",\n  \"region\" : \"{}\",\n  \"version\" : \"2017-09-30\"\n}}",
            id.zone, id.instance_id, id.instance_type, id.local_ipv4, id.region
        )),
        "/latest/dynamic/instance-identity" => s("document"),
        "/latest/dynamic" => s("instance-identity/"),
        "/latest" => s("dynamic\nmeta-data"),
        "" => s("latest"),
        _ => None,
    }
}
