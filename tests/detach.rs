//! `DETACH_ASG` with the real binary: the simulator as the node's metadata service and
//! Kubernetes API, moto (`tests/aws/moto_helper.py`) as EC2 Auto Scaling, IAM and STS on
//! 127.0.0.1, with moto's IAM access control on, so every call must carry a valid SigV4
//! signature of a known key whose policy allows the action (moto checks it with botocore).
//!
//! Proves: the instance leaves its group with the desired capacity unchanged (and the group
//! launches a replacement), from the instance tag or DescribeAutoScalingInstances, with each
//! credential source (environment, instance profile through IMDSv2, web identity through STS,
//! Pod Identity); once per notice across restarts; a denied or refused call is logged, told and
//! leaves the drain alone; an instance in no group is logged once; a rebalance detaches only
//! when asked; no secret reaches the log.

mod awstools;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use awstools::Moto;
use serde_json::{json, Value};
use spot_termination_notice_handler::detach::GROUP_TAG_PATH;
use stnh_sim::{PodSpec, Scenario, Sim};
use support::*;

// moto answers slowly on a loaded machine; the notices in these tests give 90 s too.
const LONG: Duration = Duration::from_secs(90);
const DETACHED: &str = "detached this instance from its auto scaling group";
const DETACHING: &str = "detached this instance";
const FAILED: &str = "could not detach this instance from its auto scaling group";
const READY: &str = "detach from the auto scaling group is on";
const BOTH: [&str; 2] = [
    "autoscaling:DetachInstances",
    "autoscaling:DescribeAutoScalingInstances",
];

fn moto(test: &str) -> Option<&'static Moto> {
    awstools::available(test).then(Moto::shared)
}

/// A node with two quick pods and a spot notice half a second after start.
fn node(instance: &str) -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .instance_id(instance)
        .handler_pod()
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .shutdown(quick),
        )
}

fn spot(s: Scenario) -> Scenario {
    s.notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(90),
    )
}

fn group(m: &Moto, name: &str) -> String {
    let g = m.cmd(json!({"op": "group", "name": name}));
    assert_eq!(g["desired"], 1);
    g["instance"].as_str().unwrap().to_string()
}

fn user(m: &Moto, name: &str, actions: &[&str]) -> (String, String) {
    let u = m.cmd(json!({"op": "user", "name": name, "actions": actions}));
    (
        u["key"].as_str().unwrap().to_string(),
        u["secret"].as_str().unwrap().to_string(),
    )
}

/// Temporary credentials of a role allowed `actions`: (key, secret, session token).
fn temporary(m: &Moto, name: &str, actions: &[&str]) -> (String, String, String) {
    let c = m.cmd(json!({"op": "assume", "name": name, "actions": actions}));
    let s = |k: &str| c[k].as_str().unwrap().to_string();
    (s("key"), s("secret"), s("token"))
}

fn state(m: &Moto, group: &str, instance: &str) -> Value {
    m.cmd(json!({"op": "state", "group": group, "instance": instance}))
}

/// The instance left the group, whose desired capacity stayed 1 and which launched another.
fn assert_detached(m: &Moto, group: &str, instance: &str) {
    let st = state(m, group, instance);
    assert_eq!(st["in_group"], false, "{st}");
    assert_eq!(st["groups_of_instance"], json!([]), "{st}");
    assert_eq!(st["desired"], 1, "desired capacity unchanged: {st}");
    let others = st["instances"].as_array().unwrap();
    assert_eq!(others.len(), 1, "a replacement was launched: {st}");
    assert_ne!(others[0], instance, "{st}");
}

fn assert_still_in(m: &Moto, group: &str, instance: &str) {
    let st = state(m, group, instance);
    assert_eq!(st["in_group"], true, "{st}");
    assert_eq!(st["instances"], json!([instance]), "{st}");
    assert_eq!(st["desired"], 1, "{st}");
}

fn assert_no_secret(h: &Handler, secrets: &[&str]) {
    let log = h.dump();
    for s in secrets {
        assert!(!log.contains(s), "a secret reached the log:\n{log}");
    }
}

fn ledger(sim: &Sim) -> Vec<Value> {
    sim.node(NODE)
        .and_then(|n| annotation(&n, "notices"))
        .map(|j| serde_json::from_str(&j).unwrap())
        .unwrap_or_default()
}

fn drained(sim: &Sim, h: &Handler) {
    h.wait_for("drain finished", LONG);
    eventually("the pods left the node", LONG, || {
        ["shop/web-1", "shop/web-2"]
            .iter()
            .all(|p| eviction_statuses(sim, p).contains(&201))
    });
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("detach");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    f
}

#[test]
fn spot_notice_detaches_the_instance_keeping_the_desired_capacity_once_across_restarts() {
    let Some(m) = moto("spot_notice_detaches_the_instance") else {
        return;
    };
    let g = "workers-tag";
    let instance = group(m, g);
    let (key, secret) = user(m, "stnh-tag", &BOTH);
    let sim = Sim::start(spot(node(&instance)).imds_item(GROUP_TAG_PATH, g)).unwrap();
    let env = [
        ("DETACH_ASG", "true"),
        ("AWS_ENDPOINT_URL", m.url.as_str()),
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("VERBOSE", "1"),
    ];
    let mut h = Handler::start(&sim, &env);
    let ready = h.wait_for(READY, LONG);
    assert!(
        ready.contains(&format!(
            "group={g} group_from=instance-tag region=us-east-1 credentials=environment"
        )),
        "{ready}"
    );
    let line = h.wait_for(DETACHED, LONG);
    assert!(
        line.contains(&format!("group={g}")) && line.contains("desired_capacity=unchanged"),
        "{line}"
    );
    assert_detached(m, g, &instance);
    drained(&sim, &h);
    // The group came from the tag: no DescribeAutoScalingInstances was needed.
    assert_eq!(sim.imds_count(GROUP_TAG_PATH), 1);
    eventually("the detach is recorded on the node", LONG, || {
        ledger(&sim).iter().any(|e| {
            e["kind"] == "spot-interruption"
                && e["sent"]
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .any(|s| s == "detached")
        })
    });
    assert_no_secret(&h, &[&secret]);
    h.kill();

    // Restarted: the notice is still there, its detach is recorded: no second one.
    let h = Handler::start(&sim, &env);
    h.wait_for("node carries our record of a notice", LONG);
    h.wait_for(READY, LONG);
    let polls = sim.imds_count("/latest/meta-data/spot/instance-action");
    eventually("five more polls, each a step of the loop", LONG, || {
        sim.imds_count("/latest/meta-data/spot/instance-action") >= polls + 5
    });
    assert_eq!(h.count(DETACHING), 0, "{}", h.dump());
    record_requests("detach_spot_tag", &sim);
}

#[test]
fn without_instance_tags_the_group_comes_from_describe_and_keys_from_the_instance_profile() {
    let Some(m) = moto("without_instance_tags_the_group_comes_from_describe") else {
        return;
    };
    let g = "workers-describe";
    let instance = group(m, g);
    let (key, secret, token) = temporary(m, "stnh-profile", &BOTH);
    let token = token.as_str();
    let expires = spot_termination_notice_handler::time::format_rfc3339(
        SystemTime::now() + Duration::from_secs(6 * 3600),
    );
    let doc = json!({"Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
        "AccessKeyId": key, "SecretAccessKey": secret, "Token": token, "Expiration": expires});
    let sim = Sim::start(
        spot(node(&instance))
            .imds_mode(stnh_sim::ImdsMode::Required)
            .imds_item(
                "/latest/meta-data/iam/security-credentials/stnh-node-role",
                &doc.to_string(),
            ),
    )
    .unwrap();
    let h = Handler::start(
        &sim,
        &[("DETACH_ASG", "true"), ("AWS_ENDPOINT_URL", m.url.as_str())],
    );
    let ready = h.wait_for(READY, LONG);
    assert!(
        ready.contains(&format!(
            "group={g} group_from=DescribeAutoScalingInstances region=us-east-1 credentials=instance-profile"
        )),
        "{ready}"
    );
    h.wait_for(DETACHED, LONG);
    assert_detached(m, g, &instance);
    drained(&sim, &h);
    // IMDSv2 (the mode requires it): the tag (404: tags not exposed), the region, the role
    // and its credentials all went with a valid token.
    for p in [
        GROUP_TAG_PATH,
        "/latest/meta-data/placement/region",
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials/stnh-node-role",
    ] {
        let reqs: Vec<_> = sim
            .imds_requests()
            .into_iter()
            .filter(|r| r.path == p)
            .collect();
        assert!(
            !reqs.is_empty() && reqs.iter().all(|r| r.token_valid),
            "{p}: {reqs:?}"
        );
    }
    assert_eq!(
        sim.imds_requests()
            .iter()
            .find(|r| r.path == GROUP_TAG_PATH)
            .unwrap()
            .status,
        404
    );
    assert_no_secret(&h, &[&secret, token]);
    record_requests("detach_describe_profile", &sim);
}

#[test]
fn web_identity_credentials_come_from_sts() {
    let Some(m) = moto("web_identity_credentials_come_from_sts") else {
        return;
    };
    let g = "workers-irsa";
    let instance = group(m, g);
    let arn = m.cmd(json!({"op": "role", "name": "stnh-irsa", "actions": BOTH}))["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06c3RuaCJ9.c2lnbmF0dXJlLW9mLXRoZS13ZWItaWRlbnRpdHk";
    let file = temp_file("irsa-token", &format!("{jwt}\n"));
    let sim = Sim::start(spot(node(&instance)).imds_item(GROUP_TAG_PATH, g)).unwrap();
    let h = Handler::start(
        &sim,
        &[
            ("DETACH_ASG", "true"),
            ("AWS_ENDPOINT_URL", m.url.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ROLE_ARN", arn.as_str()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
            ("VERBOSE", "1"),
        ],
    );
    h.wait_for(DETACHED, LONG);
    assert_detached(m, g, &instance);
    // moto knows the role's keys only from its AssumeRoleWithWebIdentity answer.
    assert!(h.dump().contains("credentials=web-identity"));
    assert_no_secret(&h, &[jwt]);
    drained(&sim, &h);
    record_requests("detach_web_identity", &sim);
}

/// A Pod Identity agent: answers every GET with `doc` and records the Authorization headers.
fn agent(doc: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/credentials", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(20) {
            let Ok(mut s) = s else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let mut auth = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.strip_prefix("Authorization: ") {
                    auth = v.trim().to_string();
                }
                line.clear();
            }
            rec.lock().unwrap().push(auth);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
                doc.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn pod_identity_credentials_come_from_the_agent_with_the_token_file() {
    let Some(m) = moto("pod_identity_credentials_come_from_the_agent") else {
        return;
    };
    let g = "workers-pod-identity";
    let instance = group(m, g);
    let (key, secret, session) = temporary(m, "stnh-pod-identity", &BOTH);
    let doc = json!({"AccessKeyId": key, "SecretAccessKey": secret, "Token": session,
        "AccountId": "123456789012", "Expiration": "2099-01-01T00:00:00Z"});
    let (url, seen) = agent(doc.to_string());
    let token = "eyJhbGciOiJSUzI1NiJ9.pod-identity-agent-token.c2ln";
    let file = temp_file("pod-identity-token", token);
    let sim = Sim::start(spot(node(&instance))).unwrap();
    let h = Handler::start(
        &sim,
        &[
            ("DETACH_ASG", "true"),
            ("AWS_ENDPOINT_URL_AUTO_SCALING", m.url.as_str()),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                file.to_str().unwrap(),
            ),
        ],
    );
    let ready = h.wait_for(READY, LONG);
    assert!(ready.contains("credentials=pod-identity"), "{ready}");
    h.wait_for(DETACHED, LONG);
    assert_detached(m, g, &instance);
    let auth = seen.lock().unwrap().clone();
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a == token),
        "{auth:?}"
    );
    assert_no_secret(&h, &[&secret, token, &session]);
    drained(&sim, &h);
    record_requests("detach_pod_identity", &sim);
}

#[test]
fn a_denied_detach_is_logged_told_and_the_drain_goes_on() {
    let Some(m) = moto("a_denied_detach_is_logged_told") else {
        return;
    };
    let g = "workers-denied";
    let instance = group(m, g);
    let (key, secret) = user(
        m,
        "stnh-denied",
        &["autoscaling:DescribeAutoScalingInstances"],
    );
    let sim = Sim::start(spot(node(&instance))).unwrap();
    let h = Handler::start(
        &sim,
        &[
            ("DETACH_ASG", "true"),
            ("AWS_ENDPOINT_URL", m.url.as_str()),
            ("AWS_ACCESS_KEY_ID", key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ],
    );
    let line = h.wait_for(FAILED, LONG);
    assert!(line.contains("level=error"), "{line}");
    assert!(line.contains(&format!("group={g}")), "{line}");
    assert!(line.contains("AccessDenied"), "{line}");
    assert!(line.contains("autoscaling:DetachInstances"), "{line}");
    assert!(
        line.contains("attempts=1") && line.contains("detach_failures_total=1"),
        "{line}"
    );
    drained(&sim, &h);
    assert_still_in(m, g, &instance);
    eventually("people are told", LONG, || {
        sim.slack_messages().iter().any(|s| {
            s.text()
                .unwrap_or_default()
                .contains("could not be detached from its Auto Scaling group")
        })
    });
    // The cordon came first and every pod was evicted as without the detach.
    let node = sim.node(NODE).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(h.count(FAILED), 1);
    assert_no_secret(&h, &[&secret]);
    record_requests("detach_denied", &sim);
}

#[test]
fn a_wrong_secret_is_refused_by_aws_and_only_logged() {
    let Some(m) = moto("a_wrong_secret_is_refused_by_aws") else {
        return;
    };
    let g = "workers-bad-signature";
    let instance = group(m, g);
    let (key, secret) = user(m, "stnh-bad-signature", &BOTH);
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    let sim = Sim::start(spot(node(&instance)).imds_item(GROUP_TAG_PATH, g)).unwrap();
    let h = Handler::start(
        &sim,
        &[
            ("DETACH_ASG", "true"),
            ("AWS_ENDPOINT_URL", m.url.as_str()),
            ("AWS_ACCESS_KEY_ID", key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", wrong.as_str()),
        ],
    );
    let line = h.wait_for(FAILED, LONG);
    assert!(line.contains("SignatureDoesNotMatch"), "{line}");
    drained(&sim, &h);
    assert_still_in(m, g, &instance);
    assert_no_secret(&h, &[&wrong]);
}

#[test]
fn an_instance_in_no_group_is_logged_once_and_left_alone() {
    let Some(m) = moto("an_instance_in_no_group_is_logged_once") else {
        return;
    };
    let instance = m.cmd(json!({"op": "instance"}))["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let (key, secret) = user(m, "stnh-no-group", &BOTH);
    let sim = Sim::start(spot(node(&instance))).unwrap();
    let h = Handler::start(
        &sim,
        &[
            ("DETACH_ASG", "true"),
            ("AWS_ENDPOINT_URL", m.url.as_str()),
            ("AWS_ACCESS_KEY_ID", key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ],
    );
    let line = h.wait_for("this instance is in no auto scaling group", LONG);
    assert!(line.contains(&format!("instance={instance}")), "{line}");
    drained(&sim, &h);
    eventually("the notice's detach is recorded as done", LONG, || {
        ledger(&sim)
            .iter()
            .any(|e| e["sent"].as_str().unwrap_or("").contains("detached"))
    });
    assert_eq!(h.count("in no auto scaling group"), 1, "{}", h.dump());
    assert_eq!(h.count(DETACHING) + h.count(FAILED), 0, "{}", h.dump());
}

#[test]
fn a_rebalance_detaches_only_when_detach_asg_on_says_so() {
    let Some(m) = moto("a_rebalance_detaches_only_when_asked") else {
        return;
    };
    let g = "workers-rebalance";
    let instance = group(m, g);
    let (key, secret) = user(m, "stnh-rebalance", &BOTH);
    let sim = Sim::start(
        node(&instance)
            .imds_item(GROUP_TAG_PATH, g)
            .rebalance_after(Duration::from_millis(300)),
    )
    .unwrap();
    let base = [
        ("DETACH_ASG", "true"),
        ("AWS_ENDPOINT_URL", m.url.as_str()),
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    // The default: a rebalance recommendation cordons, and does not detach.
    let mut h = Handler::start(&sim, &base);
    h.wait_for(READY, LONG);
    eventually("the rebalance cordon", LONG, || {
        sim.node(NODE).unwrap()["spec"]["unschedulable"] == true
    });
    let polls = sim.imds_count("/latest/meta-data/spot/instance-action");
    eventually("five more polls, each a step of the loop", LONG, || {
        sim.imds_count("/latest/meta-data/spot/instance-action") >= polls + 5
    });
    assert_eq!(h.count(DETACHING), 0, "{}", h.dump());
    assert_still_in(m, g, &instance);
    h.kill();
    // Asked for: the same notice, still in force, detaches after the restart.
    let mut env = base.to_vec();
    env.push(("DETACH_ASG_ON", "rebalance-recommendation"));
    let h = Handler::start(&sim, &env);
    let line = h.wait_for(DETACHED, LONG);
    assert!(line.contains("notice=aws-rebalance/"), "{line}");
    assert_detached(m, g, &instance);
}
