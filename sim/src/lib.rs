//! `stnh-sim`: the development simulator for spot-termination-notice-handler.
//!
//! One in-process program serving, on 127.0.0.1 ports chosen by the OS:
//!
//! - a fake **AWS IMDS** (plain HTTP) with IMDSv1/v2, token TTLs, the spot notice, rebalance,
//!   scheduled maintenance and ASG lifecycle signals ([`imds`]);
//! - fake **GCE**, **Azure** and **Alibaba** metadata services ([`gcp`], [`azure`],
//!   [`alibaba`]); which one answers, a clock that can lie and a timeline script are in
//!   [`metadata`];
//! - a fake **kube-apiserver** over TLS (HTTP/1.1, keep-alive) with nodes (and `nodes/status`),
//!   pods, PDBs, DaemonSets, Deployments and ReplicaSets, Events in both groups, PATCH in all
//!   three flavours, paging, the eviction subresource with real PDB arithmetic, a pod termination
//!   model and the controllers a drain meets ([`api`], [`store`], [`events`], [`workloads`]);
//! - a **Slack webhook sink** ([`slack`]), generic and service-shaped **webhook sinks**
//!   ([`webhook`]) and an HTTP **CONNECT proxy** ([`proxy`]);
//! - hostile peers for timeout tests: a black hole, a trickler, a switchable TCP proxy
//!   ([`hostile`]).
//!
//! Tests describe a [`Scenario`], [`Sim::start`] it, point the handler at
//! [`Sim::handler_env`], and then assert on the request logs and the final cluster state.
//! Dropping the [`Sim`] stops every listener and joins its threads.
//!
//! Non-goals: watches, server-side apply, protobuf, object kinds the handler never touches,
//! HTTP/2. Nothing here ever talks to a real endpoint.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod canary;
pub mod child;
pub mod discovery;
pub mod events;
pub mod flow;
pub mod hostile;
pub mod http;
pub mod imds;
pub mod kubetime;
pub mod patch;
// The metadata side: one fake per cloud, and what they share.
pub mod alibaba;
pub mod azure;
pub mod gcp;
pub mod metadata;
pub mod pki;
pub mod presets;
pub mod proxy;
pub mod selector;
pub mod slack;
pub mod status;
pub mod store;
pub mod testclient;
pub mod timeline;
pub mod util;
pub mod webhook;
pub mod workloads;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

pub use api::{ApiRequest, FaultAction};
pub use imds::{ImdsMode, ImdsRequest};
pub use pki::ServerCert;
pub use proxy::{ConnectProxy, ProxyRequest};
pub use slack::{SlackMessage, SlackMode};
pub use store::{PdbStatus, PodSpec};
// The metadata side.
pub use alibaba::{AlibabaMode, WhenNone};
pub use azure::AzureEvent;
pub use imds::{EmptyEvents, MaintenanceEvent};
pub use metadata::{Cloud, MetaRequest, Reach, Script, Step};
pub use webhook::{SinkTls, WebhookKind, WebhookMode, WebhookRequest, WebhookSink};
pub use workloads::{AvailabilityRow, Strategy};

use api::{ApiControl, Fault};
use discovery::Versions;
use http::Server;
use imds::{Identity, ImdsState, Notice};
use slack::SlackState;
use store::{Store, StoreConfig};

/// The service account the handler runs as (namespace is configurable).
pub const SA_NAME: &str = "spot-termination-notice-handler";
/// EC2 instance id of the scenario node (IMDS `instance-id`, node `spec.providerID`).
pub const INSTANCE_ID: &str = "i-0abc123def4567890";
/// Name of the node replacement pods go to.
pub const REPLACEMENT_NODE: &str = "node-b";

/// Something the simulator served, for live observers (the CLI prints these).
#[derive(Debug)]
pub enum SimEvent<'a> {
    /// An API server request.
    Api(&'a ApiRequest),
    /// An IMDS request.
    Imds(&'a ImdsRequest),
    /// A Slack POST.
    Slack(&'a SlackMessage),
    /// A GCE, Azure or Alibaba metadata request (IMDS ones are [`SimEvent::Imds`]).
    Metadata(&'a MetaRequest),
    /// A request to one of the scenario's webhook sinks.
    Webhook(WebhookKind, &'a WebhookRequest),
}

/// A live observer, called on the serving thread after each request (keep it quick).
pub type Observer = Arc<dyn Fn(&SimEvent) + Send + Sync>;

/// Locks a mutex, ignoring poisoning (a panicking test thread must not wedge the simulator).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the three servers.
pub struct Shared {
    store: Mutex<Store>,
    pub(crate) api: Mutex<ApiControl>,
    /// Signalled when an API seat frees up (APF-like queueing, see `api::handle`).
    pub(crate) seat_free: std::sync::Arc<std::sync::Condvar>,
    pub(crate) imds: Mutex<ImdsState>,
    pub(crate) slack: Mutex<SlackState>,
    pub(crate) versions: Versions,
    pub(crate) user: String,
    observer: Option<Observer>,
}

impl Shared {
    /// The store, with pending simulated time applied.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        let mut g = lock(&self.store);
        g.tick(Instant::now());
        g
    }

    pub(crate) fn notify(&self, e: SimEvent) {
        if let Some(o) = &self.observer {
            o(&e);
        }
    }
}

/// A PDB to create at start.
#[derive(Clone)]
struct PdbDef {
    ns: String,
    name: String,
    labels: Vec<(String, String)>,
    min: Option<Value>,
    max: Option<Value>,
}

/// What to simulate. Builder-style; every setting has a sane default.
#[derive(Clone)]
pub struct Scenario {
    node_name: String,
    replacement_node: String,
    pods: Vec<PodSpec>,
    pdbs: Vec<PdbDef>,
    processing_pdbs: Vec<(String, String)>,
    daemonsets: Vec<(String, String)>,
    imds_mode: ImdsMode,
    instance_id: String,
    imds_items: Vec<(String, Vec<u8>)>,
    notice: Option<(Duration, String, Duration)>,
    latency: Duration,
    eviction_version: String,
    handler_pod: Option<String>,
    sa_namespace: String,
    replacement_ready_after: Option<Duration>,
    node_controller_delay: Option<Duration>,
    slack_mode: SlackMode,
    server_cert: ServerCert,
    sa_dir: Option<PathBuf>,
    cluster: String,
    deny: Vec<(String, String)>,
    node_taints: Vec<Value>,
    node_labels: Vec<(String, String)>,
    observer: Option<Observer>,
    meta: metadata::MetaPlan,
    // Kubernetes/webhook-side additions; their builders live in `events`, `workloads`, `webhook`.
    events_v1: bool,
    deployments: Vec<workloads::DeploymentDef>,
    webhook_sinks: Vec<(WebhookKind, SinkTls, WebhookMode)>,
    proxy_auth: Option<Option<(String, String)>>,
}

impl Scenario {
    /// One Ready spot node `node_name` (labels incl. `eks.amazonaws.com/capacityType=SPOT`,
    /// providerID `aws:///us-east-1a/i-0abc123def4567890`) plus an on-demand node `node-b` for
    /// replacements. No pods, IMDS optional (v1+v2), no notice, no latency, policy/v1 eviction.
    pub fn new(node_name: &str) -> Scenario {
        Scenario {
            node_name: node_name.to_string(),
            replacement_node: REPLACEMENT_NODE.to_string(),
            pods: Vec::new(),
            pdbs: Vec::new(),
            processing_pdbs: Vec::new(),
            daemonsets: Vec::new(),
            imds_mode: ImdsMode::Optional,
            instance_id: INSTANCE_ID.to_string(),
            imds_items: Vec::new(),
            notice: None,
            latency: Duration::ZERO,
            eviction_version: "v1".to_string(),
            handler_pod: None,
            sa_namespace: "kube-system".to_string(),
            replacement_ready_after: Some(Duration::from_secs(2)),
            node_controller_delay: Some(Duration::from_millis(100)),
            slack_mode: SlackMode::Ok,
            server_cert: ServerCert::Normal,
            sa_dir: None,
            cluster: "sim-cluster".to_string(),
            deny: Vec::new(),
            node_taints: Vec::new(),
            node_labels: Vec::new(),
            observer: None,
            meta: metadata::MetaPlan::default(),
            events_v1: true,
            deployments: Vec::new(),
            webhook_sinks: Vec::new(),
            proxy_auth: None,
        }
    }

    /// Adds a pod (on the scenario node unless [`PodSpec::node`] says otherwise).
    pub fn pod(mut self, p: PodSpec) -> Self {
        self.pods.push(p);
        self
    }

    /// Adds a policy/v1 PDB selecting `match_labels` in `ns`.
    pub fn pdb(
        self,
        ns: &str,
        name: &str,
        match_labels: &[(&str, &str)],
        min_available: Option<i64>,
        max_unavailable: Option<i64>,
    ) -> Self {
        self.pdb_value(
            ns,
            name,
            match_labels,
            min_available.map(Value::from),
            max_unavailable.map(Value::from),
        )
    }

    /// Like [`Scenario::pdb`] with int-or-percent values (`json!(2)`, `json!("50%")`).
    pub fn pdb_value(
        mut self,
        ns: &str,
        name: &str,
        match_labels: &[(&str, &str)],
        min_available: Option<Value>,
        max_unavailable: Option<Value>,
    ) -> Self {
        self.pdbs.push(PdbDef {
            ns: ns.to_string(),
            name: name.to_string(),
            labels: match_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            min: min_available,
            max: max_unavailable,
        });
        self
    }

    /// Marks a PDB as "still being processed" (evictions get 429 with `Retry-After: 10`).
    pub fn pdb_processing(mut self, ns: &str, name: &str) -> Self {
        self.processing_pdbs
            .push((ns.to_string(), name.to_string()));
        self
    }

    /// Adds a DaemonSet object (DaemonSets referenced by pods are created automatically).
    pub fn daemonset(mut self, ns: &str, name: &str) -> Self {
        self.daemonsets.push((ns.to_string(), name.to_string()));
        self
    }

    /// IMDS behaviour (default [`ImdsMode::Optional`]).
    pub fn imds_mode(mut self, m: ImdsMode) -> Self {
        self.imds_mode = m;
        self
    }

    /// The scenario node's EC2 instance id (IMDS `instance-id`, identity document, node
    /// `spec.providerID`; default [`INSTANCE_ID`]), e.g. the id of an instance another fake
    /// (moto) holds in an Auto Scaling group.
    pub fn instance_id(mut self, id: &str) -> Self {
        self.instance_id = id.to_string();
        self
    }

    /// Serve `body` at the IMDS path `path` (e.g. an instance tag
    /// `/latest/meta-data/tags/instance/aws:autoscaling:groupName`, or instance-profile
    /// credentials `/latest/meta-data/iam/security-credentials/<role>`); the directories above
    /// it list it. Absent paths stay 404 (instance tags not exposed in metadata).
    pub fn imds_item(mut self, path: &str, body: &str) -> Self {
        self.imds_items
            .push((path.to_string(), body.as_bytes().to_vec()));
        self
    }

    /// The spot notice appears `d` after start; its `time` is appearance + `deadline_after_notice`.
    pub fn notice_after(
        mut self,
        d: Duration,
        action: &str,
        deadline_after_notice: Duration,
    ) -> Self {
        self.notice = Some((d, action.to_string(), deadline_after_notice));
        self
    }

    /// Delay before every API response (default 0).
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// `"v1"` (default, 1.22+) or `"v1beta1"` (an old 1.21 cluster: discovery says
    /// policy/v1beta1 and a policy/v1 Eviction body gets 400).
    pub fn eviction_version(mut self, v: &str) -> Self {
        self.eviction_version = v.to_string();
        self
    }

    /// Adds the handler's own pod: DaemonSet `spot-termination-notice-handler` in the service
    /// account namespace, named `spot-termination-notice-handler-xxxxx`, hostNetwork. Its name
    /// goes into `POD_NAME`.
    pub fn handler_pod(mut self) -> Self {
        self.handler_pod = Some(format!("{SA_NAME}-{}", util::name_suffix()));
        self
    }

    /// Namespace of the handler's service account (default `kube-system`).
    pub fn service_account_namespace(mut self, ns: &str) -> Self {
        self.sa_namespace = ns.to_string();
        self
    }

    /// Where controllers put replacement pods (default `node-b`).
    pub fn replacement_node(mut self, n: &str) -> Self {
        self.replacement_node = n.to_string();
        self
    }

    /// How long replacement pods take to become Ready (default 2 s; `None`: never).
    pub fn replacement_ready_after(mut self, d: Option<Duration>) -> Self {
        self.replacement_ready_after = d;
        self
    }

    /// Delay of the node lifecycle controller's unschedulable taint (default 100 ms; `None`
    /// disables it).
    pub fn node_controller(mut self, d: Option<Duration>) -> Self {
        self.node_controller_delay = d;
        self
    }

    /// Initial Slack sink behaviour.
    pub fn slack_mode(mut self, m: SlackMode) -> Self {
        self.slack_mode = m;
        self
    }

    /// Serve the DNS-only certificate (no IP SAN).
    pub fn dns_only_cert(mut self) -> Self {
        self.server_cert = ServerCert::DnsOnly;
        self
    }

    /// Write the service-account files into this directory instead of a fresh temp dir (the
    /// directory is created if needed and not removed on drop).
    pub fn sa_dir(mut self, dir: &Path) -> Self {
        self.sa_dir = Some(dir.to_path_buf());
        self
    }

    /// Value of `CLUSTER` in [`Sim::handler_env`] (default `sim-cluster`).
    pub fn cluster(mut self, name: &str) -> Self {
        self.cluster = name.to_string();
        self
    }

    /// RBAC: deny `verb` on `resource`/`subresource` (e.g. `("create", "pods", "eviction")`);
    /// `"*"` denies every verb.
    pub fn deny(mut self, verb: &str, resource: &str, subresource: &str) -> Self {
        self.deny.push(deny_key(verb, resource, subresource));
        self
    }

    /// Adds a taint to the scenario node (e.g. one the handler must not wipe).
    pub fn node_taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let mut t = json!({"key": key, "effect": effect});
        if !value.is_empty() {
            t["value"] = json!(value);
        }
        self.node_taints.push(t);
        self
    }

    /// Adds a label to the scenario node.
    pub fn node_label(mut self, k: &str, v: &str) -> Self {
        self.node_labels.push((k.to_string(), v.to_string()));
        self
    }

    /// Live observer for every request served (the CLI uses it to print one line per request).
    pub fn observer(mut self, f: Observer) -> Self {
        self.observer = Some(f);
        self
    }
}

fn deny_key(verb: &str, resource: &str, subresource: &str) -> (String, String) {
    let r = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    (verb.to_string(), r)
}

/// A running simulator. Dropping it stops all three servers and removes its temp dir.
pub struct Sim {
    shared: Arc<Shared>,
    api_server: Option<Server>,
    imds_server: Option<Server>,
    slack_server: Option<Server>,
    sa_dir: PathBuf,
    remove_sa_dir: bool,
    node_name: String,
    cluster: String,
    sa_namespace: String,
    handler_pod: Option<String>,
    start: Instant,
    start_time: SystemTime,
    meta: metadata::Fakes,
    // Webhook-side additions (see `webhook`, `proxy`).
    webhooks: Vec<WebhookSink>,
    proxy: Option<ConnectProxy>,
}

static SA_DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn make_token(sa_ns: &str) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = util::base64(br#"{"alg":"RS256","kid":"stnh-sim"}"#, true);
    let payload = json!({
        "aud": ["https://kubernetes.default.svc"], "iss": "https://kubernetes.default.svc",
        "iat": now, "nbf": now, "exp": now + 3607, "jti": util::uuid(),
        "sub": format!("system:serviceaccount:{sa_ns}:{SA_NAME}"),
        "kubernetes.io": {"namespace": sa_ns, "serviceaccount": {"name": SA_NAME}}
    });
    let payload = util::base64(payload.to_string().as_bytes(), true);
    let sig: Vec<u8> = (0..52).map(|_| util::rand_u64() as u8).collect();
    // The signature segment is recognizably a canary (nobody verifies it): see [`canary`].
    format!(
        "{header}.{payload}.{}{}",
        canary::TOKEN,
        util::base64(&sig, true)
    )
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

impl Sim {
    /// Starts the three servers on 127.0.0.1 and writes the service-account directory.
    pub fn start(s: Scenario) -> io::Result<Sim> {
        let start = Instant::now();
        let start_time = SystemTime::now();
        let mut store = Store::new(
            StoreConfig {
                main_node: s.node_name.clone(),
                replacement_node: s.replacement_node.clone(),
                replacement_ready_after: s.replacement_ready_after,
                node_controller_delay: s.node_controller_delay,
            },
            (start, start_time),
        );
        store.add_node(
            &s.node_name,
            &s.instance_id,
            "10.0.1.23",
            true,
            &s.node_labels,
            &s.node_taints,
        );
        if s.replacement_node != s.node_name {
            store.add_node(
                &s.replacement_node,
                "i-0bbb222ccc3334445",
                "10.0.2.47",
                false,
                &[],
                &[],
            );
        }
        metadata::dress_nodes(
            &mut store.nodes,
            &s.meta,
            &s.node_name,
            &s.replacement_node,
            &s.node_labels,
        );
        for (ns, name) in &s.daemonsets {
            store.add_daemonset(ns, name);
        }
        if let Some(name) = &s.handler_pod {
            let p = PodSpec::new(&s.sa_namespace, name)
                .daemonset(SA_NAME)
                .labels(&[("app.kubernetes.io/name", SA_NAME)])
                .host_network()
                .grace(30);
            store.add_pod(&p, start);
        }
        for d in &s.deployments {
            store.add_deployment(d, start);
        }
        for p in &s.pods {
            store.add_pod(p, start);
        }
        for p in &s.pdbs {
            store.add_pdb(&p.ns, &p.name, &p.labels, p.min.clone(), p.max.clone());
        }
        for (ns, name) in &s.processing_pdbs {
            if let Some(e) = store.pdbs.get_mut(&format!("{ns}/{name}")) {
                e.processing = true;
            }
        }
        store.reconcile(start);

        let mut imds = ImdsState::new(
            s.imds_mode,
            Identity {
                instance_id: s.instance_id.clone(),
                instance_type: "m5.large".to_string(),
                zone: "us-east-1a".to_string(),
                region: "us-east-1".to_string(),
                local_hostname: "ip-10-0-1-23.ec2.internal".to_string(),
                local_ipv4: "10.0.1.23".to_string(),
            },
        );
        imds.items.extend(s.imds_items.iter().cloned());
        let meta = metadata::Fakes::start(
            &s.meta,
            &s.node_name,
            (start, start_time),
            s.observer.clone(),
            &mut imds,
        )?;
        if let Some((after, action, deadline)) = &s.notice {
            // Set now, visible later (so clear_notice before then cancels it); its time is
            // on the metadata clock.
            imds.notice = Some(Notice {
                appear_at: start + *after,
                action: action.clone(),
                deadline: imds.clock.service_time(start + *after) + *deadline,
            });
        }

        let token = make_token(&s.sa_namespace);
        let (sa_dir, remove_sa_dir) = match &s.sa_dir {
            Some(d) => (d.clone(), false),
            None => {
                let n = SA_DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
                let d = std::env::temp_dir().join(format!(
                    "stnh-sim-{}-{n}-{}",
                    std::process::id(),
                    util::rand_string(6, b"abcdefghijklmnopqrstuvwxyz0123456789")
                ));
                (d, true)
            }
        };
        std::fs::create_dir_all(&sa_dir)?;
        write_atomic(&sa_dir.join("token"), token.as_bytes())?;
        write_atomic(&sa_dir.join("ca.crt"), pki::CA_CRT.as_bytes())?;
        write_atomic(&sa_dir.join("namespace"), s.sa_namespace.as_bytes())?;

        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            api: Mutex::new(ApiControl {
                token,
                latency: s.latency,
                deny: s.deny.clone(),
                ..ApiControl::default()
            }),
            seat_free: std::sync::Arc::new(std::sync::Condvar::new()),
            imds: Mutex::new(imds),
            slack: Mutex::new(SlackState {
                mode: s.slack_mode.clone(),
                log: Vec::new(),
            }),
            versions: Versions {
                eviction: s.eviction_version.clone(),
                events_v1: s.events_v1,
            },
            user: format!("system:serviceaccount:{}:{SA_NAME}", s.sa_namespace),
            observer: s.observer.clone(),
        });

        let tls = pki::server_config(s.server_cert)?;
        let sh = shared.clone();
        let api_server = Server::start(
            "api",
            Arc::new(move |req, ctx| api::handle(&sh, req, ctx)),
            Some(tls),
        )?;
        let sh = shared.clone();
        let imds_server = Server::start(
            "imds",
            Arc::new(move |req, ctx| {
                let (resp, entry) = {
                    let mut st = lock(&sh.imds);
                    let (resp, entry) = imds::handle(&mut st, req, ctx);
                    st.log.push(entry.clone());
                    (resp, entry)
                };
                sh.notify(SimEvent::Imds(&entry));
                resp
            }),
            None,
        )?;
        let sh = shared.clone();
        let slack_server = Server::start(
            "slack",
            Arc::new(move |req, _ctx| {
                let (resp, msg) = {
                    let mut st = lock(&sh.slack);
                    let (resp, msg) = slack::handle(&mut st, req);
                    if let Some(m) = &msg {
                        st.log.push(m.clone());
                    }
                    (resp, msg)
                };
                if let Some(m) = &msg {
                    sh.notify(SimEvent::Slack(m));
                }
                resp
            }),
            None,
        )?;
        let sink_observer: Option<webhook::SinkObserver> = s.observer.clone().map(|o| {
            let f: webhook::SinkObserver = Arc::new(move |k, r| o(&SimEvent::Webhook(k, r)));
            f
        });
        let mut webhooks = Vec::new();
        for (kind, tls, mode) in &s.webhook_sinks {
            webhooks.push(WebhookSink::start_observed(
                *kind,
                *tls,
                mode.clone(),
                sink_observer.clone(),
            )?);
        }
        let proxy = match &s.proxy_auth {
            Some(auth) => Some(ConnectProxy::start(
                auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            )?),
            None => None,
        };
        Ok(Sim {
            shared,
            api_server: Some(api_server),
            imds_server: Some(imds_server),
            slack_server: Some(slack_server),
            sa_dir,
            remove_sa_dir,
            node_name: s.node_name,
            cluster: s.cluster,
            sa_namespace: s.sa_namespace,
            handler_pod: s.handler_pod,
            start,
            start_time,
            meta,
            webhooks,
            proxy,
        })
    }

    fn port(server: &Option<Server>) -> u16 {
        server.as_ref().map(|s| s.addr().port()).unwrap_or(0)
    }

    /// `http://127.0.0.1:PORT` of the fake IMDS.
    pub fn imds_url(&self) -> String {
        format!("http://127.0.0.1:{}", Self::port(&self.imds_server))
    }

    /// `127.0.0.1` (for `KUBERNETES_SERVICE_HOST`).
    pub fn api_host(&self) -> String {
        "127.0.0.1".to_string()
    }

    /// The API server port (for `KUBERNETES_SERVICE_PORT`).
    pub fn api_port(&self) -> u16 {
        Self::port(&self.api_server)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port())
    }

    /// The service-account directory (`token`, `ca.crt`, `namespace`).
    pub fn sa_dir(&self) -> PathBuf {
        self.sa_dir.clone()
    }

    /// The Slack webhook URL (`http://127.0.0.1:PORT/services/T000/B000/XXXXSECRETXXXX`).
    pub fn slack_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}{}",
            Self::port(&self.slack_server),
            slack::WEBHOOK_PATH
        )
    }

    /// The scenario node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The handler pod's name, if the scenario has one.
    pub fn handler_pod_name(&self) -> Option<&str> {
        self.handler_pod.as_deref()
    }

    /// When the simulator started.
    pub fn started(&self) -> (Instant, SystemTime) {
        (self.start, self.start_time)
    }

    /// Environment for the handler: `IMDS_URL`, `GCP_METADATA_URL`, `AZURE_METADATA_URL`,
    /// `ALIBABA_METADATA_URL` (all four always, so no real metadata service can be reached
    /// whichever cloud the handler detects or probes; see [`Sim::handler_metadata_url`]),
    /// `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, `SERVICE_ACCOUNT_DIR`,
    /// `SLACK_URL`, `NODE_NAME`, `NAMESPACE`, `CLUSTER`, and `POD_NAME` when the scenario has a
    /// handler pod.
    pub fn handler_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [Cloud::Aws, Cloud::Gcp, Cloud::Azure, Cloud::Alibaba]
            .into_iter()
            .map(|c| (c.env_var().to_string(), self.handler_metadata_url(c)))
            .collect();
        env.extend([
            ("KUBERNETES_SERVICE_HOST".to_string(), self.api_host()),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                self.api_port().to_string(),
            ),
            (
                "SERVICE_ACCOUNT_DIR".to_string(),
                self.sa_dir.display().to_string(),
            ),
            ("SLACK_URL".to_string(), self.slack_url()),
            ("NODE_NAME".to_string(), self.node_name.clone()),
            ("NAMESPACE".to_string(), self.sa_namespace.clone()),
            ("CLUSTER".to_string(), self.cluster.clone()),
        ]);
        if let Some(p) = &self.handler_pod {
            env.push(("POD_NAME".to_string(), p.clone()));
        }
        env
    }

    /// Every API request so far.
    pub fn api_requests(&self) -> Vec<ApiRequest> {
        lock(&self.shared.api).log.clone()
    }

    /// Writes the API request log as JSON lines (`seq`, `time`, `method`, `path`, `status`,
    /// `contentType`, `body`, `connection`, `userAgent`; tokens are left out).
    pub fn write_api_log(&self, path: &Path) -> io::Result<()> {
        let mut out = String::new();
        for r in self.api_requests() {
            let line = json!({"seq": r.seq, "time": util::rfc3339_micros(r.time),
                "method": r.method, "path": r.path, "status": r.status,
                "contentType": r.content_type, "body": r.body, "connection": r.connection,
                "userAgent": r.user_agent});
            out.push_str(&line.to_string());
            out.push('\n');
        }
        std::fs::write(path, out)
    }

    /// Every IMDS request so far.
    pub fn imds_requests(&self) -> Vec<ImdsRequest> {
        lock(&self.shared.imds).log.clone()
    }

    /// Every Slack POST so far.
    pub fn slack_messages(&self) -> Vec<SlackMessage> {
        lock(&self.shared.slack).log.clone()
    }

    /// A node object.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.shared.store().nodes.get(name).cloned()
    }

    /// A node's `status.conditions` entry of this `type` (e.g. `Ready`, `TerminationNotice`).
    pub fn node_condition(&self, node: &str, type_: &str) -> Option<Value> {
        self.shared
            .store()
            .nodes
            .get(node)?
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// All current pods (every node), in namespace/name order.
    pub fn pods(&self) -> Vec<Value> {
        self.shared
            .store()
            .pods
            .values()
            .map(|e| e.obj.clone())
            .collect()
    }

    /// One pod.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared.store().get_pod(ns, name).ok()
    }

    /// Pods currently bound to `node`.
    pub fn pods_on(&self, node: &str) -> Vec<Value> {
        self.pods()
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .collect()
    }

    /// How many pods are bound to `node` now. Unlike [`Sim::pods_on`] it clones nothing, so a
    /// benchmark can sample it every few milliseconds without holding up the API server.
    pub fn pod_count_on(&self, node: &str) -> usize {
        self.shared
            .store()
            .pods
            .values()
            .filter(|e| e.obj["spec"]["nodeName"] == node)
            .count()
    }

    /// A PDB with its live status.
    pub fn pdb(&self, ns: &str, name: &str) -> Option<Value> {
        let st = self.shared.store();
        st.pdbs
            .get(&format!("{ns}/{name}"))
            .map(|e| st.pdb_with_status(e))
    }

    /// Events posted so far.
    pub fn events(&self) -> Vec<Value> {
        self.shared.store().events.values().cloned().collect()
    }

    /// The currently valid bearer token.
    pub fn token(&self) -> String {
        lock(&self.shared.api).token.clone()
    }

    /// Writes a new token to `<sa_dir>/token`; the old one stops working at once (401).
    pub fn rotate_token(&self) {
        let token = make_token(&self.sa_namespace);
        let _ = write_atomic(&self.sa_dir.join("token"), token.as_bytes());
        lock(&self.shared.api).token = token;
    }

    /// Makes a notice visible now with this action and `time`.
    pub fn set_notice(&self, action: &str, deadline: SystemTime) {
        lock(&self.shared.imds).notice = Some(Notice {
            appear_at: Instant::now(),
            action: action.to_string(),
            deadline,
        });
    }

    /// The AWS spot notice, if one is set: when it appears and its `time` as served (whole
    /// seconds), as instants of this process (`time` is on the metadata clock, maybe skewed).
    pub fn aws_notice(&self) -> Option<(Instant, Instant)> {
        let st = lock(&self.shared.imds);
        let n = st.notice.as_ref()?;
        let whole = n
            .deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(n.deadline, |d| {
                SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs())
            });
        let left = whole
            .duration_since(st.clock.service_time(n.appear_at))
            .unwrap_or_default();
        Some((n.appear_at, n.appear_at + left))
    }

    /// The picture of the drain so far, from the API request log and the workload log
    /// ([`timeline`]; `timeline::render` makes the SVG).
    pub fn timeline(&self, window: timeline::Window) -> timeline::Drawing {
        timeline::build(
            &self.node_name,
            window,
            &self.api_requests(),
            &self.workload_log(),
            &self.pods(),
        )
    }

    /// Serve `body` at the IMDS path `path` from now on (`None`: 404 again). See
    /// [`Scenario::imds_item`].
    pub fn set_imds_item(&self, path: &str, body: Option<&str>) {
        let mut st = lock(&self.shared.imds);
        match body {
            Some(b) => st.items.insert(path.to_string(), b.as_bytes().to_vec()),
            None => st.items.remove(path),
        };
    }

    /// Removes the notice (the paths go back to 404).
    pub fn clear_notice(&self) {
        lock(&self.shared.imds).notice = None;
    }

    /// Serve exactly these bytes at `spot/instance-action` (200), or stop doing so (`None`).
    pub fn set_notice_body(&self, raw: Option<Vec<u8>>) {
        lock(&self.shared.imds).notice_body = raw;
    }

    /// Make a rebalance recommendation visible now (`Some(noticeTime)`) or remove it.
    pub fn set_rebalance(&self, notice_time: Option<SystemTime>) {
        lock(&self.shared.imds).rebalance = notice_time.map(|t| (Instant::now(), t));
    }

    /// Force an IMDS path (exact, e.g. `/latest/meta-data/spot/instance-action`) to answer
    /// `status`, or undo it with `None`.
    pub fn imds_fail_path(&self, path: &str, status: Option<u16>) {
        let mut st = lock(&self.shared.imds);
        match status {
            Some(s) => {
                st.forced.insert(path.to_string(), s);
            }
            None => {
                st.forced.remove(path);
            }
        }
    }

    /// Switch the IMDS mode at runtime.
    pub fn set_imds_mode(&self, m: ImdsMode) {
        lock(&self.shared.imds).mode = m;
    }

    /// Invalidate every IMDSv2 token issued so far (as if they had expired): the next request
    /// with an old token gets 401 in `Required` mode.
    pub fn revoke_imds_tokens(&self) {
        lock(&self.shared.imds).tokens.clear();
    }

    /// The next `n` API requests matching `method` (`*` = any) whose path+query starts with
    /// `path_prefix` get `status` with `body` (JSON if it starts with `{`, else text/plain; 429
    /// adds `Retry-After: 1`).
    pub fn fail_next(&self, method: &str, path_prefix: &str, n: usize, status: u16, body: &str) {
        self.fault(
            method,
            path_prefix,
            n,
            FaultAction::Status(status, body.to_string()),
        );
    }

    /// The next `n` matching API requests get their connection closed without an answer.
    pub fn drop_next(&self, method: &str, path_prefix: &str, n: usize) {
        self.fault(method, path_prefix, n, FaultAction::Drop);
    }

    /// The next `n` matching API requests never get an answer (bounded at 30 s).
    pub fn hang_next(&self, method: &str, path_prefix: &str, n: usize) {
        self.fault(method, path_prefix, n, FaultAction::Hang);
    }

    /// Adds a scripted fault (see [`FaultAction`]).
    pub fn fault(&self, method: &str, path_prefix: &str, n: usize, action: FaultAction) {
        self.fault_body(method, path_prefix, "", n, action);
    }

    /// [`Sim::fault`] for requests whose body also contains `body` (e.g. only the node PATCH
    /// that sets taints).
    pub fn fault_body(
        &self,
        method: &str,
        path_prefix: &str,
        body: &str,
        n: usize,
        action: FaultAction,
    ) {
        if n == 0 {
            return;
        }
        lock(&self.shared.api).faults.push(Fault {
            method: method.to_string(),
            prefix: path_prefix.to_string(),
            body: body.to_string(),
            remaining: n,
            action,
        });
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.api).faults.clear();
    }

    /// Adds a Ready spot node `name` (EC2 instance `instance_id`, InternalIP `ip`) at runtime,
    /// labelled and dressed like the scenario node; pods go on it with [`PodSpec::node`]. For
    /// scenarios with many nodes, each with its own [`imds::NodeImds`].
    pub fn add_node(&self, name: &str, instance_id: &str, ip: &str) {
        self.shared
            .store()
            .add_node(name, instance_id, ip, true, &[], &[]);
    }

    /// Adds many pods at runtime, reconciling once (faster than [`Sim::add_pod`] in a loop).
    pub fn add_pods(&self, pods: &[PodSpec]) {
        let now = Instant::now();
        let mut st = self.shared.store();
        for p in pods {
            st.add_pod(p, now);
        }
        st.reconcile(now);
    }

    /// APF-like throttling of the API server: at most `max_inflight` requests served at once
    /// (0: no limit); one more gets 429 with `Retry-After: retry_after_s` at once and
    /// kube-apiserver's plain-text body (`Too many requests, please try again later.`), as its
    /// API Priority and Fairness filter does when a priority level has no seat and no room in
    /// its queues. This is the level every request goes to that no FlowSchema of
    /// [`Sim::add_api_priority_level`] selects.
    pub fn set_api_throttle(&self, max_inflight: usize, retry_after_s: u64) {
        let mut c = lock(&self.shared.api);
        c.seats.max_inflight = max_inflight;
        c.seats.retry_after_s = retry_after_s;
    }

    /// Queueing in front of [`Sim::set_api_throttle`]'s seats, as APF's queues: a request that
    /// finds no seat waits (at most `max_wait`) while fewer than `queue_limit` requests wait, and
    /// gets the 429 only when the queue is full or its wait runs out. `(0, _)`: no queue (the
    /// default: rejected at once).
    pub fn set_api_queue(&self, queue_limit: usize, max_wait: Duration) {
        let mut c = lock(&self.shared.api);
        c.seats.queue_limit = queue_limit;
        c.seats.max_wait = max_wait;
    }

    /// A priority level of its own, with the seats, `Retry-After` and queue of
    /// [`Sim::set_api_throttle`] and [`Sim::set_api_queue`], for the requests `schema` (a
    /// FlowSchema object) selects; the authenticated user is the handler's service account
    /// ([`SA_NAME`] in the scenario's namespace). Errors name the field of the schema that is
    /// wrong.
    pub fn add_api_priority_level(
        &self,
        schema: &serde_json::Value,
        max_inflight: usize,
        retry_after_s: u64,
        queue_limit: usize,
        max_wait: Duration,
    ) -> Result<(), String> {
        let schema = flow::FlowSchema::from_json(schema)?;
        lock(&self.shared.api).levels.push(api::Level {
            schema,
            seats: api::Seats {
                max_inflight,
                retry_after_s,
                queue_limit,
                max_wait,
                ..Default::default()
            },
            free: std::sync::Arc::new(std::sync::Condvar::new()),
        });
        Ok(())
    }

    /// What happened at a priority level so far: `None` for the default one, else the
    /// FlowSchema's name (`None` in the answer: no such level).
    pub fn api_seats(&self, schema: Option<&str>) -> Option<api::Seats> {
        let c = lock(&self.shared.api);
        match schema {
            None => Some(c.seats.clone()),
            Some(name) => c
                .levels
                .iter()
                .find(|l| l.schema.name == name)
                .map(|l| l.seats.clone()),
        }
    }

    /// The default level's concurrency so far: (most requests served at once, most requests
    /// that wanted a seat at once (served + queued + the one turned away), requests throttled
    /// with 429).
    pub fn api_concurrency(&self) -> (usize, usize, usize) {
        let c = lock(&self.shared.api);
        (
            c.seats.peak_inflight,
            c.seats.peak_demand,
            c.seats.throttled,
        )
    }

    /// The most requests waiting in the default level's queue at once, and how many were
    /// admitted after waiting there.
    pub fn api_queue_stats(&self) -> (usize, usize) {
        let c = lock(&self.shared.api);
        (c.seats.peak_queued, c.seats.admitted_after_wait)
    }

    /// Starts counting [`Sim::api_concurrency`] and [`Sim::api_seats`] afresh from now (e.g.
    /// after a start-up phase), at every level.
    pub fn reset_api_concurrency(&self) {
        let mut c = lock(&self.shared.api);
        let c = &mut *c;
        for s in std::iter::once(&mut c.seats).chain(c.levels.iter_mut().map(|l| &mut l.seats)) {
            s.peak_inflight = s.inflight;
            s.peak_demand = s.inflight + s.queued;
            s.peak_queued = s.queued;
            s.admitted_after_wait = 0;
            s.admitted = 0;
            s.throttled = 0;
        }
    }

    /// Changes the per-request API latency.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.shared.api).latency = d;
    }

    /// RBAC: deny `verb` on `resource`/`subresource` from now on.
    pub fn deny(&self, verb: &str, resource: &str, subresource: &str) {
        lock(&self.shared.api)
            .deny
            .push(deny_key(verb, resource, subresource));
    }

    /// RBAC: remove every deny rule.
    pub fn allow_all(&self) {
        lock(&self.shared.api).deny.clear();
    }

    /// Sets or clears a PDB's "still being processed" state.
    pub fn set_pdb_processing(&self, ns: &str, name: &str, processing: bool) {
        if let Some(e) = self.shared.store().pdbs.get_mut(&format!("{ns}/{name}")) {
            e.processing = processing;
        }
    }

    /// Sets a pod's Ready condition. Returns false if the pod does not exist.
    pub fn set_pod_ready(&self, ns: &str, name: &str, ready: bool) -> bool {
        self.shared.store().set_pod_ready(ns, name, ready)
    }

    /// The cloud reclaims the VM behind `node` now: every pod bound to it disappears at once
    /// and the controllers replace theirs (see [`store::Store::reclaim_node`]). Returns how many
    /// pods went.
    pub fn reclaim_node(&self, node: &str) -> usize {
        self.shared.store().reclaim_node(node, Instant::now())
    }

    /// Adds a pod at runtime.
    pub fn add_pod(&self, p: PodSpec) {
        let now = Instant::now();
        let mut st = self.shared.store();
        st.add_pod(&p, now);
        st.reconcile(now);
    }

    /// Deletes a DaemonSet object (pods keep their ownerRef).
    pub fn remove_daemonset(&self, ns: &str, name: &str) -> bool {
        self.shared.store().remove_daemonset(ns, name)
    }

    /// Makes every continue token issued so far expire (next use gets 410 Expired).
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Changes the Slack sink's behaviour.
    pub fn set_slack_mode(&self, m: SlackMode) {
        lock(&self.shared.slack).mode = m;
    }

    /// Writes a kubeconfig for real kubectl: server, `certificate-authority` (the SA dir's
    /// ca.crt) and `tokenFile` (so rotations are picked up).
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        let ca = self.sa_dir.join("ca.crt");
        let token = self.sa_dir.join("token");
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stnh-sim\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: stnh-sim\n  user:\n    tokenFile: {}\ncontexts:\n- name: stnh-sim\n  context:\n    cluster: stnh-sim\n    user: stnh-sim\n    namespace: default\ncurrent-context: stnh-sim\n",
            self.api_url(),
            ca.display(),
            token.display()
        );
        std::fs::write(path, cfg)
    }

    /// How many TLS connections the API server accepted so far.
    pub fn tls_connections(&self) -> usize {
        self.api_server.as_ref().map_or(0, Server::connections)
    }

    /// How many connections the IMDS accepted so far.
    pub fn imds_connections(&self) -> usize {
        self.imds_server.as_ref().map_or(0, Server::connections)
    }

    /// Stops all servers now (also done on drop).
    pub fn stop(&mut self) {
        // Dropping each server stops its accept loop and joins its connection threads.
        self.api_server.take();
        self.imds_server.take();
        self.slack_server.take();
        self.meta.stop();
        self.webhooks.clear();
        self.proxy.take();
    }
}

impl Sim {
    /// Where no canary may appear, as `(where, text)`: every Event, every Node (annotations,
    /// labels, conditions), the bodies of the API requests, Slack messages and webhook requests
    /// (not their URLs or headers: that is where those secrets belong).
    pub fn canary_places(&self) -> Vec<(String, String)> {
        let mut out = vec![(
            "the Events".to_string(),
            serde_json::to_string(&self.events()).unwrap_or_default(),
        )];
        for (name, node) in self.shared.store().nodes.iter() {
            out.push((format!("Node {name}"), node.to_string()));
        }
        for r in self.api_requests() {
            out.push((
                format!("the body of API request {} {}", r.method, r.path),
                r.body,
            ));
        }
        for m in self.slack_messages() {
            out.push(("a Slack message body".to_string(), m.body.clone()));
        }
        for w in &self.webhooks {
            for r in w.requests() {
                out.push((format!("a {} webhook body", w.kind().name()), r.body));
            }
        }
        out
    }

    /// The canary audit of what the simulator recorded ([`canary`]): the hits, if any.
    pub fn canary_hits(&self) -> Vec<String> {
        canary::hits(&canary::all(), &self.canary_places())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let hits = self.canary_hits();
            canary::mark("sim");
            assert!(
                hits.is_empty(),
                "secrets audit of the simulator's records:\n{}",
                hits.join("\n")
            );
        }
        self.stop();
        if self.remove_sa_dir {
            let _ = std::fs::remove_dir_all(&self.sa_dir);
        }
    }
}
