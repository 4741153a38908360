#!/usr/bin/env python3
"""make manifests-check: the plain manifests and the Helm chart, offline.

1. `kubectl apply -f manifests/` reads only Kubernetes objects (no Kustomization, no values file at the top
   level), and the Kustomization lists exactly those files (`kubectl kustomize` output compared too when
   kubectl is installed).
2. The chart, rendered by Helm's own engine (helm-python-sdk), from default values equals the plain
   manifests once Helm's own labels are dropped.
3. A seed-style values file (stable/k8s-spot-termination-handler 1.4.11) and one that flips every switch
   render, and each key lands where it should (env vars, Secret, NOTES.txt warnings).
4. Every rendered object and every plain manifest validates (strict: unknown fields are errors) against the
   Kubernetes JSON schemas of kubernetes-validate for the oldest and newest supported versions.
5. values.schema.json rejects typos and wrong types (negative tests) and accepts the seed's spellings.
6. Every seed key is a chart key; every setting of the README's table is a chart key or a known exception.
7. Metrics and health: METRICS_ADDR, the metrics containerPort and the liveness probe by default; the optional
   PodMonitor / Service + ServiceMonitor select the pods and name the port (the monitoring.coreos.com kinds
   are checked structurally: kubernetes-validate has no schema for CRDs).
8. manifests/flowschema.json: a valid FlowSchema for 1.29 (where its flowcontrol v1 is first served) and the
   newest version (step 4 skips it for versions that do not serve v1), whose subject is the ServiceAccount of
   manifests/ and whose rules select only what the ClusterRole grants on Nodes. The chart renders it by
   default (step 2) and none with flowSchema.create=false; its subject, rules and apiVersion follow the values.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import traceback

import yaml

import shiplib as lib

PASSED: list[str] = []
FAILED: list[str] = []


def ok(cond: bool, what: str, detail: str = "") -> bool:
    if cond:
        PASSED.append(what)
        print(f"ok    {what}")
    else:
        FAILED.append(what)
        print(f"FAIL  {what}" + (f"\n      {detail}" if detail else ""))
    return cond


def dump(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)


def diff(a, b, name_a: str, name_b: str) -> str:
    return "".join(difflib.unified_diff(dump(a).splitlines(True), dump(b).splitlines(True), name_a, name_b))


# --- 1. the directory as kubectl sees it -------------------------------------------------------------------

FLOWCONTROL_V1 = "flowcontrol.apiserver.k8s.io/v1"
FLOWCONTROL_V1_SINCE = "1.29"
EXPECTED_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "FlowSchema"}


def check_plain_layout() -> list[tuple[str, dict]]:
    objects = lib.plain_objects()
    for fname, obj in objects:
        ok(
            "apiVersion" in obj and "kind" in obj and obj.get("kind") != "Kustomization",
            f"manifests/{fname}: {lib.key_of(obj)} is a Kubernetes object kubectl can apply",
        )
    kinds = sorted(o.get("kind", "?") for _, o in objects)
    ok(sorted(EXPECTED_KINDS) == kinds,
       "manifests/: one ServiceAccount, ClusterRole, ClusterRoleBinding, DaemonSet, FlowSchema",
       f"found {kinds}")
    namespaced = [o for _, o in objects if o["kind"] in ("ServiceAccount", "DaemonSet")]
    ok(all(o["metadata"].get("namespace") == lib.NAMESPACE for o in namespaced),
       f"manifests/: namespaced objects are in {lib.NAMESPACE}")
    kust = lib.MANIFESTS / "Kustomization"
    listed = set(yaml.safe_load(kust.read_text()).get("resources", []))
    ok(listed == {p.name for p in lib.kubectl_f_files()},
       "manifests/Kustomization lists exactly the files `kubectl apply -f manifests/` reads",
       f"listed {sorted(listed)}, directory has {[p.name for p in lib.kubectl_f_files()]}")
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(lib.MANIFESTS)], capture_output=True, text=True)
        if ok(out.returncode == 0, "kubectl kustomize manifests/ builds", out.stderr.strip()):
            built = {lib.key_of(o): o for o in lib.load_docs(out.stdout, "kustomize")}
            plain = {lib.key_of(o): o for _, o in objects}
            ok(built == plain, "kubectl kustomize manifests/ = kubectl apply -f manifests/ (same objects)",
               diff(plain, built, "apply -f", "kustomize"))
    else:
        print("skip  kubectl not installed: `kubectl kustomize manifests/` not run")
    return objects


def check_daemonset_defaults(ds: dict, where: str) -> None:
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    checks = {
        "hostNetwork with dnsPolicy ClusterFirstWithHostNet": pod.get("hostNetwork") is True
        and pod.get("dnsPolicy") == "ClusterFirstWithHostNet",
        "downward-API NODE_NAME, POD_NAME, NAMESPACE": [
            (e["name"], e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")) for e in c["env"][:3]
        ] == [("NODE_NAME", "spec.nodeName"), ("POD_NAME", "metadata.name"), ("NAMESPACE", "metadata.namespace")],
        "restricted security context": psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532
        and psc.get("runAsGroup") == 65532 and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        and csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
        and csc.get("capabilities", {}).get("drop") == ["ALL"],
        "priorityClassName system-node-critical": pod.get("priorityClassName") == "system-node-critical",
        "tolerates every taint": pod.get("tolerations") == [{"operator": "Exists"}],
        "small requests and a memory limit": c.get("resources", {}).get("requests", {}).get("memory") is not None
        and c.get("resources", {}).get("limits", {}).get("memory") is not None,
        "terminationGracePeriodSeconds <= 10": 0 < pod.get("terminationGracePeriodSeconds", 30) <= 10,
        "RollingUpdate": ds["spec"].get("updateStrategy", {}).get("type") == "RollingUpdate",
        "METRICS_ADDR :17864 and containerPort metrics 17864": lib.container_env(ds).get("METRICS_ADDR") == ":17864"
        and c.get("ports") == [{"name": "metrics", "containerPort": 17864, "protocol": "TCP"}],
        "liveness probe GET /healthz on the metrics port, restart within 60 s of failures; no readiness probe":
        c.get("livenessProbe", {}).get("httpGet") == {"path": "/healthz", "port": "metrics"}
        and c["livenessProbe"].get("periodSeconds", 10) * c["livenessProbe"].get("failureThreshold", 3) <= 60
        and not any(k in c for k in ("readinessProbe", "startupProbe")),
        "image tag <KUBE_VERSION>-<REVISION>": re.search(r":\d+\.\d+\.\d+-\d+$", c["image"]) is not None,
    }
    for what, cond in checks.items():
        ok(cond, f"{where} DaemonSet: {what}")


# --- 2./3. the chart ---------------------------------------------------------------------------------------


def check_default_render(plain: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    rendered = lib.rendered_objects(lib.render(None))
    got = {lib.key_of(o): lib.normalize(o) for _, o in rendered}
    want = {lib.key_of(o): o for _, o in plain}
    ok(sorted(got) == sorted(want), "chart (default values) renders the objects of manifests/",
       f"chart {sorted(got)}\n      manifests {sorted(want)}")
    for key in sorted(set(got) & set(want)):
        ok(got[key] == want[key], f"chart (default values) {key} = manifests/ (after dropping Helm's labels)",
           diff(want[key], got[key], "manifests/", "chart").replace("\n", "\n      "))
    return rendered


def check_seed_render() -> list[tuple[str, dict]]:
    out = lib.render(lib.values_file("seed.yaml"))
    objs = lib.rendered_objects(out)
    ds = lib.find(objs, "DaemonSet")[0]
    pod = ds["spec"]["template"]["spec"]
    env = lib.container_env(ds)
    secret = lib.find(objs, "Secret")
    full = lib.RELEASE
    expect_env = {
        "POLL_INTERVAL": "5",
        "VERBOSE": "1",
        "GRACE_PERIOD": "120",
        "CLUSTER": "test",
        "LOGSPOUT": "ignore",
        "SLACK_URL": {"secretKeyRef": {"name": f"{full}-slack", "key": "slack-url"}},
    }
    for name, value in expect_env.items():
        ok(env.get(name) == value, f"seed values: {name} = {value!r}", f"got {env.get(name)!r}")
    ok("NOTICE_URL" not in env, "seed values: the seed's default noticeUrl is not passed on (IMDSv2 polling)")
    ok("DETACH_ASG" not in env, "seed values: detachAsg false renders no DETACH_ASG (the binary's default)")
    ok(len(secret) == 1 and secret[0]["metadata"]["name"] == f"{full}-slack", "seed values: slackUrl goes to a Secret")
    ok("hooks.slack.com" not in dump(ds), "seed values: the webhook URL is not in the DaemonSet")
    ok(pod.get("imagePullSecrets") == [{"name": "regcred"}], "seed values: imagePullSecrets")
    ok(pod.get("nodeSelector") == {"node-role.kubernetes.io/spot-worker": "true"}, "seed values: nodeSelector")
    ok("priorityClassName" not in pod, "seed values: priorityClassName \"\" sets none, as in the seed")
    ok("tolerations" not in pod, "seed values: tolerations [] sets none, as in the seed")
    ok(pod.get("hostNetwork") is True, "seed values: hostNetwork")
    ok(pod["containers"][0]["resources"]["limits"]["memory"] == "32Mi", "seed values: resources {} keeps the defaults")
    ok(pod["securityContext"].get("runAsNonRoot") is True, "seed values: podSecurityContext {} keeps the defaults")
    ok(ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
       "seed values: updateStrategy + maxUnavailable")
    ok(pod["containers"][0]["image"].endswith(":1.32.0-1"), "seed values: image.tag")
    # In-place `helm upgrade` of a seed release: the DaemonSet selector is immutable, so nameOverride must
    # give back the seed's selector and object names (the seed's helpers are the standard ones).
    upgrade = dict(lib.values_file("seed.yaml"), nameOverride="k8s-spot-termination-handler")
    up = lib.rendered_objects(lib.render(upgrade, name="spot"))
    up_ds = lib.find(up, "DaemonSet")[0]
    ok(up_ds["metadata"]["name"] == "spot-k8s-spot-termination-handler"
       and up_ds["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "k8s-spot-termination-handler",
                                                       "app.kubernetes.io/instance": "spot"},
       "seed values + nameOverride k8s-spot-termination-handler: the seed release's names and selector (in-place upgrade)")
    n = lib.notes(out)
    ok("noticeUrl is the seed chart's default" in n, "seed values: NOTES.txt explains the dropped noticeUrl")
    ok("detachAsg" not in n, "seed values: no detachAsg warning for detachAsg: false")
    return objs


README_SETTINGS_NOT_IN_CHART = {
    # The kubelet mounts the token where the default points; a chart key would only allow breaking it.
    "SERVICE_ACCOUNT_DIR",
}


def readme_settings() -> list[str]:
    text = (lib.ROOT / "README.md").read_text()
    m = re.search(r"<!-- settings:start -->(.*?)<!-- settings:end -->", text, re.S)
    return re.findall(r"^\|[^|]*\|\s*`([A-Z_]+)`\s*\|", m.group(1), re.M) if m else []


def check_all_switches_render() -> list[tuple[str, dict]]:
    values = lib.values_file("all-switches.yaml")
    out = lib.render(values)
    objs = lib.rendered_objects(out)
    kinds = sorted(o["kind"] for _, o in objs)
    ok(kinds == ["DaemonSet"], "all switches: rbac.create=false, serviceAccount.create=false, flowSchema.create=false: only the DaemonSet",
       f"got {kinds}")
    ds = lib.find(objs, "DaemonSet")[0]
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = lib.container_env(ds)
    expect_env = {
        "POLL_INTERVAL": "500ms", "IMDS_URL": "http://127.0.0.1:1338", "IMDS_TIMEOUT": "5s",
        "NOTICE_URL": "http://127.0.0.1:1338/latest/meta-data/spot/termination-time", "VERBOSE": "true",
        "GRACE_PERIOD": "60", "DRAIN_RESERVE": "30s", "FORCE_DELETE": "false",
        "KUBE_API_URL": "https://kubernetes.default.svc:443",
        "SLACK_URL": {"secretKeyRef": {"name": "slack-webhook", "key": "url"}},
        "SLACK_CHANNEL": "#spot", "CLUSTER": "prod-eu-1", "LOGSPOUT": "ignore", "EXAMPLE_FUTURE_SETTING": "1",
        "METRICS_ADDR": ":9464", "HEALTH_LOOP_TIMEOUT": "2m", "HEALTH_METADATA_TIMEOUT": "1h",
        "WEBHOOK_URL": {"secretKeyRef": {"name": "hooks", "key": "url"}},
        "WEBHOOK_HEADERS": {"secretKeyRef": {"name": "hooks", "key": "headers"}},
        "WEBHOOK_TEMPLATE": {"secretKeyRef": {"name": "hooks", "key": "template"}},
        "WEBHOOK_EVENTS": "notice,back", "WEBHOOK_PROXY": "http://proxy.corp:3128",
        "HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".svc,10.0.0.0/8", "EVENTS": "false",
        "NODE_CONDITION": "false", "LOG_FORMAT": "json", "LOG_LEVEL": "warn",
        "EVICTION_ORDER": "parallel", "CRITICAL_PRIORITY": "1000000", "POD_SELECTOR": "app notin (batch),!keep",
        "SURGE_BLOCKED": "true",
    }
    for name, value in expect_env.items():
        ok(env.get(name) == value, f"all switches: {name} = {value!r}", f"got {env.get(name)!r}")
    settings = readme_settings()
    ok(len(settings) >= 10, "README settings table found", f"parsed {settings}")
    for name in settings:
        if name in README_SETTINGS_NOT_IN_CHART:
            continue
        ok(name in env, f"README setting {name} has a chart key (set in all-switches.yaml)")
    fields = {
        "serviceAccountName": pod.get("serviceAccountName") == "node-drainer",
        "name from fullnameOverride": ds["metadata"]["name"] == "spot-handler",
        "nameOverride in labels": ds["metadata"]["labels"]["app.kubernetes.io/name"] == "stnh",
        "image": c["image"] == "registry.example.com/platform/spot-termination-notice-handler:0.1.0"
        and c["imagePullPolicy"] == "Always",
        "hostNetwork false -> dnsPolicy ClusterFirst": pod["hostNetwork"] is False and pod["dnsPolicy"] == "ClusterFirst",
        "envFromSecret": c.get("envFrom") == [{"secretRef": {"name": "stnh-extra-env"}}],
        "priorityClassName \"\"": "priorityClassName" not in pod,
        "updateStrategy OnDelete": ds["spec"]["updateStrategy"] == {"type": "OnDelete"},
        "podAnnotations": ds["spec"]["template"]["metadata"].get("annotations") == {"example.com/scrape": "false"},
        "podLabels": ds["spec"]["template"]["metadata"]["labels"].get("team") == "platform",
        "podSecurityContext merged": pod["securityContext"].get("fsGroup") == 65532
        and pod["securityContext"].get("runAsNonRoot") is True,
        "securityContext merged": c["securityContext"].get("privileged") is False
        and c["securityContext"].get("readOnlyRootFilesystem") is True,
        "resources": c["resources"]["limits"] == {"cpu": "100m", "memory": "48Mi"},
        "tolerations": pod["tolerations"][0]["key"] == "dedicated",
        "nodeSelector + affinity": pod["nodeSelector"] == {"karpenter.sh/capacity-type": "spot"}
        and "nodeAffinity" in pod["affinity"],
        "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"] == 10,
        "imagePullSecrets": pod["imagePullSecrets"] == [{"name": "regcred"}],
        "metricsAddr port -> containerPort": c.get("ports") == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}],
        "livenessProbe values": c.get("livenessProbe") == {"httpGet": {"path": "/healthz", "port": "metrics"},
                                                          "periodSeconds": 20, "timeoutSeconds": 3, "failureThreshold": 5},
    }
    for what, cond in fields.items():
        ok(cond, f"all switches: {what}")
    n = lib.notes(out)
    ok(env.get("DETACH_ASG") == "true" and env.get("DETACH_ASG_ON") == "rebalance-recommendation,scheduled-maintenance",
       "all switches: detachAsg + detachAsgOn set DETACH_ASG and DETACH_ASG_ON", f"got {env.get('DETACH_ASG')!r}, {env.get('DETACH_ASG_ON')!r}")
    ok("autoscaling:DetachInstances" in n and "and on: rebalance-recommendation" in n,
       "all switches: NOTES.txt names the IAM permissions detachAsg needs")
    ok("hostNetwork=false" in n, "all switches: NOTES.txt warns about the IMDSv2 hop limit")
    ok("rbac.create=false" in n, "all switches: NOTES.txt lists the rules to bind")
    ok("deployments get/patch (apps) for surgeBlocked" in n, "all switches: NOTES.txt lists the rule surgeBlocked needs")
    return objs


def check_variants() -> list[tuple[str, dict]]:
    """Smaller renders for the switches all-switches.yaml cannot flip at the same time."""
    objs_all: list[tuple[str, dict]] = []
    # A chart-created Slack Secret with RBAC on, a named service account, a percentage maxUnavailable.
    out = lib.render({"slackUrl": "https://hooks.slack.com/services/T/B/x", "serviceAccount": {"name": "drainer"},
                      "maxUnavailable": "25%", "gracePeriod": 0, "verbose": False},
                     name="stnh", namespace="ops")
    objs = lib.rendered_objects(out)
    objs_all += objs
    ds = lib.find(objs, "DaemonSet")[0]
    env = lib.container_env(ds)
    crb = lib.find(objs, "ClusterRoleBinding")[0]
    ok(crb["subjects"] == [{"kind": "ServiceAccount", "name": "drainer", "namespace": "ops"}],
       "variant: the ClusterRoleBinding names the service account and the release namespace")
    ok(lib.find(objs, "ServiceAccount")[0]["metadata"]["name"] == "drainer", "variant: serviceAccount.name")
    ok(ds["metadata"]["name"] == "stnh-spot-termination-notice-handler", "variant: fullname <release>-<chart>")
    ok(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "25%", "variant: maxUnavailable 25%")
    ok("checksum/slack-url" in ds["spec"]["template"]["metadata"].get("annotations", {}),
       "variant: a Slack URL change rolls the pods (checksum annotation)")
    ok("GRACE_PERIOD" not in env and "gracePeriod: 0 is ignored" in lib.notes(out),
       "variant: gracePeriod 0 is ignored, as in the seed, and NOTES.txt says so")
    ok(env.get("VERBOSE") == "false", "variant: verbose false renders VERBOSE=false")
    ok("LOGSPOUT" not in env, "variant: enableLogspout default true adds no LOGSPOUT")
    # Metrics: the PodMonitor and the Service + ServiceMonitor find the pods and their port.
    out = lib.render({"podMonitor": {"enabled": True, "labels": {"release": "prom"}},
                      "serviceMonitor": {"enabled": True, "interval": "15s"}})
    objs = lib.rendered_objects(out)
    objs_all += [(src, o) for src, o in objs if not o["apiVersion"].startswith("monitoring.coreos.com/")]
    ds = lib.find(objs, "DaemonSet")[0]
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in ds["spec"]["template"]["spec"]["containers"][0]["ports"]}
    selects = lambda sel, labels: all(labels.get(k) == v for k, v in sel.items())  # noqa: E731
    pm, sm, svc = lib.find(objs, "PodMonitor"), lib.find(objs, "ServiceMonitor"), lib.find(objs, "Service")
    ok(len(pm) == 1 and pm[0]["apiVersion"] == "monitoring.coreos.com/v1"
       and selects(pm[0]["spec"]["selector"]["matchLabels"], pod_labels)
       and pm[0]["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s",
                                                      "scrapeTimeout": "10s"}]
       and "metrics" in ports and pm[0]["metadata"]["labels"].get("release") == "prom",
       "variant: podMonitor selects the pods and scrapes their metrics port, with extra labels")
    ok(len(svc) == 1 and svc[0]["spec"].get("clusterIP") == "None" and selects(svc[0]["spec"]["selector"], pod_labels)
       and svc[0]["spec"]["ports"] == [{"name": "metrics", "port": 17864, "targetPort": "metrics", "protocol": "TCP"}],
       "variant: serviceMonitor's headless Service selects the pods on the metrics port")
    ok(len(sm) == 1 and sm and svc and selects(sm[0]["spec"]["selector"]["matchLabels"], svc[0]["metadata"]["labels"])
       and not selects(sm[0]["spec"]["selector"]["matchLabels"], pod_labels)
       and sm[0]["spec"]["namespaceSelector"] == {"matchNames": [lib.NAMESPACE]}
       and sm[0]["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                            "scrapeTimeout": "10s"}],
       "variant: the ServiceMonitor selects that Service (only) and scrapes /metrics")
    for o in pm + sm:
        ok(set(o) == {"apiVersion", "kind", "metadata", "spec"} and o["metadata"]["namespace"] == lib.NAMESPACE,
           f"variant: {o['kind']} is a namespaced object of the Prometheus Operator's shape")
    # Metrics off: no port, no probe, no variable; loopback with a probe warns.
    out = lib.render({"metricsAddr": ""})
    c = lib.find(lib.rendered_objects(out), "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]
    ok("ports" not in c and "livenessProbe" not in c and "METRICS_ADDR" not in {e["name"] for e in c["env"]},
       "variant: metricsAddr \"\" renders no METRICS_ADDR, port or probe")
    out = lib.render({"livenessProbe": {"enabled": False}})
    c = lib.find(lib.rendered_objects(out), "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]
    ok("ports" in c and "livenessProbe" not in c, "variant: livenessProbe.enabled false keeps the port, drops the probe")
    ok("listens on loopback only" in lib.notes(lib.render({"metricsAddr": "127.0.0.1:17864"})),
       "variant: a loopback metricsAddr with the probe on warns in NOTES.txt")
    for key in ("podMonitor", "serviceMonitor"):
        try:
            lib.render({"metricsAddr": "", key: {"enabled": True}})
            ok(False, f"variant: {key} without metricsAddr is refused")
        except Exception as e:  # noqa: BLE001
            ok("needs metricsAddr" in str(e), f"variant: {key} without metricsAddr is refused", str(e))
    # The seed's detachAsg: true alone.
    out = lib.render({"detachAsg": True})
    env = lib.container_env(lib.find(lib.rendered_objects(out), "DaemonSet")[0])
    ok(env.get("DETACH_ASG") == "true" and "DETACH_ASG_ON" not in env,
       "variant: detachAsg true alone sets DETACH_ASG=true (spot interruptions only)", f"got {env!r}")
    n = lib.notes(out)
    ok("autoscaling:DetachInstances" in n and "and on:" not in n, "variant: detachAsg true alone: NOTES.txt names the IAM permissions")
    # Webhook settings given in the values: one chart-created Secret, referenced by the env, never in the pod
    # spec, and a change rolls the pods.
    import base64
    hooks = {"webhookUrl": "https://hooks.example/T/hook-canary,https://b.example/x",
             "webhookHeaders": "Authorization: Bearer hdr-canary", "webhookTemplate": '{"text":"{{message}} tpl-canary"}'}
    out = lib.render(hooks)
    objs = lib.rendered_objects(out)
    objs_all += objs
    ds = lib.find(objs, "DaemonSet")[0]
    env = lib.container_env(ds)
    secret = [o for o in lib.find(objs, "Secret") if o["metadata"]["name"] == f"{lib.RELEASE}-webhook"]
    data = secret[0]["data"] if secret else {}
    ok({k: base64.b64decode(v).decode() for k, v in data.items()} == {
        "webhook-url": hooks["webhookUrl"], "webhook-headers": hooks["webhookHeaders"],
        "webhook-template": hooks["webhookTemplate"]}, "variant: webhook settings go to <fullname>-webhook", str(data))
    for name, key in [("WEBHOOK_URL", "webhook-url"), ("WEBHOOK_HEADERS", "webhook-headers"),
                      ("WEBHOOK_TEMPLATE", "webhook-template")]:
        ok(env.get(name) == {"secretKeyRef": {"name": f"{lib.RELEASE}-webhook", "key": key}},
           f"variant: {name} from the chart's webhook Secret", f"got {env.get(name)!r}")
    ok("canary" not in dump(ds), "variant: no webhook secret in the DaemonSet")
    ok("checksum/webhook" in ds["spec"]["template"]["metadata"].get("annotations", {}),
       "variant: a webhook setting change rolls the pods (checksum annotation)")
    ok("Webhooks: the URLs come from Secret" in lib.notes(out), "variant: NOTES.txt names the webhook Secret")
    for key in ("webhookUrl", "webhookHeaders", "webhookTemplate"):
        try:
            lib.render({key: "https://x.example/y", f"{key}Secret": {"name": "s"}})
            ok(False, f"variant: {key} + {key}Secret.name is refused")
        except Exception as e:  # noqa: BLE001
            ok("not both" in str(e), f"variant: {key} + {key}Secret.name is refused", str(e))
    # events: false / nodeCondition: false drop exactly their rules.
    def rules(values):
        role = lib.find(lib.rendered_objects(lib.render(values)), "ClusterRole")[0]
        return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                for v in rule["verbs"]}
    full_rules = rules(None)
    ev = {("events.k8s.io", "events", "create"), ("events.k8s.io", "events", "patch"), ("", "events", "create"),
          ("", "events", "patch")}
    st = {("", "nodes/status", "patch")}
    ok(ev | st <= full_rules, "variant: the default ClusterRole grants Events and nodes/status")
    ok(rules({"events": False}) == full_rules - ev, "variant: events: false drops the events rules only")
    ok(rules({"nodeCondition": "false"}) == full_rules - st, "variant: nodeCondition: false drops nodes/status only")
    surge = {("apps", "deployments", "get"), ("apps", "deployments", "patch")}
    ok(not any(g == "apps" for g, _, _ in full_rules), "variant: the default ClusterRole grants nothing in apps")
    ok(rules({"surgeBlocked": True}) == full_rules | surge,
       "variant: surgeBlocked: true adds deployments get/patch (apps), nothing else")
    env = lib.container_env(lib.find(lib.rendered_objects(lib.render({"surgeBlocked": True})), "DaemonSet")[0])
    ok(env.get("SURGE_BLOCKED") == "true", "variant: surgeBlocked: true sets SURGE_BLOCKED=true", f"got {env!r}")
    pdbs = {("policy", "poddisruptionbudgets", "list")}
    ok(rules({"surgeBlocked": "budgeted"}) == full_rules | surge | pdbs,
       "variant: surgeBlocked: budgeted adds deployments get/patch (apps) and poddisruptionbudgets list (policy), nothing else")
    env = lib.container_env(lib.find(lib.rendered_objects(lib.render({"surgeBlocked": "budgeted"})), "DaemonSet")[0])
    ok(env.get("SURGE_BLOCKED") == "budgeted", "variant: surgeBlocked: budgeted sets SURGE_BLOCKED=budgeted", f"got {env!r}")
    n = lib.notes(lib.render({"surgeBlocked": "budgeted", "rbac": {"create": False}}))
    ok("poddisruptionbudgets list (policy)" in n and "deployments get/patch" in n,
       "variant: NOTES.txt lists the rules surgeBlocked: budgeted needs")
    env = lib.container_env(lib.find(lib.rendered_objects(lib.render({"criticalPriority": "1000"})), "DaemonSet")[0])
    ok(env.get("CRITICAL_PRIORITY") == "1000", "variant: a string criticalPriority is passed on", f"got {env!r}")
    ok("events create/patch" not in lib.notes(lib.render({"events": False, "rbac": {"create": False}})),
       "variant: NOTES.txt lists the rules the settings need")
    # slackUrl and slackUrlSecret together are refused.
    try:
        lib.render({"slackUrl": "https://hooks.slack.com/x", "slackUrlSecret": {"name": "s"}})
        ok(False, "variant: slackUrl + slackUrlSecret.name is refused")
    except Exception as e:  # noqa: BLE001
        ok("not both" in str(e), "variant: slackUrl + slackUrlSecret.name is refused", str(e))
    return objs_all


# --- 4. Kubernetes schemas ---------------------------------------------------------------------------------


def check_kube_schemas(groups: dict[str, list[tuple[str, dict]]], versions: list[str]) -> None:
    import kubernetes_validate
    from kubernetes_validate import utils

    shipped = utils.all_versions()
    print(f"info  kubernetes-validate {kubernetes_validate.__version__} ships schemas {shipped[0]} .. {shipped[-1]}")
    for v in versions:
        ok(any(s.startswith(v + ".") or s == v for s in shipped),
           f"kubernetes-validate ships the schemas of Kubernetes {v}")
    for group, objects in groups.items():
        for v in versions:
            errors, skipped = [], []
            for src, obj in objects:
                if obj.get("apiVersion") == FLOWCONTROL_V1 and lib.version_key(v) < lib.version_key(FLOWCONTROL_V1_SINCE):
                    skipped.append(f"{src} {lib.key_of(obj)}")
                    continue
                try:
                    utils.validate(obj, v, strict=True)
                except utils.ValidationError as e:
                    path = ".".join(str(p) for p in e.path)
                    errors.append(f"{src} {lib.key_of(obj)}: {path}: {e.message}")
                except (utils.SchemaNotFoundError, utils.InvalidSchemaError) as e:
                    errors.append(f"{src} {lib.key_of(obj)}: {e.message}")
            ok(not errors, f"{group}: {len(objects) - len(skipped)} objects valid for Kubernetes {v} (strict)",
               "\n      ".join(errors))
            if skipped:
                print(f"info  {group}: Kubernetes {v} serves no {FLOWCONTROL_V1} (from {FLOWCONTROL_V1_SINCE} on): "
                      f"not validated there: {', '.join(skipped)}")


# --- 8. the FlowSchema ----------------------------------------------------------------------------


def check_flowschema(plain: list[tuple[str, dict]], newest: str) -> None:
    import json

    from kubernetes_validate import utils

    path = lib.MANIFESTS / "flowschema.json"
    fs = json.loads(path.read_text())
    ok(fs["apiVersion"] == FLOWCONTROL_V1, f"flowschema.json is {FLOWCONTROL_V1}", fs["apiVersion"])
    for v in sorted({FLOWCONTROL_V1_SINCE, newest}):
        try:
            utils.validate(fs, v, strict=True)
            ok(True, f"flowschema.json valid for Kubernetes {v} (strict)")
        except utils.ValidationError as e:
            ok(False, f"flowschema.json valid for Kubernetes {v} (strict)",
               ".".join(str(p) for p in e.path) + ": " + e.message)
    sa = lib.find(plain, "ServiceAccount")[0]["metadata"]
    subjects = [s for r in fs["spec"]["rules"] for s in r["subjects"]]
    ok(subjects == [{"kind": "ServiceAccount",
                     "serviceAccount": {"name": sa["name"], "namespace": sa["namespace"]}}],
       "flowschema.json selects the ServiceAccount of manifests/", json.dumps(subjects))
    granted = set()
    for rule in lib.find(plain, "ClusterRole")[0]["rules"]:
        for g in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    granted.add((g, res, verb))
    wanted = {(g, res, verb) for r in fs["spec"]["rules"] for rr in r["resourceRules"]
              for g in rr["apiGroups"] for res in rr["resources"] for verb in rr["verbs"]}
    ok(wanted and wanted <= granted and all(res.startswith("nodes") for _, res, _ in wanted),
       "flowschema.json selects only Node requests the ClusterRole grants",
       f"not granted: {sorted(wanted - granted)}")
    ok(fs["spec"]["matchingPrecedence"] < 900,
       "flowschema.json comes before kube-system-service-accounts (precedence 900)")
    check_chart_flowschema()


def node_rules(objs) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of a FlowSchema's resourceRules, or of a ClusterRole's rules."""
    out = set()
    for o in objs:
        rules = [rr for r in o["spec"]["rules"] for rr in r["resourceRules"]] if o["kind"] == "FlowSchema" \
            else o["rules"]
        out |= {(g, res, verb) for rr in rules for g in rr["apiGroups"] for res in rr["resources"]
                for verb in rr["verbs"]}
    return out


def check_chart_flowschema() -> None:
    """The chart's FlowSchema (at default values the object of manifests/, step 2): none with
    flowSchema.create=false; its subject and rules follow the chart's service account, its apiVersion valid
    where it is served."""
    from kubernetes_validate import utils

    ok(not [o for o in lib.find(lib.rendered_objects(lib.render({"flowSchema": {"create": False}})),
                                "FlowSchema")],
       "chart: no FlowSchema with flowSchema.create=false")
    values = {"flowSchema": {"create": True, "priorityLevel": "spot-drains"},
              "serviceAccount": {"name": "drainer"}}
    objs = lib.rendered_objects(lib.render(values, name="stnh", namespace="ops"))
    fs = lib.find(objs, "FlowSchema")
    subjects = [s for r in fs[0]["spec"]["rules"] for s in r["subjects"]] if fs else []
    ok(subjects == [{"kind": "ServiceAccount", "serviceAccount": {"name": "drainer", "namespace": "ops"}}]
       and fs[0]["metadata"]["name"] == "stnh-spot-termination-notice-handler-node-writes"
       and fs[0]["spec"]["priorityLevelConfiguration"] == {"name": "spot-drains"},
       "chart variant: the FlowSchema names the chart's service account, release namespace and priorityLevel",
       dump(fs))
    role = node_rules(lib.find(objs, "ClusterRole"))
    ok(fs and node_rules(fs) == {("", "nodes", "patch")} <= role,
       "chart variant: the FlowSchema selects the Node patches only, which the ClusterRole grants",
       f"{sorted(node_rules(fs))} vs {sorted(role)}")
    # Each apiVersion, set explicitly (`helm template` knows no cluster), valid where Kubernetes serves it.
    for api, kube in [("v1", "1.29"), ("v1", "1.37"), ("v1beta3", "1.26"), ("v1beta3", "1.28"),
                      ("v1beta2", "1.25")]:
        full = f"flowcontrol.apiserver.k8s.io/{api}"
        fs = lib.find(lib.rendered_objects(lib.render({"flowSchema": {"create": True, "apiVersion": full}})),
                      "FlowSchema")
        try:
            utils.validate(fs[0], kube, strict=True)
            ok(fs[0]["apiVersion"] == full, f"chart: flowSchema.apiVersion {api} renders a FlowSchema valid for "
               f"Kubernetes {kube} (strict)")
        except (utils.ValidationError, utils.SchemaNotFoundError) as e:
            ok(False, f"chart: flowSchema.apiVersion {api} renders a FlowSchema valid for Kubernetes {kube} (strict)",
               getattr(e, "message", str(e)))


# --- 5. values.schema.json ---------------------------------------------------------------------------------

REJECTED = [
    ("typo at the top level", {"imageTag": "1.32.0-1"}),
    ("surgeBlocked a string", {"surgeBlocked": "true"}),
    ("surgeBlocked not false, true or budgeted", {"surgeBlocked": "surge"}),
    ("evictionOrder not tiers or parallel", {"evictionOrder": "critical-first"}),
    ("criticalPriority not an integer", {"criticalPriority": "high"}),
    ("criticalPriority beyond 32 bits", {"criticalPriority": 3000000000}),
    ("typo in image", {"image": {"repo": "x"}}),
    ("typo in rbac", {"rbac": {"crate": True}}),
    ("typo in serviceAccount", {"serviceAccount": {"nmae": "x"}}),
    ("typo in slackUrlSecret", {"slackUrlSecret": {"secret": "x"}}),
    ("typo in resources", {"resources": {"limit": {"memory": "1Gi"}}}),
    ("typo in a toleration", {"tolerations": [{"operator": "Exists", "efect": "NoSchedule"}]}),
    ("typo in affinity", {"affinity": {"nodeAfinity": {}}}),
    ("rbac.create a string", {"rbac": {"create": "yes"}}),
    ("hostNetwork a string", {"hostNetwork": "true"}),
    ("detachAsg a string", {"detachAsg": "true"}),
    ("enableLogspout a number", {"enableLogspout": 1}),
    ("forceDelete a string", {"forceDelete": "no"}),
    ("pollInterval not a duration", {"pollInterval": "often"}),
    ("pollInterval 0", {"pollInterval": 0}),
    ("pollInterval a list", {"pollInterval": [5]}),
    ("drainReserve not a duration", {"drainReserve": "20 seconds"}),
    ("imdsTimeout above 30", {"imdsTimeout": 31}),
    ("gracePeriod below -1", {"gracePeriod": -5}),
    ("gracePeriod a word", {"gracePeriod": "forever"}),
    ("verbose 2", {"verbose": 2}),
    ("verbose a word", {"verbose": "loud"}),
    ("noticeUrl https (metadata is plain http)", {"noticeUrl": "https://169.254.169.254/x"}),
    ("imdsUrl without scheme", {"imdsUrl": "169.254.169.254"}),
    ("gcpMetadataUrl https (metadata is plain http)", {"gcpMetadataUrl": "https://169.254.169.254"}),
    ("cloud unknown", {"cloud": "oracle"}),
    ("gcpMigrate unknown", {"gcpMigrate": "reboot"}),
    ("azureApprove a word", {"azureApprove": "maybe"}),
    ("gcpPreemptionDeadline not a duration", {"gcpPreemptionDeadline": "soon"}),
    ("slackUrl not a URL", {"slackUrl": "hooks.slack.com/services/x"}),
    ("image.tag with a colon", {"image": {"tag": "repo:1.0"}}),
    ("image.tag a number", {"image": {"tag": 1.13}}),
    ("image.pullPolicy unknown", {"image": {"pullPolicy": "Sometimes"}}),
    ("imagePullSecrets of strings", {"imagePullSecrets": ["regcred"]}),
    ("tolerations an object", {"tolerations": {"operator": "Exists"}}),
    ("nodeSelector a list", {"nodeSelector": ["a"]}),
    ("nodeSelector value a boolean", {"nodeSelector": {"spot": True}}),
    ("podAnnotations value a number", {"podAnnotations": {"a": 1}}),
    ("updateStrategy unknown", {"updateStrategy": "Recreate"}),
    ("maxUnavailable 0", {"maxUnavailable": 0}),
    ("maxUnavailable a word", {"maxUnavailable": "one"}),
    ("terminationGracePeriodSeconds negative", {"terminationGracePeriodSeconds": -1}),
    ("extraEnv without a name", {"extraEnv": [{"value": "1"}]}),
    ("clusterName a number", {"clusterName": 5}),
    ("metricsAddr a host name", {"metricsAddr": "localhost:17864"}),
    ("metricsAddr a number", {"metricsAddr": 17864}),
    ("metricsAddr without a port", {"metricsAddr": "0.0.0.0"}),
    ("healthLoopTimeout a word", {"healthLoopTimeout": "soon"}),
    ("typo in livenessProbe", {"livenessProbe": {"enable": True}}),
    ("livenessProbe.periodSeconds 0", {"livenessProbe": {"periodSeconds": 0}}),
    ("typo in podMonitor", {"podMonitor": {"enable": True}}),
    ("serviceMonitor.interval without a unit", {"serviceMonitor": {"interval": "30"}}),
    ("podMonitor.labels value a number", {"podMonitor": {"labels": {"release": 1}}}),
    ("typo in webhookUrlSecret", {"webhookUrlSecret": {"nmae": "x"}}),
    ("webhookUrl not a URL", {"webhookUrl": "hooks.example/x"}),
    ("events a word", {"events": "maybe"}),
    ("typo in flowSchema", {"flowSchema": {"enabled": True}}),
    ("flowSchema.create a string", {"flowSchema": {"create": "true"}}),
    ("flowSchema.apiVersion not a flowcontrol version", {"flowSchema": {"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1"}}),
    ("flowSchema.priorityLevel not a name", {"flowSchema": {"priorityLevel": "Node High"}}),
    ("logLevel unknown", {"logLevel": "loud"}),
    ("logFormat unknown", {"logFormat": "xml"}),
]

ACCEPTED = [
    ("the seed's string pollInterval", {"pollInterval": "5"}),
    ("a duration pollInterval", {"pollInterval": "200ms"}),
    ("the seed's verbose 1", {"verbose": 1}),
    ("verbose \"true\"", {"verbose": "true"}),
    ("gracePeriod -1", {"gracePeriod": -1}),
    ("gracePeriod \"120\"", {"gracePeriod": "120"}),
    ("maxUnavailable \"10%\"", {"maxUnavailable": "10%"}),
    ("updateStrategy \"\" (the seed's off switch)", {"updateStrategy": ""}),
    ("global values of a parent chart", {"global": {"imageRegistry": "x"}}),
    ("resources with numbers", {"resources": {"requests": {"cpu": 0.005, "memory": 16777216}}}),
    ("image pinned by digest", {"image": {"tag": "1.32.0-1@sha256:" + "a" * 64}}),
    ("metricsAddr on every IPv6 address", {"metricsAddr": "[::]:17864"}),
    ("metricsAddr on one address", {"metricsAddr": "10.0.0.5:17864"}),
    ("healthMetadataTimeout 0 (never)", {"healthMetadataTimeout": 0}),
]


def check_values_schema() -> None:
    import helm_python

    for what, values in REJECTED:
        try:
            lib.render(values)
            ok(False, f"values.schema.json rejects {what}", f"{values} rendered")
        except helm_python.HelmValuesError as e:
            ok(True, f"values.schema.json rejects {what}")
            del e
    for what, values in ACCEPTED:
        try:
            lib.render(values)
            ok(True, f"values.schema.json accepts {what}")
        except helm_python.HelmError as e:
            ok(False, f"values.schema.json accepts {what}", str(e).replace("\n", "\n      "))


# --- 6. key coverage ---------------------------------------------------------------------------------------

# Every key of stable/k8s-spot-termination-handler 1.4.11 (values.yaml, README and templates).
SEED_KEYS = [
    "image.repository", "image.tag", "image.pullPolicy", "imagePullSecrets", "noticeUrl", "pollInterval",
    "verbose", "slackUrl", "clusterName", "enableLogspout", "detachAsg", "gracePeriod", "envFromSecret",
    "rbac.create", "serviceAccount.create", "serviceAccount.name", "resources", "priorityClassName",
    "nodeSelector", "tolerations", "affinity", "podAnnotations", "podSecurityContext", "hostNetwork",
    "updateStrategy", "maxUnavailable",
]


def check_key_coverage() -> None:
    import helm_python

    with helm_python.Chart.load(lib.CHART) as chart:
        schema = chart.schema or {}
        defaults = chart.values
        lint = helm_python.lint(lib.CHART, strict=True, namespace=lib.NAMESPACE)
    for key in SEED_KEYS:
        node, vals = schema, defaults
        for part in key.split("."):
            node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
            vals = vals.get(part, KeyError) if isinstance(vals, dict) else KeyError
        ok(node is not None and vals is not KeyError, f"seed key {key} is a chart key (schema and values.yaml)")
    problems = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + [
        {"error": e} for e in lint.get("errors", [])
    ]
    ok(not problems, "helm lint --strict", "; ".join(str(p.get("error")) for p in problems))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kube-versions", default="1.25,1.37", help="comma-separated Kubernetes versions")
    args = ap.parse_args()
    versions = [v.strip() for v in args.kube_versions.split(",") if v.strip()]
    steps = []
    try:
        plain = check_plain_layout()
        ds = lib.find(plain, "DaemonSet")
        if ds:
            check_daemonset_defaults(ds[0], "manifests/daemonset.yaml")
        default = check_default_render(plain)
        seed = check_seed_render()
        everything = check_all_switches_render()
        variants = check_variants()
        steps = {"manifests/": plain, "chart default values": default, "chart seed.yaml": seed,
                 "chart all-switches.yaml": everything, "chart variants": variants}
        check_kube_schemas(steps, versions)
        check_flowschema(plain, versions[-1])
        check_values_schema()
        check_key_coverage()
    except Exception:  # noqa: BLE001  (a crash is a failure with its traceback, not a silent pass)
        traceback.print_exc()
        FAILED.append("crashed")
    print(f"manifests-check: {len(PASSED)} passed, {len(FAILED)} failed")
    if FAILED:
        print("failed:\n  " + "\n  ".join(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
