//! Settings: one table ([`SETTINGS`]) gives every setting's flag, environment variable, default
//! and meaning. `--help`, the start-up banner and the README's settings table are all derived
//! from it (a unit test keeps the README identical).
//!
//! Precedence: a flag wins over the environment, which wins over the default. An empty
//! environment variable counts as unset (manifests often render `value: ""`). Invalid values
//! produce one line naming the setting, what was expected and what came; `main` exits 2.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::notice::{Action, Provider};
use crate::time::{format_duration, parse_seconds_or_duration};

/// One setting, in its three spellings.
pub struct Setting {
    pub flag: &'static str,
    pub env: &'static str,
    /// Placeholder for the value in `--help`.
    pub value: &'static str,
    /// The default as shown to people; empty when unset by default.
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";
/// Google documents both `http://metadata.google.internal` and this IP for the same server.
pub const DEFAULT_GCP_METADATA_URL: &str = "http://169.254.169.254";
pub const DEFAULT_ALIBABA_METADATA_URL: &str = "http://100.100.100.200";
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Every setting of the binary. Order is the order of `--help` and the README.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flag: "--node-name",
        env: "NODE_NAME",
        value: "NAME",
        default: "",
        meaning: "Node to protect (downward API `spec.nodeName`). Unset: looked up from POD_NAME and NAMESPACE",
    },
    Setting {
        flag: "--pod-name",
        env: "POD_NAME",
        value: "NAME",
        default: "",
        meaning: "This pod's name: finds the node when NODE_NAME is unset, and is never evicted",
    },
    Setting {
        flag: "--namespace",
        env: "NAMESPACE",
        value: "NAME",
        default: "",
        meaning: "This pod's namespace (downward API `metadata.namespace`)",
    },
    Setting {
        flag: "--poll-interval",
        env: "POLL_INTERVAL",
        value: "DURATION",
        default: "900ms",
        meaning: "How often to poll for a notice: seconds (`5`) or `200ms`/`5s`/`2m`, 50ms to 60s (900ms: a notice is cordoned within 1 s of appearing, the cordon's round trip included)",
    },
    Setting {
        flag: "--imds-url",
        env: "IMDS_URL",
        value: "URL",
        default: DEFAULT_IMDS_URL,
        meaning: "Base URL of the AWS instance metadata service (plain http)",
    },
    Setting {
        flag: "--imds-timeout",
        env: "IMDS_TIMEOUT",
        value: "DURATION",
        default: "2s",
        meaning: "Timeout of each metadata request of every cloud (GCE hanging GETs and Azure's first scheduled-events call excepted), whole seconds from 1s to 30s",
    },
    Setting {
        flag: "--cloud",
        env: "CLOUD",
        value: "CLOUD",
        default: "auto",
        meaning: "`auto`, `aws`, `gcp`, `azure` or `alibaba`. `auto`: from the Node's `spec.providerID`, else by probing each metadata service once (AWS last); an explicit cloud whose metadata service answers as another one exits 2",
    },
    Setting {
        flag: "--gcp-metadata-url",
        env: "GCP_METADATA_URL",
        value: "URL",
        default: DEFAULT_GCP_METADATA_URL,
        meaning: "Base URL of the GCE metadata server (plain http). The IP rather than `metadata.google.internal` (the same server): no DNS lookup per request, which in a host-network pod goes through cluster DNS (ndots:5, several lookups first) that may run on the very node being drained",
    },
    Setting {
        flag: "--azure-metadata-url",
        env: "AZURE_METADATA_URL",
        value: "URL",
        default: DEFAULT_IMDS_URL,
        meaning: "Base URL of the Azure instance metadata service (plain http)",
    },
    Setting {
        flag: "--alibaba-metadata-url",
        env: "ALIBABA_METADATA_URL",
        value: "URL",
        default: DEFAULT_ALIBABA_METADATA_URL,
        meaning: "Base URL of the Alibaba Cloud ECS metadata service (plain http)",
    },
    Setting {
        flag: "--notice-url",
        env: "NOTICE_URL",
        value: "URL",
        default: "",
        meaning: "Seed compatibility: poll this URL instead; HTTP 200 means a notice (body may be the termination time)",
    },
    Setting {
        flag: "--rebalance",
        env: "REBALANCE",
        value: "ACTION",
        default: "cordon",
        meaning: "AWS rebalance recommendation (polled every 5 × POLL_INTERVAL): `off`, `cordon` (no eviction) or `drain` (within budgets, never forced, no deadline)",
    },
    Setting {
        flag: "--rebalance-ttl",
        env: "REBALANCE_TTL",
        value: "DURATION",
        default: "30m",
        meaning: "Put the node back in service this long after a rebalance recommendation, unless a stronger signal holds it; `0`: never; at most 24h",
    },
    Setting {
        flag: "--scheduled-events",
        env: "SCHEDULED_EVENTS",
        value: "ACTION",
        default: "drain",
        meaning: "AWS scheduled maintenance events (polled every 30 × POLL_INTERVAL): `off`, `cordon` or `drain`, at NotBefore minus SCHEDULED_EVENT_LEAD; a message when first seen",
    },
    Setting {
        flag: "--scheduled-event-lead",
        env: "SCHEDULED_EVENT_LEAD",
        value: "DURATION",
        default: "15m",
        meaning: "How long before a scheduled event starts to act on it, 0s to 24h",
    },
    Setting {
        flag: "--asg-lifecycle",
        env: "ASG_LIFECYCLE",
        value: "ACTION",
        default: "drain",
        meaning: "AWS Auto Scaling target-lifecycle-state `Terminated` (polled every 5 × POLL_INTERVAL): `off` or `drain`",
    },
    Setting {
        flag: "--asg-lifecycle-deadline",
        env: "ASG_LIFECYCLE_DEADLINE",
        value: "DURATION",
        default: "120s",
        meaning: "Deadline of an ASG termination, from when it is seen (the state carries no time), 10s to 2h",
    },
    Setting {
        flag: "--detach-asg",
        env: "DETACH_ASG",
        value: "BOOL",
        default: "false",
        meaning: "On a spot interruption (and the notices in DETACH_ASG_ON), detach this instance from its EC2 Auto Scaling group without decrementing the desired capacity, so the group launches a replacement at once; in the background, never delaying the drain. AWS credentials and IAM policy: README",
    },
    Setting {
        flag: "--detach-asg-on",
        env: "DETACH_ASG_ON",
        value: "KINDS",
        default: "spot-interruption",
        meaning: "Notices that detach, comma-separated: `spot-interruption` (always), `rebalance-recommendation`, `scheduled-maintenance` (events `instance-stop` and `instance-retirement` only)",
    },
    Setting {
        flag: "--gcp-preemption-deadline",
        env: "GCP_PREEMPTION_DEADLINE",
        value: "DURATION",
        default: "30s",
        meaning: "Deadline of a GCE preemption (`instance/preempted` = TRUE gives no time), from when it is first seen; 5s to 1h (Spot VMs with a longer preemption notice)",
    },
    Setting {
        flag: "--gcp-migrate",
        env: "GCP_MIGRATE",
        value: "ACTION",
        default: "notify",
        meaning: "GCE live migration (`maintenance-event` = MIGRATE_ON_HOST_MAINTENANCE): `off`, `notify`, `cordon` or `drain` (within budgets, never forced); undone when the event is back to NONE",
    },
    Setting {
        flag: "--azure-approve",
        env: "AZURE_APPROVE",
        value: "BOOL",
        default: "true",
        meaning: "Approve an Azure scheduled event (POST StartRequests) once our drain for it has finished completely, so maintenance starts and ends sooner; never before; once per event",
    },
    Setting {
        flag: "--azure-freeze",
        env: "AZURE_FREEZE",
        value: "ACTION",
        default: "notify",
        meaning: "Azure `Freeze` events (a pause of seconds): `off`, `notify`, `cordon` or `drain` (within budgets, never forced)",
    },
    Setting {
        flag: "--exclude-from-load-balancers",
        env: "EXCLUDE_FROM_LOAD_BALANCERS",
        value: "BOOL",
        default: "true",
        meaning: "While draining, label the node `node.kubernetes.io/exclude-from-external-load-balancers` so cloud load balancers stop sending it traffic",
    },
    Setting {
        flag: "--eviction-delay",
        env: "EVICTION_DELAY",
        value: "DURATION",
        default: "0s",
        meaning: "Wait this long between that label and the first eviction (load-balancer deregistration); cut to what the deadline allows, 0s to 5m",
    },
    Setting {
        flag: "--eviction-order",
        env: "EVICTION_ORDER",
        value: "ORDER",
        default: "tiers",
        meaning: "`tiers`: evict ordinary pods first and critical ones (`system-cluster-critical`, `system-node-critical`, or priority ≥ CRITICAL_PRIORITY) once the others are gone, or at the latest moment that still gives them their own grace; `parallel`: all at once",
    },
    Setting {
        flag: "--critical-priority",
        env: "CRITICAL_PRIORITY",
        value: "N",
        default: "2000000000",
        meaning: "Pods with `spec.priority` at least this are critical (evicted last with EVICTION_ORDER=tiers)",
    },
    Setting {
        flag: "--pod-selector",
        env: "POD_SELECTOR",
        value: "SELECTOR",
        default: "",
        meaning: "Drain only the pods this label selector matches (`kubectl drain --pod-selector` syntax: `a=b,c!=d,e in (f,g),e notin (h),k,!k`); the others are left alone and listed in the summary",
    },
    Setting {
        flag: "--surge-blocked",
        env: "SURGE_BLOCKED",
        value: "MODE",
        default: "false",
        meaning: "`true`: when a budget allows no eviction and the pod's Deployment can surge with every Ready replica here, restart it (`kubectl rollout restart`) so a replacement starts elsewhere first. `budgeted`: also restart each Deployment under a budget that rolls with maxUnavailable 0 at once and hold its pods (at most half the time to the forced deletes) until the rollout moves them. RBAC: README",
    },
    Setting {
        flag: "--uptime-file",
        env: "UPTIME_FILE",
        value: "PATH",
        default: "/proc/uptime",
        meaning: "Where the machine's uptime is read: a notice older than the boot is stale, and a boot after our cordon means the node came back",
    },
    Setting {
        flag: "--dry-run",
        env: "DRY_RUN",
        value: "BOOL",
        default: "false",
        meaning: "Read everything, write nothing: log what would be done and when (cordon, each eviction and its grace, forced deletes, undo); messages are marked dry run",
    },
    Setting {
        flag: "--verbose",
        env: "VERBOSE",
        value: "BOOL",
        default: "false",
        meaning: "Log every poll's status and every API exchange (`1`/`true`)",
    },
    Setting {
        flag: "--grace-period",
        env: "GRACE_PERIOD",
        value: "SECONDS",
        default: "",
        meaning: "Upper bound on each pod's termination grace period; unset or `-1`: the pod's own",
    },
    Setting {
        flag: "--drain-reserve",
        env: "DRAIN_RESERVE",
        value: "DURATION",
        default: "20s",
        meaning: "Stop waiting for PodDisruptionBudgets this long before the deadline, 0s to 10m",
    },
    Setting {
        flag: "--force-delete",
        env: "FORCE_DELETE",
        value: "BOOL",
        default: "true",
        meaning: "At deadline minus reserve, delete pods still blocked by a budget, and shorten pods already terminating that would outlast the deadline",
    },
    Setting {
        flag: "--kube-api-url",
        env: "KUBE_API_URL",
        value: "URL",
        default: "",
        meaning: "Kubernetes API base URL (`http://` only to loopback, e.g. kubectl proxy: the token goes with every request). Unset: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`",
    },
    Setting {
        flag: "--service-account-dir",
        env: "SERVICE_ACCOUNT_DIR",
        value: "DIR",
        default: DEFAULT_SERVICE_ACCOUNT_DIR,
        meaning: "Directory holding the service-account `token` and `ca.crt`",
    },
    Setting {
        flag: "--slack-url",
        env: "SLACK_URL",
        value: "URL",
        default: "",
        meaning: "Slack incoming-webhook URL (a secret: never logged). Unset: no Slack messages",
    },
    Setting {
        flag: "--slack-channel",
        env: "SLACK_CHANNEL",
        value: "NAME",
        default: "",
        meaning: "Channel override for legacy Slack webhooks (app webhooks ignore it)",
    },
    Setting {
        flag: "--cluster",
        env: "CLUSTER",
        value: "NAME",
        default: "",
        meaning: "Cluster name shown in Slack messages",
    },
    Setting {
        flag: "--metrics-addr",
        env: "METRICS_ADDR",
        value: "ADDR",
        default: "",
        meaning: "Serve Prometheus `/metrics` and `/healthz` here: `:PORT` (every address), `IP:PORT` or `[IPv6]:PORT`. Unset: no server. The manifests use `:17864`",
    },
    Setting {
        flag: "--health-loop-timeout",
        env: "HEALTH_LOOP_TIMEOUT",
        value: "DURATION",
        default: "60s",
        meaning: "`/healthz` answers 503 when the notice loop has not turned for this long (it turns every second, or every quarter of this, at most 10 s, while nothing is on record; stalled API calls hold it up to ~30 s), 1s to 10m",
    },
    Setting {
        flag: "--health-metadata-timeout",
        env: "HEALTH_METADATA_TIMEOUT",
        value: "DURATION",
        default: "15m",
        meaning: "`/healthz` answers 503 when no metadata source has answered a poll for this long; long on purpose, so that a metadata outage restarts the pod at most once per period, never into CrashLoopBackOff; `0`: never; at most 24h",
    },
    Setting {
        flag: "--webhook-url",
        env: "WEBHOOK_URL",
        value: "URLS",
        default: "",
        meaning: "Webhook URLs (comma-separated; secrets: never logged), each POSTed a message at each phase: Teams, Google Chat, Discord, PagerDuty or any JSON receiver. Unset: no webhooks",
    },
    Setting {
        flag: "--webhook-headers",
        env: "WEBHOOK_HEADERS",
        value: "LINES",
        default: "",
        meaning: "Extra request headers, one `Name: value` per line (values are secrets: never logged); `Content-Type` defaults to `application/json`",
    },
    Setting {
        flag: "--webhook-template",
        env: "WEBHOOK_TEMPLATE",
        value: "TEXT",
        default: "",
        meaning: "Webhook body with `{{name}}` placeholders, JSON-escaped when filled in (README: the list, and templates for Teams, Google Chat, Discord, PagerDuty). Unset: a JSON object with every field",
    },
    Setting {
        flag: "--webhook-template-file",
        env: "WEBHOOK_TEMPLATE_FILE",
        value: "PATH",
        default: "",
        meaning: "Read the webhook template from this file instead (not both)",
    },
    Setting {
        flag: "--webhook-events",
        env: "WEBHOOK_EVENTS",
        value: "LIST",
        default: "notice,drained,back",
        meaning: "Phases that send a webhook message: `notice` (seen), `drained` (drain ended), `back` (node back in service)",
    },
    Setting {
        flag: "--webhook-proxy",
        env: "WEBHOOK_PROXY",
        value: "URL",
        default: "",
        meaning: "HTTP CONNECT proxy for every Slack and webhook URL (`http://[user:password@]host[:port]`), winning over HTTPS_PROXY; never used for the metadata service or the Kubernetes API",
    },
    Setting {
        flag: "--https-proxy",
        env: "HTTPS_PROXY",
        value: "URL",
        default: "",
        meaning: "CONNECT proxy for https Slack and webhook URLs only",
    },
    Setting {
        flag: "--no-proxy",
        env: "NO_PROXY",
        value: "LIST",
        default: "",
        meaning: "Hosts Slack and webhooks reach without a proxy, as curl reads it: names (with their subdomains), IPs, CIDRs, `*`",
    },
    Setting {
        flag: "--events",
        env: "EVENTS",
        value: "BOOL",
        default: "true",
        meaning: "Kubernetes Events (events.k8s.io/v1, else core v1) on the Node for each phase and on each evicted or deleted Pod",
    },
    Setting {
        flag: "--node-condition",
        env: "NODE_CONDITION",
        value: "BOOL",
        default: "true",
        meaning: "Node condition `TerminationNotice`: True while a notice holds the node, False once it is back in service",
    },
    Setting {
        flag: "--log-format",
        env: "LOG_FORMAT",
        value: "FORMAT",
        default: "logfmt",
        meaning: "`logfmt` or `json` (one object per line: ts, level, msg, then the fields)",
    },
    Setting {
        flag: "--log-level",
        env: "LOG_LEVEL",
        value: "LEVEL",
        default: "info",
        meaning: "`debug`, `info`, `warn` or `error`; VERBOSE=true means `debug`",
    },
];

/// A secret value (token, webhook URL): `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: Option<String>,
    pub pod_name: Option<String>,
    pub namespace: Option<String>,
    pub poll_interval: Duration,
    pub imds_url: String,
    pub imds_timeout: Duration,
    pub notice_url: Option<String>,
    /// `CLOUD`; `None`: auto.
    pub cloud: Option<Provider>,
    pub gcp_metadata_url: String,
    pub azure_metadata_url: String,
    pub alibaba_metadata_url: String,
    pub gcp_preemption_deadline: Duration,
    pub gcp_migrate: Option<Action>,
    pub azure_approve: bool,
    pub azure_freeze: Option<Action>,
    pub rebalance: Option<Action>,
    pub rebalance_ttl: Duration,
    pub scheduled_events: Option<Action>,
    pub scheduled_event_lead: Duration,
    pub asg_lifecycle: bool,
    pub asg_lifecycle_deadline: Duration,
    pub detach_asg: bool,
    pub detach_asg_on: Vec<crate::notice::Kind>,
    /// The AWS SDK variables (region, endpoints, credentials), read when `detach_asg` is on.
    pub aws: Option<crate::awsapi::Env>,
    pub exclude_from_load_balancers: bool,
    pub eviction_delay: Duration,
    pub eviction_order: crate::drain::EvictionOrder,
    pub critical_priority: i64,
    pub pod_selector: Option<crate::selector::Selector>,
    pub surge_blocked: bool,
    /// `SURGE_BLOCKED=budgeted` (`surge_blocked` is then true too).
    pub surge_budgeted: bool,
    pub uptime_file: PathBuf,
    pub dry_run: bool,
    pub verbose: bool,
    pub grace_period: Option<u32>,
    pub drain_reserve: Duration,
    pub force_delete: bool,
    pub kube_api_url: String,
    pub service_account_dir: PathBuf,
    pub slack_url: Option<Secret>,
    pub slack_channel: Option<String>,
    pub cluster: Option<String>,
    /// The address, and the setting's text (for logs: no address formatting code needed).
    pub metrics_addr: Option<(std::net::SocketAddr, String)>,
    pub health_loop_timeout: Duration,
    pub health_metadata_timeout: Duration,
    pub webhook_urls: Vec<Secret>,
    /// `(name, value)`; values are secrets.
    pub webhook_headers: Vec<(String, Secret)>,
    pub webhook_template: crate::template::Template,
    /// `notice`, `drained`, `back`.
    pub webhook_phases: [bool; 3],
    pub proxies: crate::http::ProxySettings,
    pub events: bool,
    pub node_condition: bool,
    pub log_json: bool,
    pub log_level: crate::log::Level,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Mode {
    Run(Box<Config>),
    Help,
    Version,
}

/// An invalid setting: `invalid POLL_INTERVAL: expected …, got "abc"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The flag or environment variable the bad value came from.
    pub setting: String,
    pub expected: String,
    /// What came, already quoted or described (secrets are described, never echoed).
    pub got: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: expected {}, got {}",
            self.setting, self.expected, self.got
        )
    }
}

impl std::error::Error for Error {}

/// A raw value and where it came from (the flag or the variable name), for error messages.
struct Raw {
    value: String,
    source: String,
}

impl Raw {
    fn error(&self, expected: impl Into<String>) -> Error {
        Error {
            setting: self.source.clone(),
            expected: expected.into(),
            got: format!("{:?}", self.value),
        }
    }
}

/// Flag values collected by pico-args, then environment values, per setting.
struct RawArgs {
    values: Vec<Option<Raw>>,
}

impl RawArgs {
    fn get(&self, env: &str) -> Option<&Raw> {
        let i = SETTINGS
            .iter()
            .position(|s| s.env == env)
            .expect("setting exists in SETTINGS");
        self.values[i].as_ref()
    }
}

/// Parses the command line (without the program name) and the environment.
/// `env` is a lookup so tests never touch the process environment.
pub fn parse(
    args: Vec<std::ffi::OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Mode, Error> {
    // A flag followed by another flag has no value. Left to pico-args (which takes the flags in
    // SETTINGS order), the first would take the second's value: `--slack-url --detach-asg-on
    // URL` refused the secret URL as DETACH_ASG_ON, quoting it in the error.
    let is_flag = |a: &std::ffi::OsString| SETTINGS.iter().any(|s| a.to_str() == Some(s.flag));
    if let Some(w) = args.windows(2).find(|w| is_flag(&w[0]) && is_flag(&w[1])) {
        let flag = w[0].to_string_lossy();
        return Err(Error {
            setting: flag.to_string(),
            expected: format!("a value after {flag}"),
            got: format!("the option {}", w[1].to_string_lossy()),
        });
    }
    let mut pargs = pico_args::Arguments::from_vec(args);
    if pargs.contains(["-h", "--help"]) {
        return Ok(Mode::Help);
    }
    if pargs.contains(["-V", "--version"]) {
        return Ok(Mode::Version);
    }
    let mut values = Vec::with_capacity(SETTINGS.len());
    for s in SETTINGS {
        let flag: Option<String> = pargs.opt_value_from_str(s.flag).map_err(|e| Error {
            setting: s.flag.to_string(),
            expected: format!("a value after {}", s.flag),
            got: match e {
                pico_args::Error::OptionWithoutAValue(_) => "nothing".to_string(),
                other => other.to_string(),
            },
        })?;
        let raw = match flag {
            Some(value) => Some(Raw {
                value,
                source: s.flag.to_string(),
            }),
            None => env(s.env)
                .filter(|v| !v.trim().is_empty())
                .map(|value| Raw {
                    value,
                    source: s.env.to_string(),
                }),
        };
        values.push(raw);
    }
    let rest = pargs.finish();
    if let Some(first) = rest.first() {
        return Err(Error {
            setting: "command line".to_string(),
            expected: "only the options listed by --help, each followed by its value".to_string(),
            got: format!("{:?}", first.to_string_lossy()),
        });
    }
    let raw = RawArgs { values };
    Config::from_raw(&raw, env).map(|c| Mode::Run(Box::new(c)))
}

fn text(raw: &RawArgs, env: &str) -> Option<String> {
    raw.get(env).map(|r| r.value.trim().to_string())
}

/// A Kubernetes object name (DNS-1123 subdomain): it goes into API paths as is.
fn object_name(raw: &RawArgs, env: &str) -> Result<Option<String>, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(None);
    };
    let v = r.value.trim();
    let ok = v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(r.error("a Kubernetes object name (lowercase letters, digits, '-' and '.')"))
    }
}

fn duration_in(
    raw: &RawArgs,
    env: &str,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(default);
    };
    let expected = format!(
        "a duration such as 5, 5s, 200ms or 2m, from {} to {}",
        format_duration(min),
        format_duration(max)
    );
    match parse_seconds_or_duration(&r.value) {
        Some(d) if d >= min && d <= max => Ok(d),
        _ => Err(r.error(expected)),
    }
}

fn boolean(raw: &RawArgs, env: &str, default: bool) -> Result<bool, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(default);
    };
    match r.value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(r.error("true or false (1/0, yes/no, on/off)")),
    }
}

/// `SURGE_BLOCKED`: (restart budget-blocked Deployments, hold for rollouts): `budgeted` is both.
fn surge(raw: &RawArgs) -> Result<(bool, bool), Error> {
    match raw.get("SURGE_BLOCKED") {
        Some(r) if r.value.trim().eq_ignore_ascii_case("budgeted") => Ok((true, true)),
        Some(r) => boolean(raw, "SURGE_BLOCKED", false)
            .map(|b| (b, false))
            .map_err(|_| r.error("true, false or budgeted (1/0, yes/no, on/off)")),
        None => Ok((false, false)),
    }
}

/// One of `choices` (`off` means none); the default when unset.
fn action(
    raw: &RawArgs,
    env: &str,
    default: Option<Action>,
    choices: &[&str],
) -> Result<Option<Action>, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(default);
    };
    let v = r.value.trim().to_ascii_lowercase();
    if !choices.contains(&v.as_str()) {
        return Err(r.error(format!("one of {}", choices.join(", "))));
    }
    Ok(Action::parse(&v))
}

/// `CLOUD`: `None` for auto.
fn cloud(raw: &RawArgs) -> Result<Option<Provider>, Error> {
    let Some(r) = raw.get("CLOUD") else {
        return Ok(None);
    };
    let v = r.value.trim().to_ascii_lowercase();
    let all = [
        Provider::Aws,
        Provider::Gcp,
        Provider::Azure,
        Provider::Alibaba,
    ];
    match all.into_iter().find(|p| p.as_str() == v) {
        Some(p) => Ok(Some(p)),
        None if v == "auto" => Ok(None),
        None => Err(r.error("one of auto, aws, gcp, azure, alibaba")),
    }
}

/// A URL setting, checked by [`crate::http::Url::parse`] (scheme, host, port from 1 to 65535,
/// no user info, no `?`/`#` before the path, no whitespace), plain `http://` only unless
/// `https_ok`; trailing slashes removed. A `secret` is never echoed, even malformed.
fn url(raw: &RawArgs, env: &str, https_ok: bool, secret: bool) -> Result<Option<String>, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(None);
    };
    let v = r.value.trim();
    let schemes = if https_ok {
        "http:// or https://"
    } else {
        "http://"
    };
    let why = match crate::http::Url::parse(v) {
        Ok(u) if u.https && !https_ok => "https:// is not supported here",
        Ok(_) => return Ok(Some(v.trim_end_matches('/').to_string())),
        Err(why) => why,
    };
    let mut e = r.error(format!("a URL starting with {schemes} and naming a host"));
    e.got = if secret {
        format!(
            "a value of {} characters that is not such a URL ({why})",
            v.chars().count()
        )
    } else {
        format!("{:?} ({why})", v)
    };
    Err(e)
}

/// The Kubernetes API URL: https, or plain http only to a loopback address (kubectl proxy),
/// because the service-account token goes with every request.
fn kube_api_url(raw: &RawArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let Some(u) = url(raw, "KUBE_API_URL", true, false)? else {
        return in_cluster_url(env);
    };
    let parsed = crate::http::Url::parse(&u).expect("validated by url()");
    if !parsed.https && !parsed.is_loopback() {
        let r = raw.get("KUBE_API_URL").expect("came from somewhere");
        return Err(r.error(
            "https://, or http:// only to a loopback address such as kubectl proxy's 127.0.0.1:8001 \
             (the service-account token goes with every request)",
        ));
    }
    Ok(u)
}

/// `:PORT` (every IPv4 address), `IP:PORT` or `[IPv6]:PORT`; no host names (nothing resolves).
fn socket_addr(raw: &RawArgs, env: &str) -> Result<Option<(std::net::SocketAddr, String)>, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(None);
    };
    let v = r.value.trim();
    let full = match v.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => v.to_string(),
    };
    full.parse()
        .map(|a| Some((a, v.to_string())))
        .map_err(|_| r.error("an address to listen on: :PORT, IP:PORT or [IPv6]:PORT"))
}

/// Index of the value in `choices` (case-insensitive); `None` when unset.
fn choice(raw: &RawArgs, env: &str, choices: &[&str]) -> Result<Option<usize>, Error> {
    let Some(r) = raw.get(env) else {
        return Ok(None);
    };
    let v = r.value.trim().to_ascii_lowercase();
    match choices.iter().position(|c| *c == v) {
        Some(i) => Ok(Some(i)),
        None => Err(r.error(format!("one of {}", choices.join(", ")))),
    }
}

/// `WEBHOOK_URL`: comma-separated http(s) URLs, each a secret (an error only counts).
fn webhook_urls(raw: &RawArgs) -> Result<Vec<Secret>, Error> {
    let Some(r) = raw.get("WEBHOOK_URL") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, u) in r.value.split(',').map(str::trim).enumerate() {
        let host = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
        let ok = host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
            && !u.contains(char::is_whitespace);
        if !ok {
            return Err(Error {
                setting: r.source.clone(),
                expected:
                    "comma-separated URLs, each starting with http:// or https:// and naming a host"
                        .to_string(),
                got: format!(
                    "a value whose URL number {} ({} characters) is not such a URL",
                    i + 1,
                    u.chars().count()
                ),
            });
        }
        out.push(Secret::new(u));
    }
    Ok(out)
}

/// `WEBHOOK_HEADERS`: `Name: value` lines; values are secrets (an error names the line).
fn webhook_headers(raw: &RawArgs) -> Result<Vec<(String, Secret)>, Error> {
    let Some(r) = raw.get("WEBHOOK_HEADERS") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, line) in r.value.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| Error {
            setting: r.source.clone(),
            expected: "`Name: value` lines (a header name, a colon, a value)".to_string(),
            got: format!("line {} {why}", i + 1),
        };
        let (name, value) = line.split_once(':').ok_or_else(|| bad("has no colon"))?;
        let name = name.trim();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(bad("has no valid header name before its colon"));
        }
        if ["host", "content-length", "connection", "transfer-encoding"]
            .contains(&name.to_ascii_lowercase().as_str())
        {
            return Err(bad(&format!("sets {name}, which the handler sets itself")));
        }
        out.push((name.to_string(), Secret::new(value.trim())));
    }
    Ok(out)
}

/// `WEBHOOK_TEMPLATE` or `WEBHOOK_TEMPLATE_FILE` (not both), parsed; the default otherwise.
fn webhook_template(raw: &RawArgs) -> Result<crate::template::Template, Error> {
    let (r, text) = match (
        raw.get("WEBHOOK_TEMPLATE"),
        raw.get("WEBHOOK_TEMPLATE_FILE"),
    ) {
        (None, None) => return Ok(crate::template::Template::default_body()),
        (Some(_), Some(f)) => {
            return Err(f.error("WEBHOOK_TEMPLATE or WEBHOOK_TEMPLATE_FILE, not both"))
        }
        (Some(t), None) => (t, t.value.clone()),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f.value.trim())
                .map_err(|e| f.error(format!("a readable template file ({e})")))?;
            (f, text)
        }
    };
    crate::template::Template::parse(&text).map_err(|got| Error {
        setting: r.source.clone(),
        expected: format!("only the placeholders {}", crate::template::known()),
        got,
    })
}

/// `WEBHOOK_EVENTS`: which of `notice`, `drained`, `back` send a webhook message.
fn webhook_phases(raw: &RawArgs) -> Result<[bool; 3], Error> {
    let Some(r) = raw.get("WEBHOOK_EVENTS") else {
        return Ok([true; 3]);
    };
    let mut on = [false; 3];
    for w in r.value.split(',').map(|w| w.trim().to_ascii_lowercase()) {
        match ["notice", "drained", "back"].iter().position(|p| *p == w) {
            Some(i) => on[i] = true,
            None if w.is_empty() => {}
            None => return Err(r.error("a comma-separated list of notice, drained, back")),
        }
    }
    Ok(on)
}

/// A proxy URL (a secret when it holds credentials: errors never echo it).
fn proxy(raw: &RawArgs, name: &str) -> Result<Option<crate::http::Proxy>, Error> {
    let Some(r) = raw.get(name) else {
        return Ok(None);
    };
    crate::http::Proxy::parse(&r.value)
        .map(Some)
        .map_err(|expected| Error {
            setting: r.source.clone(),
            expected,
            got: format!(
                "a value of {} characters that is not one",
                r.value.trim().chars().count()
            ),
        })
}

impl Config {
    fn from_raw(raw: &RawArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let node_name = object_name(raw, "NODE_NAME")?;
        let pod_name = object_name(raw, "POD_NAME")?;
        let namespace = object_name(raw, "NAMESPACE")?;
        if node_name.is_none() && (pod_name.is_none() || namespace.is_none()) {
            return Err(Error {
                setting: "NODE_NAME".to_string(),
                expected: "the node name (downward API spec.nodeName), or POD_NAME and NAMESPACE to look it up"
                    .to_string(),
                got: match (&pod_name, &namespace) {
                    (None, None) => "none of the three".to_string(),
                    (Some(_), None) => "POD_NAME without NAMESPACE".to_string(),
                    _ => "NAMESPACE without POD_NAME".to_string(),
                },
            });
        }
        let grace_period = match raw.get("GRACE_PERIOD") {
            None => None,
            Some(r) => match r.value.trim().parse::<i64>() {
                Ok(-1) => None,
                Ok(n) if (1..=86_400).contains(&n) => Some(n as u32),
                _ => return Err(r.error("whole seconds from 1 to 86400, or -1 for each pod's own")),
            },
        };
        let imds_timeout = duration_in(
            raw,
            "IMDS_TIMEOUT",
            Duration::from_secs(2),
            Duration::from_secs(1),
            Duration::from_secs(30),
        )?;
        if imds_timeout.subsec_nanos() != 0 {
            return Err(raw
                .get("IMDS_TIMEOUT")
                .expect("a non-default value came from somewhere")
                .error("whole seconds from 1s to 30s"));
        }
        let verbose = boolean(raw, "VERBOSE", false)?;
        let detach_asg = boolean(raw, "DETACH_ASG", false)?;
        let detach_asg_on = match raw.get("DETACH_ASG_ON") {
            None => vec![crate::notice::Kind::SpotInterruption],
            Some(r) => crate::detach::parse_on(&r.value).map_err(|bad| Error {
                setting: r.source.clone(),
                expected: "a comma-separated list of spot-interruption, rebalance-recommendation, scheduled-maintenance".to_string(),
                got: bad,
            })?,
        };
        let aws = if detach_asg {
            Some(crate::awsapi::env_from(env)?)
        } else {
            None
        };
        let kube_api_url = kube_api_url(raw, env)?;
        let (surge_blocked, surge_budgeted) = surge(raw)?;
        Ok(Config {
            node_name,
            pod_name,
            namespace,
            poll_interval: duration_in(
                raw,
                "POLL_INTERVAL",
                Duration::from_millis(900),
                Duration::from_millis(50),
                Duration::from_secs(60),
            )?,
            imds_url: url(raw, "IMDS_URL", false, false)?
                .unwrap_or_else(|| DEFAULT_IMDS_URL.to_string()),
            imds_timeout,
            notice_url: url(raw, "NOTICE_URL", false, false)?,
            cloud: cloud(raw)?,
            gcp_metadata_url: url(raw, "GCP_METADATA_URL", false, false)?
                .unwrap_or_else(|| DEFAULT_GCP_METADATA_URL.to_string()),
            azure_metadata_url: url(raw, "AZURE_METADATA_URL", false, false)?
                .unwrap_or_else(|| DEFAULT_IMDS_URL.to_string()),
            alibaba_metadata_url: url(raw, "ALIBABA_METADATA_URL", false, false)?
                .unwrap_or_else(|| DEFAULT_ALIBABA_METADATA_URL.to_string()),
            gcp_preemption_deadline: duration_in(
                raw,
                "GCP_PREEMPTION_DEADLINE",
                Duration::from_secs(30),
                Duration::from_secs(5),
                Duration::from_secs(3600),
            )?,
            gcp_migrate: action(
                raw,
                "GCP_MIGRATE",
                Some(Action::Notify),
                &["off", "notify", "cordon", "drain"],
            )?,
            azure_approve: boolean(raw, "AZURE_APPROVE", true)?,
            azure_freeze: action(
                raw,
                "AZURE_FREEZE",
                Some(Action::Notify),
                &["off", "notify", "cordon", "drain"],
            )?,
            rebalance: action(
                raw,
                "REBALANCE",
                Some(Action::Cordon),
                &["off", "cordon", "drain"],
            )?,
            rebalance_ttl: duration_in(
                raw,
                "REBALANCE_TTL",
                Duration::from_secs(1800),
                Duration::ZERO,
                Duration::from_secs(86_400),
            )?,
            scheduled_events: action(
                raw,
                "SCHEDULED_EVENTS",
                Some(Action::Drain),
                &["off", "cordon", "drain"],
            )?,
            scheduled_event_lead: duration_in(
                raw,
                "SCHEDULED_EVENT_LEAD",
                Duration::from_secs(900),
                Duration::ZERO,
                Duration::from_secs(86_400),
            )?,
            asg_lifecycle: action(raw, "ASG_LIFECYCLE", Some(Action::Drain), &["off", "drain"])?
                .is_some(),
            asg_lifecycle_deadline: duration_in(
                raw,
                "ASG_LIFECYCLE_DEADLINE",
                Duration::from_secs(120),
                Duration::from_secs(10),
                Duration::from_secs(7200),
            )?,
            detach_asg,
            detach_asg_on,
            aws,
            exclude_from_load_balancers: boolean(raw, "EXCLUDE_FROM_LOAD_BALANCERS", true)?,
            eviction_delay: duration_in(
                raw,
                "EVICTION_DELAY",
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_secs(300),
            )?,
            eviction_order: match choice(raw, "EVICTION_ORDER", &["tiers", "parallel"])? {
                Some(1) => crate::drain::EvictionOrder::Parallel,
                _ => crate::drain::EvictionOrder::Tiers,
            },
            critical_priority: match raw.get("CRITICAL_PRIORITY") {
                None => crate::drain::DEFAULT_CRITICAL_PRIORITY,
                Some(r) => r
                    .value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (-2_147_483_648..=2_147_483_647).contains(n))
                    .ok_or_else(|| r.error("a 32-bit integer priority"))?,
            },
            pod_selector: match raw.get("POD_SELECTOR") {
                None => None,
                Some(r) => Some(crate::selector::parse(&r.value).map_err(|why| {
                    Error {
                        setting: r.source.clone(),
                        expected:
                            "a label selector such as `app=web,tier!=db,env in (a,b),!canary`"
                                .to_string(),
                        got: format!("{:?} ({why})", r.value),
                    }
                })?),
            },
            surge_blocked,
            surge_budgeted,
            uptime_file: PathBuf::from(
                text(raw, "UPTIME_FILE").unwrap_or_else(|| "/proc/uptime".to_string()),
            ),
            dry_run: boolean(raw, "DRY_RUN", false)?,
            grace_period,
            drain_reserve: duration_in(
                raw,
                "DRAIN_RESERVE",
                Duration::from_secs(20),
                Duration::ZERO,
                Duration::from_secs(600),
            )?,
            force_delete: boolean(raw, "FORCE_DELETE", true)?,
            kube_api_url,
            service_account_dir: PathBuf::from(
                text(raw, "SERVICE_ACCOUNT_DIR")
                    .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT_DIR.to_string()),
            ),
            slack_url: url(raw, "SLACK_URL", true, true)?.map(Secret::new),
            slack_channel: text(raw, "SLACK_CHANNEL"),
            cluster: text(raw, "CLUSTER"),
            metrics_addr: socket_addr(raw, "METRICS_ADDR")?,
            health_loop_timeout: duration_in(
                raw,
                "HEALTH_LOOP_TIMEOUT",
                Duration::from_secs(60),
                Duration::from_secs(1),
                Duration::from_secs(600),
            )?,
            health_metadata_timeout: duration_in(
                raw,
                "HEALTH_METADATA_TIMEOUT",
                Duration::from_secs(900),
                Duration::ZERO,
                Duration::from_secs(86_400),
            )?,
            webhook_urls: webhook_urls(raw)?,
            webhook_headers: webhook_headers(raw)?,
            webhook_template: webhook_template(raw)?,
            webhook_phases: webhook_phases(raw)?,
            proxies: crate::http::ProxySettings {
                webhook: proxy(raw, "WEBHOOK_PROXY")?,
                https: proxy(raw, "HTTPS_PROXY")?,
                no_proxy: text(raw, "NO_PROXY").unwrap_or_default(),
            },
            events: boolean(raw, "EVENTS", true)?,
            node_condition: boolean(raw, "NODE_CONDITION", true)?,
            log_json: choice(raw, "LOG_FORMAT", &["logfmt", "json"])? == Some(1),
            log_level: if verbose {
                crate::log::Level::Debug
            } else {
                choice(raw, "LOG_LEVEL", &["debug", "info", "warn", "error"])?
                    .map_or(crate::log::Level::Info, |i| crate::log::Level::ALL[i])
            },
            verbose,
        })
    }

    /// The URL polled for notices.
    pub fn poll_url(&self) -> String {
        match &self.notice_url {
            Some(u) => u.clone(),
            None => format!(
                "{}{}",
                self.imds_url,
                crate::cloud::aws::INSTANCE_ACTION_PATH
            ),
        }
    }

    fn action_name(a: Option<Action>) -> &'static str {
        a.map_or("off", Action::as_str)
    }

    /// The effective configuration as log fields, secrets redacted.
    pub fn banner_fields(&self) -> Vec<(&'static str, String)> {
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
        vec![
            ("node", or(&self.node_name, "(from POD_NAME)")),
            ("pod", or(&self.pod_name, "(unset)")),
            ("namespace", or(&self.namespace, "(unset)")),
            (
                "cloud",
                self.cloud.map_or("auto", Provider::as_str).to_string(),
            ),
            ("poll_url", self.poll_url()),
            ("poll_interval", format_duration(self.poll_interval)),
            ("rebalance", Self::action_name(self.rebalance).to_string()),
            ("rebalance_ttl", format_duration(self.rebalance_ttl)),
            (
                "scheduled_events",
                Self::action_name(self.scheduled_events).to_string(),
            ),
            (
                "scheduled_event_lead",
                format_duration(self.scheduled_event_lead),
            ),
            (
                "asg_lifecycle",
                if self.asg_lifecycle { "drain" } else { "off" }.to_string(),
            ),
            (
                "asg_lifecycle_deadline",
                format_duration(self.asg_lifecycle_deadline),
            ),
            (
                "detach_asg",
                match &self.aws {
                    Some(aws) => format!(
                        "{} (credentials: {})",
                        crate::detach::on_words(&self.detach_asg_on),
                        aws.source.name()
                    ),
                    None => "off".to_string(),
                },
            ),
            (
                "exclude_from_load_balancers",
                self.exclude_from_load_balancers.to_string(),
            ),
            ("eviction_delay", format_duration(self.eviction_delay)),
            (
                "eviction_order",
                match self.eviction_order {
                    crate::drain::EvictionOrder::Tiers => {
                        format!("tiers (critical priority {})", self.critical_priority)
                    }
                    crate::drain::EvictionOrder::Parallel => "parallel".to_string(),
                },
            ),
            (
                "pod_selector",
                self.pod_selector
                    .as_ref()
                    .map_or("(all pods)".to_string(), ToString::to_string),
            ),
            (
                "surge_blocked",
                if self.surge_budgeted {
                    "budgeted".to_string()
                } else {
                    self.surge_blocked.to_string()
                },
            ),
            ("dry_run", self.dry_run.to_string()),
            ("imds_timeout", format_duration(self.imds_timeout)),
            ("gcp_metadata_url", self.gcp_metadata_url.clone()),
            ("azure_metadata_url", self.azure_metadata_url.clone()),
            ("alibaba_metadata_url", self.alibaba_metadata_url.clone()),
            (
                "gcp_preemption_deadline",
                format_duration(self.gcp_preemption_deadline),
            ),
            (
                "gcp_migrate",
                Self::action_name(self.gcp_migrate).to_string(),
            ),
            ("azure_approve", self.azure_approve.to_string()),
            (
                "azure_freeze",
                Self::action_name(self.azure_freeze).to_string(),
            ),
            ("kube_api", self.kube_api_url.clone()),
            (
                "service_account_dir",
                self.service_account_dir.display().to_string(),
            ),
            (
                "grace_period",
                self.grace_period
                    .map_or("pod's own".to_string(), |g| format!("{g}s")),
            ),
            ("drain_reserve", format_duration(self.drain_reserve)),
            ("force_delete", self.force_delete.to_string()),
            (
                "slack",
                if self.slack_url.is_some() {
                    "<redacted>"
                } else {
                    "off"
                }
                .to_string(),
            ),
            ("slack_channel", or(&self.slack_channel, "(webhook's own)")),
            ("cluster", or(&self.cluster, "(unset)")),
            ("webhooks", self.webhook_urls.len().to_string()),
            (
                "proxy",
                format!(
                    "webhook={} https={} no_proxy={}",
                    proxy_text(&self.proxies.webhook),
                    proxy_text(&self.proxies.https),
                    self.proxies.no_proxy
                ),
            ),
            ("events", self.events.to_string()),
            ("node_condition", self.node_condition.to_string()),
            ("log_level", self.log_level.as_str().to_string()),
            ("verbose", self.verbose.to_string()),
            (
                "metrics_addr",
                self.metrics_addr
                    .as_ref()
                    .map_or("off".to_string(), |(_, text)| text.clone()),
            ),
        ]
    }
}

fn proxy_text(p: &Option<crate::http::Proxy>) -> String {
    p.as_ref()
        .map_or("(none)".to_string(), |p| format!("{p:?}"))
}

/// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, bracketing IPv6 hosts.
fn in_cluster_url(env: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let get = |k: &str| {
        env(k)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_string())
    };
    let missing = |k: &str| Error {
        setting: k.to_string(),
        expected: "the in-cluster API address set by the kubelet (or set KUBE_API_URL)".to_string(),
        got: "nothing".to_string(),
    };
    let host = get("KUBERNETES_SERVICE_HOST").ok_or_else(|| missing("KUBERNETES_SERVICE_HOST"))?;
    let port = get("KUBERNETES_SERVICE_PORT").ok_or_else(|| missing("KUBERNETES_SERVICE_PORT"))?;
    if port.parse::<u16>().map_or(true, |p| p == 0) || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error {
            setting: "KUBERNETES_SERVICE_PORT".to_string(),
            expected: "a TCP port number from 1 to 65535".to_string(),
            got: format!("{port:?}"),
        });
    }
    let bracketed = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let url = format!("https://{bracketed}:{port}");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let checked = crate::http::Url::parse(&url).and_then(|u| {
        if u.host == bare && u.path.is_empty() {
            Ok(())
        } else {
            Err("it is not a bare host name or IP address")
        }
    });
    match checked {
        Ok(()) => Ok(url),
        Err(why) => Err(Error {
            setting: "KUBERNETES_SERVICE_HOST".to_string(),
            expected: "a host name or IP address".to_string(),
            got: format!("{host:?} ({why})"),
        }),
    }
}

/// The version line: crate version and the Kubernetes version the build targets.
pub fn version_line() -> String {
    format!(
        "spot-termination-notice-handler {} (KUBE_VERSION {})",
        env!("CARGO_PKG_VERSION"),
        crate::KUBE_VERSION
    )
}

/// `--help`, derived from [`SETTINGS`].
pub fn help() -> String {
    let mut out = format!(
        "{}\n\
         Cordons and drains this Kubernetes node when its cloud (AWS, Google Cloud, Azure,\n\
         Alibaba Cloud) announces a spot reclaim or maintenance, within the notice's\n\
         deadline, and tells Slack.\n\n\
         Usage: spot-termination-notice-handler [OPTIONS]\n\n\
         Each option can also be set by its environment variable; a flag wins over the\n\
         environment, which wins over the default. Durations: 5 (seconds), 200ms, 5s, 2m.\n\nOptions:\n",
        version_line()
    );
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", s.default)
        };
        out.push_str(&format!(
            "  {} {}  (env {}){}\n      {}\n",
            s.flag,
            s.value,
            s.env,
            default,
            s.meaning.replace('`', "")
        ));
    }
    out.push_str("  -h, --help\n      Print this help\n  -V, --version\n      Print the version and the KUBE_VERSION the build targets\n");
    out
}

/// The README's settings table, derived from [`SETTINGS`] (kept identical by a test).
pub fn markdown_table() -> String {
    let mut out = String::from("| Flag | Environment | Default | Meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "(unset)".to_string()
        } else {
            format!("`{}`", s.default)
        };
        out.push_str(&format!(
            "| `{} {}` | `{}` | {} | {} |\n",
            s.flag, s.value, s.env, default, s.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, Error> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| map.get(k).cloned();
        match parse(args.iter().map(Into::into).collect(), &lookup)? {
            Mode::Run(c) => Ok(*c),
            other => panic!("unexpected mode {other:?}"),
        }
    }

    const BASE: &[(&str, &str)] = &[
        ("NODE_NAME", "node-a"),
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults() {
        let c = run(&[], BASE).unwrap();
        assert_eq!(c.node_name.as_deref(), Some("node-a"));
        assert_eq!(c.poll_interval, Duration::from_millis(900));
        assert_eq!(c.imds_url, "http://169.254.169.254");
        assert_eq!(
            c.poll_url(),
            "http://169.254.169.254/latest/meta-data/spot/instance-action"
        );
        assert_eq!(c.imds_timeout, Duration::from_secs(2));
        assert_eq!(c.drain_reserve, Duration::from_secs(20));
        assert!(c.force_delete);
        assert!(!c.verbose);
        assert_eq!(c.grace_period, None);
        assert_eq!(c.kube_api_url, "https://10.96.0.1:443");
        assert_eq!(
            c.service_account_dir,
            PathBuf::from(DEFAULT_SERVICE_ACCOUNT_DIR)
        );
        assert!(c.slack_url.is_none());
    }

    #[test]
    fn cloud_settings() {
        let c = run(&[], BASE).unwrap();
        assert_eq!(c.cloud, None, "auto");
        assert_eq!(c.gcp_metadata_url, "http://169.254.169.254");
        assert_eq!(c.azure_metadata_url, "http://169.254.169.254");
        assert_eq!(c.alibaba_metadata_url, "http://100.100.100.200");
        assert_eq!(c.gcp_preemption_deadline, Duration::from_secs(30));
        assert_eq!(c.gcp_migrate, Some(Action::Notify));
        assert!(c.azure_approve);
        assert_eq!(c.azure_freeze, Some(Action::Notify));
        let c = run(
            &["--cloud", "GCP"],
            &with(&[
                ("GCP_METADATA_URL", "http://metadata.google.internal/"),
                ("GCP_PREEMPTION_DEADLINE", "2m"),
                ("GCP_MIGRATE", "off"),
                ("AZURE_APPROVE", "false"),
                ("AZURE_FREEZE", "drain"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cloud, Some(Provider::Gcp));
        assert_eq!(c.gcp_metadata_url, "http://metadata.google.internal");
        assert_eq!(c.gcp_preemption_deadline, Duration::from_secs(120));
        assert_eq!(c.gcp_migrate, None);
        assert!(!c.azure_approve);
        assert_eq!(c.azure_freeze, Some(Action::Drain));
        assert_eq!(run(&[], &with(&[("CLOUD", "auto")])).unwrap().cloud, None);
        let cases: &[(&str, &str, &str)] = &[
            ("CLOUD", "oracle", "invalid CLOUD: expected one of auto, aws, gcp, azure, alibaba, got \"oracle\""),
            ("GCP_MIGRATE", "reboot", "invalid GCP_MIGRATE: expected one of off, notify, cordon, drain, got \"reboot\""),
            ("AZURE_FREEZE", "yes", "invalid AZURE_FREEZE: expected one of off, notify, cordon, drain, got \"yes\""),
            ("GCP_PREEMPTION_DEADLINE", "1s", "invalid GCP_PREEMPTION_DEADLINE: expected a duration such as 5, 5s, 200ms or 2m, from 5s to 1h, got \"1s\""),
            ("AZURE_METADATA_URL", "169.254.169.254", "invalid AZURE_METADATA_URL: expected a URL starting with http:// and naming a host, got \"169.254.169.254\" (it does not start with http:// or https://)"),
            ("ALIBABA_METADATA_URL", "https://100.100.100.200", "invalid ALIBABA_METADATA_URL: expected a URL starting with http:// and naming a host, got \"https://100.100.100.200\" (https:// is not supported here)"),
        ];
        for (k, v, want) in cases {
            let e = run(&[], &with(&[(*k, *v)])).unwrap_err();
            assert_eq!(e.to_string(), *want);
        }
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let c = run(
            &["--poll-interval", "200ms"],
            &with(&[("POLL_INTERVAL", "5")]),
        )
        .unwrap();
        assert_eq!(c.poll_interval, Duration::from_millis(200));
        let c = run(&[], &with(&[("POLL_INTERVAL", "5")])).unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        let c = run(&[], &with(&[("POLL_INTERVAL", "  ")])).unwrap();
        assert_eq!(
            c.poll_interval,
            Duration::from_millis(900),
            "empty env counts as unset"
        );
    }

    #[test]
    fn seed_style_environment() {
        let c = run(
            &[],
            &[
                ("POD_NAME", "sh-abcde"),
                ("NAMESPACE", "kube-system"),
                ("KUBERNETES_SERVICE_HOST", "fd00::1"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
                ("POLL_INTERVAL", "5"),
                ("VERBOSE", "1"),
                ("GRACE_PERIOD", "120"),
                (
                    "NOTICE_URL",
                    "http://169.254.169.254/latest/meta-data/spot/termination-time",
                ),
                (
                    "SLACK_URL",
                    "https://hooks.slack.com/services/T0/B0/XyZzy-s3cr3t",
                ),
                ("CLUSTER", "prod"),
            ],
        )
        .unwrap();
        assert_eq!(c.node_name, None);
        assert_eq!(c.kube_api_url, "https://[fd00::1]:6443");
        assert!(c.verbose);
        assert_eq!(c.grace_period, Some(120));
        assert_eq!(
            c.poll_url(),
            "http://169.254.169.254/latest/meta-data/spot/termination-time"
        );
        assert_eq!(
            c.slack_url.as_ref().unwrap().expose(),
            "https://hooks.slack.com/services/T0/B0/XyZzy-s3cr3t"
        );
        let fields = format!("{:?} {:?}", c.banner_fields(), c);
        assert!(!fields.contains("XyZzy"), "{fields}");
    }

    #[test]
    fn invalid_values_name_setting_expectation_and_value() {
        let cases: &[(&[&str], &[(&str, &str)], &str)] = &[
            (&[], &[("POLL_INTERVAL", "soon")], "invalid POLL_INTERVAL: expected a duration such as 5, 5s, 200ms or 2m, from 50ms to 1m, got \"soon\""),
            (&["--poll-interval", "0"], &[], "invalid --poll-interval: expected a duration such as 5, 5s, 200ms or 2m, from 50ms to 1m, got \"0\""),
            (&[], &[("IMDS_TIMEOUT", "1.5s")], "invalid IMDS_TIMEOUT: expected whole seconds from 1s to 30s, got \"1.5s\""),
            (&[], &[("GRACE_PERIOD", "0")], "invalid GRACE_PERIOD: expected whole seconds from 1 to 86400, or -1 for each pod's own, got \"0\""),
            (&[], &[("VERBOSE", "maybe")], "invalid VERBOSE: expected true or false (1/0, yes/no, on/off), got \"maybe\""),
            (&[], &[("IMDS_URL", "https://169.254.169.254")], "invalid IMDS_URL: expected a URL starting with http:// and naming a host, got \"https://169.254.169.254\" (https:// is not supported here)"),
            (&[], &[("DRAIN_RESERVE", "11m")], "invalid DRAIN_RESERVE: expected a duration such as 5, 5s, 200ms or 2m, from 0s to 10m, got \"11m\""),
            (&[], &[("SLACK_URL", "hooks.slack.com/services/T0/B0/topsecret")], "invalid SLACK_URL: expected a URL starting with http:// or https:// and naming a host, got a value of 40 characters that is not such a URL (it does not start with http:// or https://)"),
            (&[], &[("SLACK_URL", "https://user:topsecret@hooks.slack.com/services/T0/B0/x")], "invalid SLACK_URL: expected a URL starting with http:// or https:// and naming a host, got a value of 55 characters that is not such a URL (it has user info (user@host), which is not allowed)"),
            (&["--node-name", "../nodes/x"], &[], "invalid --node-name: expected a Kubernetes object name (lowercase letters, digits, '-' and '.'), got \"../nodes/x\""),
            (&[], &[("NAMESPACE", "Kube-System"), ("POD_NAME", "p")], "invalid NAMESPACE: expected a Kubernetes object name (lowercase letters, digits, '-' and '.'), got \"Kube-System\""),
            (&["--bogus", "1"], &[], "invalid command line: expected only the options listed by --help, each followed by its value, got \"--bogus\""),
            (&["--cluster"], &[], "invalid --cluster: expected a value after --cluster, got nothing"),
        ];
        for (args, env, want) in cases {
            let e = run(args, &with(env)).unwrap_err();
            assert_eq!(e.to_string(), *want);
        }
    }

    #[test]
    fn every_url_is_validated_under_its_own_name() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("KUBE_API_URL", "https://127.0.0.1:99999")], "invalid KUBE_API_URL: expected a URL starting with http:// or https:// and naming a host, got \"https://127.0.0.1:99999\" (its port is not a number from 1 to 65535)"),
            (&[("KUBE_API_URL", "https://admin:pw@10.96.0.1")], "invalid KUBE_API_URL: expected a URL starting with http:// or https:// and naming a host, got \"https://admin:pw@10.96.0.1\" (it has user info (user@host), which is not allowed)"),
            (&[("KUBE_API_URL", "https://10.96.0.1?x=1")], "invalid KUBE_API_URL: expected a URL starting with http:// or https:// and naming a host, got \"https://10.96.0.1?x=1\" (it has a '?' or '#' before the path)"),
            (&[("KUBE_API_URL", "https://")], "invalid KUBE_API_URL: expected a URL starting with http:// or https:// and naming a host, got \"https://\" (it names no host)"),
            (&[("KUBE_API_URL", "http://10.0.0.5:8001")], "invalid KUBE_API_URL: expected https://, or http:// only to a loopback address such as kubectl proxy's 127.0.0.1:8001 (the service-account token goes with every request), got \"http://10.0.0.5:8001\""),
            (&[("IMDS_URL", "http://169.254.169.254:0"), ("NOTICE_URL", "http://169.254.169.254/latest/meta-data/spot/termination-time")], "invalid IMDS_URL: expected a URL starting with http:// and naming a host, got \"http://169.254.169.254:0\" (its port is not a number from 1 to 65535)"),
            (&[("NOTICE_URL", "http://169.254.169.254:x/latest")], "invalid NOTICE_URL: expected a URL starting with http:// and naming a host, got \"http://169.254.169.254:x/latest\" (its port is not a number from 1 to 65535)"),
            (&[("NOTICE_URL", "http://u@169.254.169.254/")], "invalid NOTICE_URL: expected a URL starting with http:// and naming a host, got \"http://u@169.254.169.254/\" (it has user info (user@host), which is not allowed)"),
            (&[("KUBERNETES_SERVICE_HOST", "10.96.0.1/x")], "invalid KUBERNETES_SERVICE_HOST: expected a host name or IP address, got \"10.96.0.1/x\" (it is not a bare host name or IP address)"),
            (&[("KUBERNETES_SERVICE_PORT", "+443")], "invalid KUBERNETES_SERVICE_PORT: expected a TCP port number from 1 to 65535, got \"+443\""),
        ];
        for (env, want) in cases {
            let e = run(&[], &with(env)).unwrap_err();
            assert_eq!(e.to_string(), *want);
        }
        for ok in [
            "http://127.0.0.1:8001",
            "http://localhost:8001/",
            "http://[::1]:8001",
            "https://10.96.0.1:443",
            "https://kubernetes.default.svc",
        ] {
            let c = run(&[], &with(&[("KUBE_API_URL", ok)])).unwrap();
            assert_eq!(c.kube_api_url, ok.trim_end_matches('/'));
        }
    }

    #[test]
    fn node_identity_and_api_address_are_required() {
        let e = run(
            &[],
            &[
                ("KUBERNETES_SERVICE_HOST", "h"),
                ("KUBERNETES_SERVICE_PORT", "1"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.setting, "NODE_NAME");
        assert_eq!(e.got, "none of the three");
        let e = run(
            &[],
            &[
                ("POD_NAME", "p"),
                ("KUBERNETES_SERVICE_HOST", "h"),
                ("KUBERNETES_SERVICE_PORT", "1"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.got, "POD_NAME without NAMESPACE");
        let e = run(&[], &[("NODE_NAME", "n")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid KUBERNETES_SERVICE_HOST: expected the in-cluster API address set by the kubelet (or set KUBE_API_URL), got nothing"
        );
        let e = run(
            &[],
            &[
                ("NODE_NAME", "n"),
                ("KUBERNETES_SERVICE_HOST", "h"),
                ("KUBERNETES_SERVICE_PORT", "https"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.setting, "KUBERNETES_SERVICE_PORT");
        let c = run(
            &["--kube-api-url", "http://127.0.0.1:8001/"],
            &[("NODE_NAME", "n")],
        )
        .unwrap();
        assert_eq!(c.kube_api_url, "http://127.0.0.1:8001");
    }

    #[test]
    fn help_and_version_modes() {
        let lookup = |_: &str| None;
        assert!(matches!(
            parse(vec!["--help".into()], &lookup),
            Ok(Mode::Help)
        ));
        assert!(matches!(
            parse(vec!["-V".into()], &lookup),
            Ok(Mode::Version)
        ));
        let h = help();
        for s in SETTINGS {
            assert!(
                h.contains(&format!("{} {}  (env {})", s.flag, s.value, s.env)),
                "{}",
                s.flag
            );
        }
    }

    #[test]
    fn readme_settings_table_matches() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("<!-- settings:start -->")
            .expect("README has the settings marker");
        let end = readme
            .find("<!-- settings:end -->")
            .expect("README has the settings end marker");
        let table = readme[start + "<!-- settings:start -->".len()..end].trim();
        let want = markdown_table();
        assert!(
            table == want.trim(),
            "README settings table is out of date; replace it with:\n{want}"
        );
    }

    #[test]
    fn metrics_addresses() {
        let addr = |v: &'static str| {
            run(&[], &with(&[("METRICS_ADDR", v)]))
                .map(|c| c.metrics_addr.map(|(a, _)| a.to_string()))
        };
        assert_eq!(addr(":17864").unwrap().as_deref(), Some("0.0.0.0:17864"));
        assert_eq!(addr("127.0.0.1:0").unwrap().as_deref(), Some("127.0.0.1:0"));
        assert_eq!(addr("[::1]:9000").unwrap().as_deref(), Some("[::1]:9000"));
        assert_eq!(addr(" ").unwrap(), None, "empty: off");
        for bad in ["17864", "localhost:80", ":http", "0.0.0.0", "[::1]", ":-1"] {
            assert_eq!(addr(bad).unwrap_err().setting, "METRICS_ADDR", "{bad}");
        }
        let c = run(&[], BASE).unwrap();
        assert_eq!(c.metrics_addr, None, "off by default");
        assert_eq!(c.health_loop_timeout, Duration::from_secs(60));
        assert_eq!(c.health_metadata_timeout, Duration::from_secs(900));
        let c = run(&[], &with(&[("HEALTH_METADATA_TIMEOUT", "0")])).unwrap();
        assert_eq!(c.health_metadata_timeout, Duration::ZERO);
    }

    #[test]
    fn detach_asg_settings() {
        use crate::notice::Kind;
        let c = run(&[], BASE).unwrap();
        assert!(!c.detach_asg && c.aws.is_none());
        assert_eq!(c.detach_asg_on, [Kind::SpotInterruption]);
        // The AWS variables are read only when the detach is on.
        let c = run(&[], &with(&[("AWS_REGION", "bad region")])).unwrap();
        assert!(c.aws.is_none());
        let c = run(
            &["--detach-asg", "true"],
            &with(&[
                ("DETACH_ASG_ON", "rebalance-recommendation"),
                ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                ),
                ("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLETOKEN"),
            ]),
        )
        .unwrap();
        assert!(c.detach_asg);
        assert_eq!(c.detach_asg_on, [Kind::SpotInterruption, Kind::Rebalance]);
        let shown = format!("{:?} {:?}", c.banner_fields(), c);
        assert!(
            shown.contains("spot-interruption,rebalance-recommendation (credentials: environment)"),
            "{shown}"
        );
        assert!(
            !shown.contains("wJalr") && !shown.contains("IQoJb3"),
            "{shown}"
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("DETACH_ASG_ON", "termination")], "invalid DETACH_ASG_ON: expected a comma-separated list of spot-interruption, rebalance-recommendation, scheduled-maintenance, got \"termination\": the group itself terminates the instance then"),
            (&[("DETACH_ASG_ON", "spot,rebalance")], "invalid DETACH_ASG_ON: expected a comma-separated list of spot-interruption, rebalance-recommendation, scheduled-maintenance, got \"spot\""),
            (&[("DETACH_ASG", "true"), ("AWS_ENDPOINT_URL", "http://192.0.2.1")], "invalid AWS_ENDPOINT_URL: expected an https:// URL"),
            (&[("DETACH_ASG", "yes please")], "invalid DETACH_ASG: expected true or false"),
        ];
        for (env, want) in cases {
            let e = run(&[], &with(env)).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn least_harm_settings() {
        use crate::drain::EvictionOrder;
        let c = run(&[], &with(&[])).unwrap();
        assert_eq!(
            (
                c.eviction_order,
                c.critical_priority,
                c.pod_selector.is_none(),
                c.surge_blocked
            ),
            (EvictionOrder::Tiers, 2_000_000_000, true, false)
        );
        let c = run(
            &[],
            &with(&[
                ("EVICTION_ORDER", "parallel"),
                ("CRITICAL_PRIORITY", "1000"),
                ("POD_SELECTOR", "app=web, tier notin (db)"),
                ("SURGE_BLOCKED", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.eviction_order, c.critical_priority, c.surge_blocked),
            (EvictionOrder::Parallel, 1000, true)
        );
        assert_eq!(
            c.pod_selector.unwrap().to_string(),
            "app=web,tier notin (db)"
        );
        // SURGE_BLOCKED: the boolean words keep their meaning; `budgeted` is the third value.
        for (v, want) in [
            ("true", (true, false)),
            ("off", (false, false)),
            ("1", (true, false)),
            ("budgeted", (true, true)),
            (" Budgeted ", (true, true)),
        ] {
            let c = run(&[], &with(&[("SURGE_BLOCKED", v)])).unwrap();
            assert_eq!((c.surge_blocked, c.surge_budgeted), want, "{v}");
        }
        let c = run(&["--surge-blocked", "budgeted"], &with(&[])).unwrap();
        assert!(c.surge_blocked && c.surge_budgeted);
        assert!(!run(&[], &with(&[])).unwrap().surge_budgeted);
        let c = run(&["--pod-selector", "!canary"], &with(&[])).unwrap();
        assert_eq!(c.pod_selector.unwrap().to_string(), "!canary");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("EVICTION_ORDER", "priority")], "invalid EVICTION_ORDER: expected one of tiers, parallel, got \"priority\""),
            (&[("CRITICAL_PRIORITY", "high")], "invalid CRITICAL_PRIORITY: expected a 32-bit integer priority, got \"high\""),
            (&[("CRITICAL_PRIORITY", "3000000000")], "invalid CRITICAL_PRIORITY: expected a 32-bit integer priority, got \"3000000000\""),
            (&[("POD_SELECTOR", "app in web")], "invalid POD_SELECTOR: expected a label selector such as `app=web,tier!=db,env in (a,b),!canary`, got \"app in web\" (expected '(' values ')' after \"in\")"),
            (&[("POD_SELECTOR", "a=b,")], "invalid POD_SELECTOR: expected a label selector such as `app=web,tier!=db,env in (a,b),!canary`, got \"a=b,\" (empty requirement)"),
            (&[("SURGE_BLOCKED", "maybe")], "invalid SURGE_BLOCKED: expected true, false or budgeted (1/0, yes/no, on/off), got \"maybe\""),
        ];
        for (env, want) in cases {
            let e = run(&[], &with(env)).unwrap_err();
            assert_eq!(e.to_string(), *want);
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn webhook_proxy_and_log_settings() {
        let c = run(&[], BASE).unwrap();
        assert!(c.webhook_urls.is_empty() && c.webhook_headers.is_empty());
        assert_eq!(
            c.webhook_template,
            crate::template::Template::default_body()
        );
        assert_eq!(c.webhook_phases, [true; 3]);
        assert_eq!(c.proxies, crate::http::ProxySettings::default());
        assert!(c.events && c.node_condition && !c.log_json);
        assert_eq!(c.log_level, crate::log::Level::Info);
        let c = run(
            &["--log-level", "WARN"],
            &with(&[
                (
                    "WEBHOOK_URL",
                    " https://a.example/x?sig=s1 ,http://b.example:8080/y ",
                ),
                ("WEBHOOK_HEADERS", "A: 1\r\n\r\n X-B :  two words "),
                ("WEBHOOK_TEMPLATE", "{{node}}"),
                ("WEBHOOK_EVENTS", "back, NOTICE"),
                ("HTTPS_PROXY", "http://p:1"),
                ("WEBHOOK_PROXY", "q:2"),
                ("NO_PROXY", ".svc"),
                ("EVENTS", "false"),
                ("NODE_CONDITION", "0"),
                ("LOG_FORMAT", "json"),
            ]),
        )
        .unwrap();
        let urls: Vec<&str> = c.webhook_urls.iter().map(Secret::expose).collect();
        assert_eq!(
            urls,
            ["https://a.example/x?sig=s1", "http://b.example:8080/y"]
        );
        let headers: Vec<(&str, &str)> = c
            .webhook_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("A", "1"), ("X-B", "two words")]);
        assert_eq!(c.webhook_phases, [true, false, true]);
        assert_eq!(format!("{:?}", c.proxies.https), "Some(http://p:1)");
        assert_eq!(format!("{:?}", c.proxies.webhook), "Some(http://q:2)");
        assert_eq!(c.proxies.no_proxy, ".svc");
        assert!(!c.events && !c.node_condition && c.log_json);
        assert_eq!(c.log_level, crate::log::Level::Warn);
        let c = run(&[], &with(&[("VERBOSE", "1"), ("LOG_LEVEL", "error")])).unwrap();
        assert_eq!(c.log_level, crate::log::Level::Debug, "VERBOSE means debug");
        let c = run(
            &[],
            &with(&[("HTTPS_PROXY", "http://x:9"), ("https_proxy", "http://y:9")]),
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", c.proxies.https),
            "Some(http://x:9)",
            "upper case wins"
        );
        let secret = run(
            &[],
            &with(&[
                ("WEBHOOK_URL", "https://h.example/canary-url"),
                ("WEBHOOK_HEADERS", "Authorization: canary-header"),
                ("WEBHOOK_PROXY", "http://u:canary-pw@p:3"),
                ("WEBHOOK_TEMPLATE", "{\"k\":\"canary-template\"}"),
            ]),
        )
        .unwrap();
        let shown = format!("{:?} {:?}", secret.banner_fields(), secret);
        assert!(!shown.contains("canary"), "{shown}");
    }

    #[test]
    fn a_flag_without_a_value_does_not_take_the_next_flags_value() {
        // Found by the fuzzer (fuzz/fuzz_targets/config.rs): `--slack-url --detach-asg-on URL`
        // gave the Slack URL to --detach-asg-on, whose error quoted it.
        let secret = "https://hooks.slack.com/services/T0/B0/s3cr3t";
        let e = run(&["--slack-url", "--detach-asg-on", secret], BASE).unwrap_err();
        assert_eq!(e.setting, "--slack-url");
        assert_eq!(e.got, "the option --detach-asg-on");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert!(run(
            &["--detach-asg-on", "--imds-url", "http://127.0.0.1:1"],
            BASE
        )
        .is_err());
        assert!(run(&["--slack-url", secret], BASE).is_ok());
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("https://hooks.slack.com/services/T/B/x");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
    }
}
