//! Black-box tests of the fake kube-apiserver over real TLS connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stnh_sim::testclient::{Client, Response};
use stnh_sim::{PodSpec, Scenario, Sim};

const NODE: &str = "ip-10-0-1-23.ec2.internal";

fn call(sim: &Sim, method: &str, path: &str, ct: Option<&str>, body: &str) -> Response {
    Client::api(sim)
        .unwrap()
        .call(method, path, &sim.token(), ct, body)
        .unwrap()
}

fn get(sim: &Sim, path: &str) -> Response {
    call(sim, "GET", path, None, "")
}

fn evict(sim: &Sim, ns: &str, name: &str) -> Response {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns}});
    call(
        sim,
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
        Some("application/json"),
        &body.to_string(),
    )
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    f()
}

fn web_scenario() -> Scenario {
    Scenario::new(NODE)
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")]),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")]),
        )
        .pod(
            PodSpec::new("shop", "web-3")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")]),
        )
}

#[test]
fn discovery_documents() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let v1 = get(&sim, "/api/v1").json();
    let ev = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .unwrap()
        .clone();
    assert_eq!(
        (
            ev["group"].as_str(),
            ev["version"].as_str(),
            ev["kind"].as_str()
        ),
        (Some("policy"), Some("v1"), Some("Eviction"))
    );
    let apis = get(&sim, "/apis").json();
    let policy = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "policy")
        .unwrap()
        .clone();
    assert_eq!(policy["preferredVersion"]["groupVersion"], "policy/v1");
    assert_eq!(get(&sim, "/apis/policy/v1").status, 200);
    assert_eq!(get(&sim, "/apis/policy/v1beta1").status, 404);
    assert_eq!(get(&sim, "/version").json()["minor"], "32");
    assert_eq!(get(&sim, "/openapi/v2").status, 404);
    // Aggregated discovery requests get the legacy document as plain application/json.
    let r = Client::api(&sim).unwrap().request("GET", "/api", &[
        ("Authorization", &format!("Bearer {}", sim.token())),
        ("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"),
    ], b"").unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["kind"], "APIVersions");

    let old = Sim::start(Scenario::new(NODE).eviction_version("v1beta1")).unwrap();
    let v1 = get(&old, "/api/v1").json();
    assert!(v1.to_string().contains(r#""version":"v1beta1""#));
    assert_eq!(get(&old, "/apis/policy/v1").status, 404);
    assert_eq!(get(&old, "/apis/policy/v1beta1").status, 200);
}

#[test]
fn authentication_and_token_rotation() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let file_token = std::fs::read_to_string(sim.sa_dir().join("token")).unwrap();
    assert_eq!(file_token, sim.token());
    assert_eq!(
        std::fs::read_to_string(sim.sa_dir().join("namespace")).unwrap(),
        "kube-system"
    );
    assert!(std::fs::read_to_string(sim.sa_dir().join("ca.crt"))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    let mut c = Client::api(&sim).unwrap();
    let r = c.call("GET", "/api/v1/nodes/x", "nope", None, "").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    // Anonymous: /version is public, resources are forbidden.
    let r = c.request("GET", "/version", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let r = c.request("GET", "/api/v1/nodes", &[], b"").unwrap();
    assert_eq!(r.status, 403);

    let old = sim.token();
    assert_eq!(
        c.call("GET", &format!("/api/v1/nodes/{NODE}"), &old, None, "")
            .unwrap()
            .status,
        200
    );
    sim.rotate_token();
    assert_eq!(
        c.call("GET", &format!("/api/v1/nodes/{NODE}"), &old, None, "")
            .unwrap()
            .status,
        401
    );
    let new = std::fs::read_to_string(sim.sa_dir().join("token")).unwrap();
    assert_ne!(new, old);
    assert_eq!(
        c.call("GET", &format!("/api/v1/nodes/{NODE}"), &new, None, "")
            .unwrap()
            .status,
        200
    );
    let log = sim.api_requests();
    let tokens: Vec<_> = log
        .iter()
        .rev()
        .take(3)
        .map(|r| r.token.clone().unwrap_or_default())
        .collect();
    assert_eq!(tokens, vec![new.clone(), old.clone(), old]);
}

#[test]
fn rbac_deny_list() {
    let sim = Sim::start(web_scenario().deny("create", "pods", "eviction")).unwrap();
    let r = evict(&sim, "shop", "web-1");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "pods \"web-1\" is forbidden: User \"system:serviceaccount:kube-system:spot-termination-notice-handler\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"shop\"");
    assert_eq!(r.json()["reason"], "Forbidden");
    assert_eq!(
        r.json()["details"],
        json!({"name": "web-1", "kind": "pods"})
    );
    sim.deny("list", "pods", "");
    let r = get(&sim, "/api/v1/pods");
    assert_eq!(r.json()["message"], "pods is forbidden: User \"system:serviceaccount:kube-system:spot-termination-notice-handler\" cannot list resource \"pods\" in API group \"\" at the cluster scope");
    sim.allow_all();
    assert_eq!(evict(&sim, "shop", "web-1").status, 201);
}

#[test]
fn node_patch_flavours() {
    let sim =
        Sim::start(Scenario::new(NODE).node_taint("example.com/dedicated", "batch", "NoSchedule"))
            .unwrap();
    let path = format!("/api/v1/nodes/{NODE}");
    let n = get(&sim, &path).json();
    assert_eq!(n["kind"], "Node");
    assert_eq!(
        n["metadata"]["labels"]["eks.amazonaws.com/capacityType"],
        "SPOT"
    );
    assert_eq!(
        n["spec"]["providerID"],
        "aws:///us-east-1a/i-0abc123def4567890"
    );
    let rv0 = n["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // Plain JSON is not a patch type.
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/json"),
        r#"{"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");

    // Cordon via strategic merge; the node controller then adds its taint with a new rv.
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/strategic-merge-patch+json"),
        r#"{"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(r.status, 200);
    let rv1 = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rv0, rv1);
    assert_eq!(r.json()["spec"]["unschedulable"], true);
    assert!(wait_until(Duration::from_secs(3), || {
        sim.node(NODE).unwrap()["spec"]["taints"]
            .to_string()
            .contains("node.kubernetes.io/unschedulable")
    }));
    let n = get(&sim, &path).json();
    let rv2 = n["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rv1, rv2);
    assert_eq!(n["spec"]["taints"].as_array().unwrap().len(), 2);

    // A stale resourceVersion in a merge patch → 409.
    let stale = json!({"metadata": {"resourceVersion": rv1}, "spec": {"taints": []}});
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/merge-patch+json"),
        &stale.to_string(),
    );
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    assert_eq!(r.json()["message"], format!("Operation cannot be fulfilled on nodes \"{NODE}\": the object has been modified; please apply your changes to the latest version and try again"));

    // JSON patch guarded by a failing test → 422, nothing changes.
    let jp = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv1},
        {"op": "add", "path": "/spec/taints/-", "value": {"key": "example.com/spot-itn", "effect": "NoSchedule"}}]);
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/json-patch+json"),
        &jp.to_string(),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["reason"], "Invalid");
    // With the right rv it applies; ~1 escapes work.
    let jp = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv2},
        {"op": "add", "path": "/spec/taints/-", "value": {"key": "example.com/spot-itn", "value": "x", "effect": "NoSchedule"}},
        {"op": "add", "path": "/metadata/labels/example.com~1spot-action", "value": "drain"}]);
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/json-patch+json"),
        &jp.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["spec"]["taints"].as_array().unwrap().len(), 3);
    assert_eq!(
        r.json()["metadata"]["labels"]["example.com/spot-action"],
        "drain"
    );
    // Duplicate key+effect → 422.
    let jp = json!([{"op": "add", "path": "/spec/taints/-", "value": {"key": "example.com/spot-itn", "effect": "NoSchedule"}}]);
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/json-patch+json"),
        &jp.to_string(),
    );
    assert_eq!(r.status, 422);
    // Strategic merge replaces the whole taint list (no merge key), exactly like a real server.
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/strategic-merge-patch+json"),
        r#"{"spec":{"taints":[{"key":"mine","effect":"NoSchedule"}]}}"#,
    );
    assert_eq!(
        r.json()["spec"]["taints"],
        json!([{"key": "mine", "effect": "NoSchedule"}])
    );
    // Status is ignored on the main resource; a no-op patch keeps the rv.
    let before = sim.node(NODE).unwrap();
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/merge-patch+json"),
        r#"{"status":{"phase":"x"}}"#,
    );
    assert_eq!(
        r.json()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    // Patches that do not leave an object are rejected, not fatal.
    let r = call(
        &sim,
        "PATCH",
        &path,
        Some("application/json-patch+json"),
        r#"[{"op":"replace","path":"","value":[1]}]"#,
    );
    assert_eq!(r.status, 400);
    let r = call(&sim, "PUT", &path, Some("application/json"), "[]");
    assert_eq!(r.status, 400);
    assert_eq!(get(&sim, &path).status, 200);
    // Missing node → 404; apply-patch → 415.
    assert_eq!(
        call(
            &sim,
            "PATCH",
            "/api/v1/nodes/nope",
            Some("application/merge-patch+json"),
            "{}"
        )
        .status,
        404
    );
    assert_eq!(
        call(
            &sim,
            "PATCH",
            &path,
            Some("application/apply-patch+yaml"),
            "{}"
        )
        .status,
        415
    );
}

#[test]
fn pod_lists_selectors_and_paging() {
    let mut s = Scenario::new(NODE);
    for i in 0..7 {
        s = s.pod(PodSpec::new("shop", &format!("p{i}")).replicaset("p-abc"));
    }
    s = s.pod(PodSpec::new("other", "elsewhere").node("node-b"));
    let sim = Sim::start(s).unwrap();
    let all = get(
        &sim,
        &format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}"),
    )
    .json();
    assert_eq!(all["kind"], "PodList");
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    assert!(all["items"][0].get("kind").is_none());
    assert!(all["metadata"].get("continue").is_none());
    // Unencoded selectors are accepted too.
    let raw = get(&sim, "/api/v1/pods?fieldSelector=spec.nodeName=node-b").json();
    assert_eq!(raw["items"].as_array().unwrap().len(), 1);

    // Paging with a selector: continue tokens, no remainingItemCount.
    let mut names = Vec::new();
    let mut cont = String::new();
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}&limit=3");
        if !cont.is_empty() {
            path.push_str(&format!(
                "&continue={}",
                stnh_sim::util::percent_encode(&cont)
            ));
        }
        let page = get(&sim, &path).json();
        pages += 1;
        for it in page["items"].as_array().unwrap() {
            names.push(it["metadata"]["name"].as_str().unwrap().to_string());
        }
        assert!(page["metadata"].get("remainingItemCount").is_none());
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(names, vec!["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    assert_eq!(pages, 3);

    // Without a selector the etcd store reports remainingItemCount.
    let page = get(&sim, "/api/v1/pods?limit=2").json();
    assert_eq!(page["metadata"]["remainingItemCount"], 6);
    let ns_page = get(&sim, "/api/v1/namespaces/shop/pods?limit=5").json();
    assert_eq!(ns_page["items"].as_array().unwrap().len(), 5);
    assert_eq!(ns_page["metadata"]["remainingItemCount"], 2);

    // Bad and expired tokens.
    assert_eq!(
        get(&sim, "/api/v1/pods?limit=2&continue=garbage!").status,
        400
    );
    let tok = page["metadata"]["continue"].as_str().unwrap().to_string();
    sim.compact();
    let r = get(
        &sim,
        &format!(
            "/api/v1/pods?limit=2&continue={}",
            stnh_sim::util::percent_encode(&tok)
        ),
    );
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["reason"], "Expired");

    // Label selectors and unsupported field labels.
    assert_eq!(
        get(&sim, "/api/v1/pods?labelSelector=app%3Dp").json()["items"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        get(&sim, "/api/v1/pods?fieldSelector=metadata.labels%3Dx").status,
        400
    );
}

#[test]
fn chunked_responses_and_requests() {
    let mut s = Scenario::new(NODE);
    for i in 0..5 {
        s = s.pod(PodSpec::new("shop", &format!("big-{i}")));
    }
    let sim = Sim::start(s).unwrap();
    let r = get(&sim, "/api/v1/pods");
    assert!(r.chunked, "a multi-KB list is chunked");
    assert!(r.chunks >= 2, "in several chunks, got {}", r.chunks);
    assert!(r.header("content-length").is_none());
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 5);
    let r = get(&sim, "/version");
    assert!(!r.chunked);
    assert!(r.header("content-length").is_some());

    // A chunked request body is accepted.
    let body = r#"{"spec":{"unschedulable":true}}"#;
    let chunked = format!(
        "5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        &body[..5],
        body.len() - 5,
        &body[5..]
    );
    let auth = format!("Bearer {}", sim.token());
    let r = Client::api(&sim)
        .unwrap()
        .request(
            "PATCH",
            &format!("/api/v1/nodes/{NODE}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/merge-patch+json"),
                ("Transfer-Encoding", "chunked"),
            ],
            chunked.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["unschedulable"], true);
    assert_eq!(sim.api_requests().last().unwrap().body, body);
}

#[test]
fn eviction_pdb_math() {
    let slow = |name: &str| {
        PodSpec::new("shop", name)
            .replicaset("web-7d4b9c")
            .labels(&[("app", "web")])
            .shutdown(Duration::from_secs(60))
    };
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(slow("web-1"))
            .pod(slow("web-2"))
            .pod(slow("web-3"))
            .pod(
                PodSpec::new("shop", "web-pending")
                    .replicaset("web-7d4b9c")
                    .labels(&[("app", "web")])
                    .phase("Pending"),
            )
            .pdb("shop", "web-pdb", &[("app", "web")], Some(3), None)
            .replacement_ready_after(Some(Duration::from_millis(300))),
    )
    .unwrap();
    let pdb = sim.pdb("shop", "web-pdb").unwrap();
    assert_eq!(pdb["status"]["currentHealthy"], 3);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    let r = evict(&sim, "shop", "web-1");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(
        r.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"Cannot evict pod as it would violate the pod's disruption budget.",
        "reason":"TooManyRequests",
        "details":{"causes":[{"reason":"DisruptionBudget",
          "message":"The disruption budget web-pdb needs 3 healthy pods and has 3 currently"}]},
        "code":429})
    );
    // Pending pods are evictable whatever the PDB.
    let r = evict(&sim, "shop", "web-pending");
    assert_eq!(r.status, 201);
    assert_eq!(
        r.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201})
    );
    // Its replacement becomes Ready → 4 healthy → one eviction allowed.
    assert!(wait_until(Duration::from_secs(5), || evict(
        &sim, "shop", "web-1"
    )
    .status
        == 201));
    let p = sim.pod("shop", "web-1").unwrap();
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert!(p["status"]["conditions"]
        .to_string()
        .contains("EvictionByEvictionAPI"));
    // Evicting a terminating pod again is fine (web-1 takes 60 s to stop).
    assert_eq!(evict(&sim, "shop", "web-1").status, 201);

    // Missing pod, name mismatch.
    assert_eq!(evict(&sim, "shop", "nope").status, 404);
    let bad = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-3"}});
    let r = call(
        &sim,
        "POST",
        "/api/v1/namespaces/shop/pods/web-2/eviction",
        Some("application/json"),
        &bad.to_string(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "name in URL does not match name in Eviction object"
    );
}

#[test]
fn eviction_multiple_pdbs_processing_and_terminal_pods() {
    let sim = Sim::start(
        web_scenario()
            .pod(
                PodSpec::new("shop", "job-1")
                    .job("job")
                    .labels(&[("app", "web")])
                    .phase("Succeeded"),
            )
            .pod(PodSpec::new("batch", "b-1").labels(&[("app", "b")]))
            .pdb("shop", "a", &[("app", "web")], Some(1), None)
            .pdb("shop", "b", &[("app", "web")], None, Some(1))
            .pdb("batch", "b-pdb", &[("app", "b")], None, Some(1))
            .pdb_processing("batch", "b-pdb"),
    )
    .unwrap();
    let r = evict(&sim, "shop", "web-1");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        "code":500})
    );
    // A Succeeded pod goes at once, PDBs notwithstanding.
    assert_eq!(evict(&sim, "shop", "job-1").status, 201);
    assert!(sim.pod("shop", "job-1").is_none());
    // A PDB still being processed → 429 with Retry-After: 10.
    let r = evict(&sim, "batch", "b-1");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(r.json()["details"]["retryAfterSeconds"], 10);
    sim.set_pdb_processing("batch", "b-pdb", false);
    assert_eq!(evict(&sim, "batch", "b-1").status, 201);
}

#[test]
fn max_unavailable_zero_always_blocks() {
    let sim = Sim::start(web_scenario().pdb("shop", "web-pdb", &[("app", "web")], None, Some(0)))
        .unwrap();
    let r = evict(&sim, "shop", "web-2");
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json()["details"]["causes"][0]["message"],
        "The disruption budget web-pdb needs 3 healthy pods and has 3 currently"
    );
}

#[test]
fn old_cluster_rejects_policy_v1_evictions() {
    let sim = Sim::start(web_scenario().eviction_version("v1beta1")).unwrap();
    let r = evict(&sim, "shop", "web-1");
    assert_eq!(r.status, 400);
    let body = json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "shop"}});
    let r = call(
        &sim,
        "POST",
        "/api/v1/namespaces/shop/pods/web-1/eviction",
        Some("application/json"),
        &body.to_string(),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn termination_model_and_controllers() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web-7d4b9c")
                    .shutdown(Duration::from_millis(300)),
            )
            .pod(
                PodSpec::new("db", "db-0")
                    .statefulset("db")
                    .shutdown(Duration::from_millis(300)),
            )
            .pod(
                PodSpec::new("shop", "solo")
                    .shutdown(Duration::from_secs(60))
                    .grace(30),
            )
            .pod(PodSpec::new("kube-system", "fluentd-x").daemonset("fluentd"))
            .replacement_ready_after(Some(Duration::from_millis(1000))),
    )
    .unwrap();
    let evicted = Instant::now();
    assert_eq!(evict(&sim, "shop", "web-1").status, 201);
    let p = sim.pod("shop", "web-1").unwrap();
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    // The ReplicaSet replacement exists at once, on node-b, Pending (for its first second).
    let repl: Vec<Value> = sim.pods_on("node-b");
    assert_eq!(repl.len(), 1);
    assert!(repl[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("web-7d4b9c-"));
    if evicted.elapsed() < Duration::from_millis(900) {
        assert_eq!(repl[0]["status"]["phase"], "Pending");
    }
    assert!(wait_until(Duration::from_secs(3), || sim
        .pod("shop", "web-1")
        .is_none()));
    assert!(wait_until(Duration::from_secs(3), || sim.pods_on("node-b")
        [0]["status"]["phase"]
        == "Running"));

    // StatefulSet: same name, new uid, after the old one is gone.
    let uid = sim.pod("db", "db-0").unwrap()["metadata"]["uid"].clone();
    let r = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/db/pods/db-0",
        Some("application/json"),
        r#"{"apiVersion":"v1","kind":"DeleteOptions","gracePeriodSeconds":10}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["deletionGracePeriodSeconds"], 10);
    assert!(wait_until(Duration::from_secs(3), || {
        sim.pod("db", "db-0")
            .is_some_and(|p| p["metadata"]["uid"] != uid)
    }));
    assert_eq!(sim.pod("db", "db-0").unwrap()["spec"]["nodeName"], "node-b");

    // UID precondition mismatch → 409; a shorter grace shortens; ?gracePeriodSeconds works.
    let r = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/shop/pods/solo",
        Some("application/json"),
        r#"{"preconditions":{"uid":"not-it"}}"#,
    );
    assert_eq!(r.status, 409);
    let r = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/shop/pods/solo",
        None,
        "",
    );
    assert_eq!(r.json()["metadata"]["deletionGracePeriodSeconds"], 30);
    let r = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/shop/pods/solo?gracePeriodSeconds=60",
        None,
        "",
    );
    assert_eq!(
        r.json()["metadata"]["deletionGracePeriodSeconds"],
        30,
        "longer grace does not extend"
    );
    let r = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/shop/pods/solo?gracePeriodSeconds=0",
        None,
        "",
    );
    assert_eq!(r.status, 200);
    assert!(sim.pod("shop", "solo").is_none());
    assert_eq!(
        call(
            &sim,
            "DELETE",
            "/api/v1/namespaces/shop/pods/solo",
            None,
            ""
        )
        .status,
        404
    );

    // DaemonSet pods are not replaced; the DaemonSet object exists for drain's check.
    assert_eq!(
        get(
            &sim,
            "/apis/apps/v1/namespaces/kube-system/daemonsets/fluentd"
        )
        .status,
        200
    );
    assert_eq!(
        get(&sim, "/apis/apps/v1/namespaces/kube-system/daemonsets/nope").json()["message"],
        "daemonsets.apps \"nope\" not found"
    );
    assert_eq!(evict(&sim, "kube-system", "fluentd-x").status, 201);
    assert!(wait_until(Duration::from_secs(3), || sim
        .pod("kube-system", "fluentd-x")
        .is_none()));
    assert!(sim.pods().iter().all(|p| !p["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("fluentd")));
}

fn evict_uid(sim: &Sim, ns: &str, name: &str, uid: &str) -> Response {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": uid}}});
    call(
        sim,
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
        Some("application/json"),
        &body.to_string(),
    )
}

#[test]
fn evictions_check_the_uid_precondition() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("db", "db-0")
                    .statefulset("db")
                    .shutdown(Duration::from_millis(100)),
            )
            .pod(PodSpec::new("shop", "web-1").replicaset("web-7d4b9c")),
    )
    .unwrap();
    let uid = |ns: &str, name: &str| {
        sim.pod(ns, name).unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let web = uid("shop", "web-1");
    let r = evict_uid(&sim, "shop", "web-1", "not-it");
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message": format!("Operation cannot be fulfilled on Pod \"web-1\": Precondition failed: UID in precondition: not-it, UID in object meta: {web}"),
            "reason":"Conflict","details":{"name":"web-1","kind":"pods"},"code":409})
    );
    assert!(
        !sim.pod("shop", "web-1").unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "a failed precondition evicts nothing"
    );
    assert_eq!(evict_uid(&sim, "shop", "web-1", &web).status, 201);
    // A StatefulSet pod comes back under the same name with a new UID: an eviction meant
    // for the old one must not evict it.
    let old = uid("db", "db-0");
    assert_eq!(evict_uid(&sim, "db", "db-0", &old).status, 201);
    assert!(wait_until(Duration::from_secs(10), || sim
        .pod("db", "db-0")
        .is_some_and(|p| p["metadata"]["uid"] != old.as_str())));
    let r = evict_uid(&sim, "db", "db-0", &old);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains(&format!("UID in precondition: {old}, UID in object meta: ")));
    let replacement = sim.pod("db", "db-0").unwrap();
    assert!(!replacement["metadata"]["deletionTimestamp"].is_string());
}

#[test]
fn a_shorter_grace_shortens_a_terminating_pod_and_a_longer_one_is_ignored() {
    // An app that ignores SIGTERM: only the grace period ends it.
    let sim = Sim::start(
        Scenario::new(NODE).pod(
            PodSpec::new("shop", "stuck-0")
                .grace(600)
                .shutdown(Duration::from_secs(3600)),
        ),
    )
    .unwrap();
    let path = "/api/v1/namespaces/shop/pods/stuck-0";
    let del = |grace: i64| {
        call(
            &sim,
            "DELETE",
            path,
            Some("application/json"),
            &format!(
                r#"{{"apiVersion":"v1","kind":"DeleteOptions","gracePeriodSeconds":{grace}}}"#
            ),
        )
    };
    let r = del(600);
    assert_eq!(r.status, 200);
    let meta = &r.json()["metadata"];
    assert_eq!(meta["deletionGracePeriodSeconds"], 600);
    let first = stnh_sim::util::parse_rfc3339(meta["deletionTimestamp"].as_str().unwrap()).unwrap();
    // Longer: ignored, the pod keeps its 600 s.
    let r = del(900);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["deletionGracePeriodSeconds"], 600);
    assert_eq!(
        r.json()["metadata"]["deletionTimestamp"],
        stnh_sim::util::rfc3339(first)
    );
    // Shorter, a while later: deletionTimestamp moves to (first − 600 s + 2 s), not to
    // now + 2 s, and the pod goes within 2 s of the request.
    sleep(Duration::from_millis(1100));
    let r = del(2);
    assert_eq!(r.status, 200);
    let meta = &r.json()["metadata"];
    assert_eq!(meta["deletionGracePeriodSeconds"], 2);
    assert_eq!(
        meta["deletionTimestamp"],
        stnh_sim::util::rfc3339(first - Duration::from_secs(598))
    );
    let asked = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || sim
        .pod("shop", "stuck-0")
        .is_none()));
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "it is given its (new) grace, not killed at once"
    );
}

#[test]
fn faults_keepalive_and_log() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let token = sim.token();
    let mut c = Client::api(&sim).unwrap();
    for _ in 0..3 {
        assert_eq!(
            c.call("GET", "/api/v1/nodes", &token, None, "")
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(sim.tls_connections(), 1, "keep-alive reuses the connection");
    sim.fail_next(
        "GET",
        "/api/v1/nodes",
        2,
        429,
        "Too many requests, please try again later.",
    );
    let r = c.call("GET", "/api/v1/nodes", &token, None, "").unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.text(), "Too many requests, please try again later.");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(
        c.call("GET", "/api/v1/nodes", &token, None, "")
            .unwrap()
            .status,
        429
    );
    assert_eq!(
        c.call("GET", "/api/v1/nodes", &token, None, "")
            .unwrap()
            .status,
        200
    );
    sim.fail_next(
        "*",
        "/api/v1/nodes/",
        1,
        503,
        r#"{"kind":"Status","code":503}"#,
    );
    let r = c
        .call("GET", &format!("/api/v1/nodes/{NODE}"), &token, None, "")
        .unwrap();
    assert_eq!(
        (r.status, r.header("content-type")),
        (503, Some("application/json"))
    );

    sim.drop_next("GET", "/version", 1);
    assert!(c.call("GET", "/version", &token, None, "").is_err());
    let mut c = Client::api(&sim).unwrap();
    assert_eq!(
        c.call("GET", "/version", &token, None, "").unwrap().status,
        200
    );

    // Connection: close is honoured.
    let r = c
        .request("GET", "/version", &[("Connection", "close")], b"")
        .unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.request("GET", "/version", &[], b"").is_err());

    let log = sim.api_requests();
    let last = log.iter().rev().find(|r| r.status == 503).unwrap();
    assert_eq!(last.method, "GET");
    assert_eq!(last.token.as_deref(), Some(token.as_str()));
    assert!(
        log.iter().any(|r| r.status == 0),
        "the dropped request is logged with status 0"
    );
    assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn latency_is_applied() {
    let sim = Sim::start(Scenario::new(NODE).latency(Duration::from_millis(150))).unwrap();
    let mut c = Client::api(&sim).unwrap();
    c.call("GET", "/version", &sim.token(), None, "").unwrap();
    let t = Instant::now();
    c.call("GET", "/version", &sim.token(), None, "").unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[test]
fn certificates() {
    let sim = Sim::start(Scenario::new(NODE).dns_only_cert()).unwrap();
    let addr = format!("127.0.0.1:{}", sim.api_port());
    let by_ip = Client::tls(&addr, "127.0.0.1", stnh_sim::pki::CA_CRT)
        .unwrap()
        .request("GET", "/version", &[], b"");
    assert!(by_ip.is_err(), "no IP SAN: must be rejected");
    let by_name = Client::tls(&addr, "localhost", stnh_sim::pki::CA_CRT)
        .unwrap()
        .request("GET", "/version", &[], b"");
    assert_eq!(by_name.unwrap().status, 200);
    let normal = Sim::start(Scenario::new(NODE)).unwrap();
    let addr = format!("127.0.0.1:{}", normal.api_port());
    let wrong_ca = Client::tls(&addr, "127.0.0.1", stnh_sim::pki::OTHER_CA_CRT)
        .unwrap()
        .request("GET", "/version", &[], b"");
    assert!(wrong_ca.is_err());
}

#[test]
fn events_and_misc_routes() {
    let sim = Sim::start(Scenario::new(NODE).handler_pod()).unwrap();
    let ev = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{NODE}.17c2f1a9b3d4e5f6"), "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": NODE},
        "reason": "SpotInterruption", "message": "x", "type": "Warning", "count": 1});
    let r = call(
        &sim,
        "POST",
        "/api/v1/namespaces/default/events",
        Some("application/json"),
        &ev.to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(sim.events().len(), 1);
    let r = call(
        &sim,
        "POST",
        "/api/v1/namespaces/default/events",
        Some("application/json"),
        &ev.to_string(),
    );
    assert_eq!(r.status, 409);
    let r = call(
        &sim,
        "PATCH",
        &format!("/api/v1/namespaces/default/events/{NODE}.17c2f1a9b3d4e5f6"),
        Some("application/strategic-merge-patch+json"),
        r#"{"count":2}"#,
    );
    assert_eq!(r.json()["count"], 2);
    assert_eq!(
        get(&sim, "/api/v1/namespaces/default/events").json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Unknown resource 404, wrong method 405.
    assert_eq!(get(&sim, "/api/v1/services").status, 404);
    assert_eq!(call(&sim, "PUT", "/api/v1/pods", None, "").status, 405);
    assert_eq!(
        call(
            &sim,
            "PATCH",
            "/api/v1/nodes",
            Some("application/merge-patch+json"),
            "{}"
        )
        .status,
        405
    );
    assert_eq!(
        call(&sim, "PUT", "/api/v1/nodes", Some("application/json"), "{}").status,
        405
    );
    assert_eq!(
        call(
            &sim,
            "POST",
            &format!("/api/v1/nodes/{NODE}"),
            Some("application/json"),
            "{}"
        )
        .status,
        405
    );
    // The handler pod is a DaemonSet pod in kube-system.
    let name = sim.handler_pod_name().unwrap().to_string();
    assert!(name.starts_with("spot-termination-notice-handler-"));
    let p = sim.pod("kube-system", &name).unwrap();
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert!(sim.handler_env().contains(&("POD_NAME".to_string(), name)));
    // Tables for kubectl.
    let r = Client::api(&sim)
        .unwrap()
        .request(
            "GET",
            "/api/v1/nodes",
            &[
                ("Authorization", &format!("Bearer {}", sim.token())),
                (
                    "Accept",
                    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                ),
            ],
            b"",
        )
        .unwrap();
    assert_eq!(r.json()["kind"], "Table");
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 2);
}

#[test]
fn stuck_clients_do_not_wedge_shutdown() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    // A client that connects and sends half a request, and one that never says anything.
    let mut half = TcpStream::connect(("127.0.0.1", sim.api_port())).unwrap();
    half.write_all(b"\x16\x03\x01").unwrap();
    let _silent = TcpStream::connect(("127.0.0.1", sim.api_port())).unwrap();
    let mut imds_half = TcpStream::connect(sim.imds_url().trim_start_matches("http://")).unwrap();
    imds_half
        .write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\n")
        .unwrap();
    sim.hang_next("GET", "/version", 1);
    let port = sim.api_port();
    let token = sim.token();
    let hung = std::thread::spawn(move || {
        let mut c = Client::tls(
            &format!("127.0.0.1:{port}"),
            "127.0.0.1",
            stnh_sim::pki::CA_CRT,
        )
        .unwrap();
        c.call("GET", "/version", &token, None, "").is_err()
    });
    sleep(Duration::from_millis(300));
    let t = Instant::now();
    drop(sim);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(
        hung.join().unwrap(),
        "the hanging request ends when the simulator stops"
    );
    let mut buf = [0u8; 16];
    imds_half
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(matches!(imds_half.read(&mut buf), Ok(0) | Err(_)));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener is closed"
    );
}

#[test]
fn sim_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sim>();
    assert_send_sync::<Scenario>();
}

#[test]
fn event_field_selectors() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    for (name, reason) in [("a", "SpotInterruption"), ("b", "CordonAndDrain")] {
        let ev = json!({"metadata": {"name": name}, "involvedObject": {"kind": "Node", "name": NODE},
            "reason": reason, "message": "m", "type": "Normal"});
        let r = call(
            &sim,
            "POST",
            "/api/v1/namespaces/default/events",
            Some("application/json"),
            &ev.to_string(),
        );
        assert_eq!(r.status, 201);
    }
    let r = get(
        &sim,
        &format!(
            "/api/v1/events?fieldSelector=involvedObject.name%3D{NODE},reason%3DCordonAndDrain"
        ),
    );
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    // An event in a namespace other than its object's is rejected like the real validation does.
    let bad = json!({"metadata": {"name": "c"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "shop"},
        "reason": "x", "message": "m"});
    assert_eq!(
        call(
            &sim,
            "POST",
            "/api/v1/namespaces/default/events",
            Some("application/json"),
            &bad.to_string()
        )
        .status,
        422
    );
}

#[test]
fn unready_pods_and_percentages() {
    let sim = Sim::start(web_scenario().pdb_value(
        "shop",
        "web-pdb",
        &[("app", "web")],
        Some(json!("50%")),
        None,
    ))
    .unwrap();
    let pdb = sim.pdb("shop", "web-pdb").unwrap();
    assert_eq!(
        (
            pdb["status"]["expectedPods"].as_i64(),
            pdb["status"]["desiredHealthy"].as_i64(),
            pdb["status"]["disruptionsAllowed"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert!(sim.set_pod_ready("shop", "web-3", false));
    // Healthy 2 = desired 2: a Ready pod is blocked, the unready one may go (IfHealthyBudget).
    assert_eq!(evict(&sim, "shop", "web-1").status, 429);
    assert_eq!(evict(&sim, "shop", "web-3").status, 201);
    let list = get(&sim, "/apis/policy/v1/namespaces/shop/poddisruptionbudgets").json();
    assert_eq!(list["kind"], "PodDisruptionBudgetList");
    assert_eq!(list["items"][0]["status"]["currentHealthy"], 2);
}

#[test]
fn pod_count_on_matches_pods_on() {
    let sim = Sim::start(
        web_scenario().pod(
            PodSpec::new("shop", "elsewhere")
                .replicaset("x-5f6")
                .node("node-b"),
        ),
    )
    .unwrap();
    assert_eq!(sim.pod_count_on(NODE), 3);
    assert_eq!(sim.pod_count_on(NODE), sim.pods_on(NODE).len());
    assert_eq!(sim.pod_count_on("node-b"), 1);
    assert_eq!(evict(&sim, "shop", "web-1").status, 201);
    // web-1 (shutdown 1 s) goes; its replacement lands on node-b.
    assert!(wait_until(Duration::from_secs(5), || sim
        .pod_count_on(NODE)
        == 2));
    assert_eq!(sim.pod_count_on(NODE), sim.pods_on(NODE).len());
    assert_eq!(sim.pod_count_on("node-b"), 2);
}

#[test]
fn apf_like_throttling_answers_429_with_retry_after_beyond_the_seats() {
    let sim = Sim::start(Scenario::new(NODE).latency(Duration::from_secs(1))).unwrap();
    sim.set_api_throttle(2, 3);
    let token = sim.token();
    // Six requests at once on six connections: two get a seat (served after the latency), the
    // others are turned away without waiting. Connect (TLS) first, so they arrive together.
    let clients: Vec<Client> = (0..6).map(|_| Client::api(&sim).unwrap()).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let token = token.clone();
            std::thread::spawn(move || {
                c.call("GET", &format!("/api/v1/nodes/{NODE}"), &token, None, "")
                    .unwrap()
            })
        })
        .collect();
    let answers: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let throttled: Vec<&Response> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + throttled.len(), 6, "only 200 or 429");
    assert!(ok >= 2, "the seats were used: {ok}");
    assert!(
        !throttled.is_empty(),
        "six at once over two seats: someone waits"
    );
    for r in &throttled {
        assert_eq!(r.header("retry-after"), Some("3"));
        // kube-apiserver's filter answers with Go's http.Error: plain text, no Status object.
        assert!(r
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")));
        assert_eq!(r.text(), "Too many requests, please try again later.\n");
    }
    let (peak, demand, n) = sim.api_concurrency();
    assert_eq!(peak, 2, "never more than the seats");
    assert!(demand > 2, "{demand}");
    assert_eq!(n, throttled.len());
    assert_eq!(
        sim.api_requests()
            .iter()
            .filter(|r| r.status == 429)
            .count(),
        throttled.len(),
        "rejections are logged"
    );
    // No limit: everything is served.
    sim.set_api_throttle(0, 1);
    assert_eq!(get(&sim, &format!("/api/v1/nodes/{NODE}")).status, 200);
}

#[test]
fn nodes_added_at_runtime_hold_pods_and_list_by_node() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    sim.add_node("spot-0001", "i-0000000000000001", "10.1.0.1");
    sim.add_pods(&[
        PodSpec::new("n0001", "a")
            .replicaset("web")
            .node("spot-0001"),
        PodSpec::new("n0001", "b")
            .replicaset("web")
            .node("spot-0001"),
    ]);
    let n = get(&sim, "/api/v1/nodes/spot-0001").json();
    assert_eq!(
        n["spec"]["providerID"].as_str(),
        Some("aws:///us-east-1a/i-0000000000000001")
    );
    let l = get(&sim, "/api/v1/pods?fieldSelector=spec.nodeName%3Dspot-0001").json();
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    assert_eq!(sim.pod_count_on("spot-0001"), 2);
    assert_eq!(sim.pod_count_on(NODE), 0);
}

#[test]
fn apf_like_queueing_makes_requests_wait_for_a_seat_before_turning_any_away() {
    let sim = Sim::start(Scenario::new(NODE).latency(Duration::from_secs(1))).unwrap();
    sim.set_api_throttle(1, 1);
    // One seat, two may wait up to 10 s each: of four at once, three are served one after the
    // other, the fourth finds the queue full.
    sim.set_api_queue(2, Duration::from_secs(10));
    let token = sim.token();
    let clients: Vec<Client> = (0..4).map(|_| Client::api(&sim).unwrap()).collect();
    let start = Instant::now();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let token = token.clone();
            std::thread::spawn(move || {
                c.call("GET", &format!("/api/v1/nodes/{NODE}"), &token, None, "")
                    .unwrap()
                    .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "served one at a time"
    );
    let (peak, demand, throttled) = sim.api_concurrency();
    assert_eq!((peak, throttled), (1, 1));
    assert_eq!(demand, 4);
    assert_eq!(sim.api_queue_stats(), (2, 2));
}

#[test]
fn a_flowschema_gives_the_requests_it_selects_a_priority_level_of_their_own() {
    let sim = Sim::start(Scenario::new(NODE).latency(Duration::from_secs(1))).unwrap();
    // The default level: one seat, no queue. The node writes of the handler's service account
    // get a level of their own with one seat as well.
    sim.set_api_throttle(1, 1);
    let schema = serde_json::json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": "node-writes"},
        "spec": {"priorityLevelConfiguration": {"name": "node-high"}, "matchingPrecedence": 800,
            "rules": [{"subjects": [{"kind": "ServiceAccount",
                    "serviceAccount": {"name": stnh_sim::SA_NAME, "namespace": "kube-system"}}],
                "resourceRules": [{"verbs": ["patch"], "apiGroups": [""],
                    "resources": ["nodes"], "clusterScope": true}]}]}});
    sim.add_api_priority_level(&schema, 1, 2, 0, Duration::ZERO)
        .unwrap();
    let bad = serde_json::json!({"kind": "FlowSchema", "metadata": {"name": "x"}, "spec": {}});
    let e = sim
        .add_api_priority_level(&bad, 1, 1, 0, Duration::ZERO)
        .unwrap_err();
    assert!(e.contains("priorityLevelConfiguration"), "{e}");
    let token = sim.token();
    // Two lists and two cordons at once: one of each is served, the other of each is turned
    // away by its own level (Retry-After 1 for the list, 2 for the cordon).
    let calls = [
        ("GET", "/api/v1/pods".to_string(), ""),
        ("GET", "/api/v1/pods".to_string(), ""),
        (
            "PATCH",
            format!("/api/v1/nodes/{NODE}"),
            r#"{"spec":{"unschedulable":true}}"#,
        ),
        (
            "PATCH",
            format!("/api/v1/nodes/{NODE}"),
            r#"{"spec":{"unschedulable":true}}"#,
        ),
    ];
    let clients: Vec<Client> = (0..calls.len())
        .map(|_| Client::api(&sim).unwrap())
        .collect();
    let threads: Vec<_> = clients
        .into_iter()
        .zip(calls)
        .map(|(mut c, (method, path, body))| {
            let token = token.clone();
            std::thread::spawn(move || {
                let ct = if body.is_empty() {
                    None
                } else {
                    Some("application/merge-patch+json")
                };
                let r = c.call(method, &path, &token, ct, body).unwrap();
                (
                    method,
                    r.status,
                    r.header("retry-after").map(str::to_string),
                )
            })
        })
        .collect();
    let mut answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort();
    assert_eq!(
        answers,
        vec![
            ("GET", 200, None),
            ("GET", 429, Some("1".to_string())),
            ("PATCH", 200, None),
            ("PATCH", 429, Some("2".to_string())),
        ]
    );
    let default = sim.api_seats(None).unwrap();
    let own = sim.api_seats(Some("node-writes")).unwrap();
    assert_eq!(
        (default.peak_inflight, default.admitted, default.throttled),
        (1, 1, 1)
    );
    assert_eq!((own.peak_inflight, own.admitted, own.throttled), (1, 1, 1));
    assert!(sim.api_seats(Some("nope")).is_none());
    // A request the schema does not select from the same account stays in the default level.
    let r = get(&sim, &format!("/api/v1/nodes/{NODE}"));
    assert_eq!(r.status, 200);
    assert_eq!(sim.api_seats(None).unwrap().admitted, 2);
    assert_eq!(sim.api_seats(Some("node-writes")).unwrap().admitted, 1);
}
