#!/usr/bin/env python3
"""make rbac-check: replay every Kubernetes API request the integration tests made against the simulator
and prove the ClusterRole is least privilege:

  * every request is allowed by the ClusterRole in manifests/clusterrole.yaml AND by the chart's rendered
    ClusterRole (non-resource discovery paths such as GET /api/v1 are allowed by the default
    system:discovery and system:public-info-viewer bindings of every authenticated client);
  * every verb of every resource in each ClusterRole is used by at least one request;
  * no wildcard rules.

Input: the files LOG_DIR/*.log (default target/api-requests) the tests write, one per test, one request a
line: `METHOD PATH[?QUERY]`, e.g. `GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500`.
Blank lines and lines starting with # are ignored.

SURGE_BLOCKED, both ways: logs named `surge-blocked--*.log` come from handlers run with SURGE_BLOCKED=true.
They are checked against the roles with the setting on: manifests/clusterrole.yaml plus the rule README.md
documents between <!-- surge-rbac:start/end -->, and the chart rendered with surgeBlocked: true; every
permission those roles add must be used by them. All other logs are checked against the default roles, which
must deny at least one request of the surge-blocked logs (the extra rule is needed, and only with the setting).
Likewise `surge-budgeted--*.log` (SURGE_BLOCKED=budgeted) against those roles plus README's
<!-- surge-budgeted-rbac:start/end --> rule, and the chart with surgeBlocked: budgeted; the SURGE_BLOCKED=true
roles must deny at least one of their requests.

Requests are classified as the API server's RequestInfoFactory does (k8s.io/apiserver/pkg/endpoints/request):
GET/HEAD on a named object = get, on a collection = list (watch with ?watch=true), POST = create,
PUT = update, PATCH = patch, DELETE = delete (deletecollection on a collection); /api/v1/namespaces/NS/R/N/S
is resource R, subresource S, in the core group ("").

  rbac_check.py [LOG_DIR]      check the logs
  rbac_check.py --self-test    check the checker on synthetic logs (a denied request must fail it)
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile
import urllib.parse
from typing import Any

import yaml

import shiplib as lib

# The default discovery roles bound to system:authenticated (bootstrap policy of kube-apiserver).
DISCOVERY_NON_RESOURCE_URLS = [
    # system:discovery
    "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/",
    # system:public-info-viewer
    "/healthz", "/livez", "/readyz",
]

VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclasses.dataclass(frozen=True)
class RequestInfo:
    resource_request: bool
    verb: str
    path: str
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def resource_and_sub(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def describe(self) -> str:
        if not self.resource_request:
            return f"{self.verb} non-resource {self.path}"
        return f"{self.verb} {self.resource_and_sub} ({self.group or 'core'})"


def request_info(method: str, target: str) -> RequestInfo:
    """What RBAC sees of `METHOD PATH?QUERY` (RequestInfoFactory.NewRequestInfo, without the special
    /watch/ and /proxy/ prefixes, which are deprecated and unused here)."""
    url = urllib.parse.urlsplit(target)
    path = url.path
    query = urllib.parse.parse_qs(url.query)
    verb = VERBS.get(method.upper(), method.lower())
    parts = [p for p in path.strip("/").split("/") if p]
    non_resource = RequestInfo(False, method.lower(), path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    namespace = ""
    if parts[0] == "namespaces":
        if len(parts) > 1:
            namespace = parts[1]
            if len(parts) > 2 and parts[2] not in NAMESPACE_SUBRESOURCES:
                parts = parts[2:]
    resource = parts[0] if parts else ""
    name = parts[1] if len(parts) >= 2 else ""
    sub = parts[2] if len(parts) >= 3 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", [""])[0] in ("1", "true") else "list"
        for sel in query.get("fieldSelector", []):
            for term in sel.split(","):
                if term.startswith("metadata.name="):
                    name = term.split("=", 1)[1]
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(True, verb, path, group, version, namespace, resource, sub, name)


# --- roles -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Role:
    source: str
    rules: list[dict[str, Any]]

    def allows(self, ri: RequestInfo) -> bool:
        if not ri.resource_request:
            return ri.verb == "get" and any(url_matches(p, ri.path) for p in DISCOVERY_NON_RESOURCE_URLS)
        return any(rule_matches(r, ri) for r in self.rules)

    def permissions(self) -> list[tuple[str, str, str]]:
        """(group, resource[/subresource], verb) of every rule, as written."""
        return [(g, res, v) for r in self.rules for g in r.get("apiGroups", []) for res in r.get("resources", [])
                for v in r.get("verbs", [])]


def url_matches(pattern: str, path: str) -> bool:
    return path == pattern or (pattern.endswith("*") and path.startswith(pattern[:-1]))


def rule_matches(rule: dict[str, Any], ri: RequestInfo) -> bool:
    verbs, groups, resources = rule.get("verbs", []), rule.get("apiGroups", []), rule.get("resources", [])
    names = rule.get("resourceNames", [])
    if not ("*" in verbs or ri.verb in verbs):
        return False
    if not ("*" in groups or ri.group in groups):
        return False
    combined = ri.resource_and_sub
    if not any(r == "*" or r == combined or (ri.subresource and r == "*/" + ri.subresource) for r in resources):
        return False
    return not names or ri.name in names


def cluster_role(objects: list[dict[str, Any]], source: str) -> Role:
    roles = [o for o in objects if o.get("kind") == "ClusterRole"]
    if len(roles) != 1:
        raise SystemExit(f"rbac-check: expected one ClusterRole in {source}, found {len(roles)}")
    return Role(source, roles[0].get("rules", []))


def load_roles() -> list[Role]:
    path = lib.MANIFESTS / "clusterrole.yaml"
    plain = cluster_role(lib.load_docs(path.read_text(), str(path)), "manifests/clusterrole.yaml")
    rendered = [o for _, o in lib.rendered_objects(lib.render(None))]
    chart = cluster_role(rendered, "the chart's ClusterRole (default values)")
    return [plain, chart]


SURGE_PREFIX = "surge-blocked--"
BUDGETED_PREFIX = "surge-budgeted--"


def readme_surge_rules(block_name: str = "surge-rbac") -> list[dict[str, Any]]:
    """The ClusterRole rule README.md documents for SURGE_BLOCKED (`surge-budgeted-rbac`: for budgeted) with
    the plain manifests."""
    text = (lib.ROOT / "README.md").read_text()
    start, end = text.find(f"<!-- {block_name}:start -->"), text.find(f"<!-- {block_name}:end -->")
    if start < 0 or end < start:
        raise SystemExit(f"rbac-check: README.md has no <!-- {block_name}:start/end --> block")
    block = text[start:end].split("```yaml", 1)[1].split("```", 1)[0]
    rules = yaml.safe_load(block)
    if not isinstance(rules, list) or not rules:
        raise SystemExit(f"rbac-check: README.md's {block_name} block is not a list of rules")
    return rules


def load_surge_roles(budgeted: bool = False) -> list[Role]:
    plain = load_roles()[0]
    rules = plain.rules + readme_surge_rules()
    if budgeted:
        rules += readme_surge_rules("surge-budgeted-rbac")
    which = "budgeted" if budgeted else "true"
    plain = Role(f"manifests/clusterrole.yaml + README's SURGE_BLOCKED={which} rules", rules)
    rendered = [o for _, o in lib.rendered_objects(lib.render({"surgeBlocked": "budgeted" if budgeted else True}))]
    chart = cluster_role(rendered, f"the chart's ClusterRole (surgeBlocked: {which})")
    return [plain, chart]


# --- the check ---------------------------------------------------------------------------------------------


def read_logs(log_dir: pathlib.Path) -> tuple[list[tuple[str, int, str, RequestInfo]], list[str]]:
    """(file, line number, request line, RequestInfo) for every request; and the malformed lines."""
    requests, malformed = [], []
    for path in sorted(log_dir.glob("*.log")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 2 or fields[0].upper() not in VERBS or not fields[1].startswith("/"):
                malformed.append(f"{path.name}:{n}: {line!r} is not `METHOD /path?query`")
                continue
            requests.append((path.name, n, line, request_info(fields[0], fields[1])))
    return requests, malformed


def check(log_dir: pathlib.Path, roles: list[Role], out=print, surge_roles: list[Role] | None = None,
          budgeted_roles: list[Role] | None = None) -> int:
    """0 when every request is allowed by every role and every permission of every role is used.
    With `surge_roles` (and `budgeted_roles`), the surge-blocked (surge-budgeted) logs are checked against those
    instead (see the module docs)."""
    files = sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []
    if not files:
        out(f"rbac-check: FAIL: no request logs in {log_dir}/*.log: run `make test` first (the integration "
            "tests write one file per test)")
        return 1
    requests, malformed = read_logs(log_dir)
    failures = list(malformed)
    if surge_roles is not None:
        surge = [r for r in requests if r[0].startswith(SURGE_PREFIX)]
        budgeted = [r for r in requests if r[0].startswith(BUDGETED_PREFIX)]
        plain = [r for r in requests if not r[0].startswith((SURGE_PREFIX, BUDGETED_PREFIX))]
        if not surge:
            failures.append(f"no {SURGE_PREFIX}*.log: the SURGE_BLOCKED requests were not recorded")
        failures += check_requests(plain, roles, out, "default settings")
        failures += check_requests(requests, surge_roles, out, "SURGE_BLOCKED=true", allowed_from=surge)
        needed = [r for r in surge if not all(role.allows(r[3]) for role in roles)]
        if surge and not needed:
            failures.append("the SURGE_BLOCKED logs need nothing beyond the default roles: the extra rule is unused")
        for fname, n, line, ri in needed:
            out(f"  needs SURGE_BLOCKED's rule: {line}  ({ri.describe()})  at {fname}:{n}")
        if budgeted_roles is not None:
            if not budgeted:
                failures.append(f"no {BUDGETED_PREFIX}*.log: the SURGE_BLOCKED=budgeted requests were not recorded")
            failures += check_requests(requests, budgeted_roles, out, "SURGE_BLOCKED=budgeted", allowed_from=budgeted)
            needed = [r for r in budgeted if not all(role.allows(r[3]) for role in surge_roles)]
            if budgeted and not needed:
                failures.append("the SURGE_BLOCKED=budgeted logs need nothing beyond the SURGE_BLOCKED=true roles: "
                                "the extra rule is unused")
            for fname, n, line, ri in needed:
                out(f"  needs SURGE_BLOCKED=budgeted's rule: {line}  ({ri.describe()})  at {fname}:{n}")
        else:
            budgeted_roles = []
    else:
        failures += check_requests(requests, roles, out, "")
    for f in failures:
        out(f"  {f}")
    all_roles = roles + (surge_roles or []) + (budgeted_roles or [])
    passed = len(requests) * len(all_roles) + sum(len(r.permissions()) for r in all_roles) - len(failures)
    out(f"rbac-check: {max(passed, 0)} passed, {len(failures)} failed")
    return 1 if failures else 0


def check_requests(requests, roles: list[Role], out, what: str, allowed_from=None) -> list[str]:
    """Failures of `roles` against `requests`: a request of `allowed_from` (default: all) denied, a wildcard,
    a permission no request uses."""
    failures: list[str] = []
    allowed_from = requests if allowed_from is None else allowed_from
    title = f" ({what})" if what else ""
    out(f"rbac-check{title}: {len(allowed_from)} requests")
    seen: dict[str, list[str]] = {}
    for fname, n, line, ri in allowed_from:
        seen.setdefault(ri.describe(), []).append(f"{fname}:{n}: {line}")
    for what in sorted(seen):
        out(f"  {len(seen[what]):5}x  {what:48}  e.g. {seen[what][0].split(': ', 1)[1]}")
    for role in roles:
        for g, res, v in role.permissions():
            if "*" in (g, res, v) or res.startswith("*/"):
                failures.append(f"{role.source}: wildcard rule ({g or 'core'} {res} {v}): not least privilege")
        for fname, n, line, ri in allowed_from:
            if not role.allows(ri):
                failures.append(f"DENIED by {role.source}: {line}  ({ri.describe()})  at {fname}:{n}")
        for g, res, v in role.permissions():
            used = any(ri.resource_request and rule_matches({"apiGroups": [g], "resources": [res], "verbs": [v]}, ri)
                       for _, _, _, ri in requests)
            if not used:
                failures.append(f"UNUSED in {role.source}: {v} {res} ({g or 'core'}): no request needs it; "
                                "remove it, or add the test that exercises it")
    for role in roles:
        perms = ", ".join(f"{res} {v}" for g, res, v in role.permissions())
        out(f"  {role.source}: {perms}")
    return failures


# --- self-test ---------------------------------------------------------------------------------------------

GOOD_LOG = """\
# a drain as the handler does it
GET /api/v1
GET /api/v1/namespaces/kube-system/pods/stnh-abcde
GET /api/v1/nodes/node-a
PATCH /api/v1/nodes/node-a
GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500
POST /api/v1/namespaces/shop/pods/web-1/eviction
GET /api/v1/namespaces/shop/pods/web-1
DELETE /api/v1/namespaces/shop/pods/web-2
GET /apis/events.k8s.io/v1
POST /apis/events.k8s.io/v1/namespaces/default/events
PATCH /apis/events.k8s.io/v1/namespaces/default/events/node-a.17c2f1a9b3d4e5f6
POST /api/v1/namespaces/shop/events
PATCH /api/v1/namespaces/shop/events/web-1.17c2f1a9b3d4e5f7
PATCH /api/v1/nodes/node-a/status
"""

SURGE_LOG = """\
GET /apis/apps/v1/namespaces/shop/deployments/solo
PATCH /apis/apps/v1/namespaces/shop/deployments/solo
"""

BUDGETED_LOG = """\
GET /apis/policy/v1/namespaces/shop/poddisruptionbudgets
GET /apis/apps/v1/namespaces/shop/deployments/web
PATCH /apis/apps/v1/namespaces/shop/deployments/web
"""

REQUEST_INFO_CASES = [
    ("GET", "/api/v1", (False, "get", "", "", "")),
    ("GET", "/apis/policy/v1", (False, "get", "", "", "")),
    ("GET", "/version", (False, "get", "", "", "")),
    ("GET", "/api/v1/nodes/node-a", (True, "get", "", "nodes", "node-a")),
    ("GET", "/api/v1/nodes", (True, "list", "", "nodes", "")),
    ("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500", (True, "list", "", "pods", "")),
    ("GET", "/api/v1/pods?watch=true", (True, "watch", "", "pods", "")),
    ("GET", "/api/v1/namespaces/shop/pods?fieldSelector=metadata.name%3Dweb-1", (True, "list", "", "pods", "web-1")),
    ("POST", "/api/v1/namespaces/shop/pods/web-1/eviction", (True, "create", "", "pods/eviction", "web-1")),
    ("PATCH", "/api/v1/nodes/node-a", (True, "patch", "", "nodes", "node-a")),
    ("PUT", "/api/v1/nodes/node-a", (True, "update", "", "nodes", "node-a")),
    ("PUT", "/api/v1/nodes/node-a/status", (True, "update", "", "nodes/status", "node-a")),
    ("DELETE", "/api/v1/namespaces/shop/pods/web-2", (True, "delete", "", "pods", "web-2")),
    ("DELETE", "/api/v1/namespaces/shop/pods", (True, "deletecollection", "", "pods", "")),
    ("POST", "/api/v1/namespaces/default/events", (True, "create", "", "events", "")),
    ("GET", "/api/v1/namespaces/shop", (True, "get", "", "namespaces", "shop")),
    ("PUT", "/api/v1/namespaces/shop/finalize", (True, "update", "", "namespaces/finalize", "shop")),
    ("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/x", (True, "get", "apps", "daemonsets", "x")),
    ("POST", "/apis/events.k8s.io/v1/namespaces/default/events", (True, "create", "events.k8s.io", "events", "")),
    ("PATCH", "/apis/events.k8s.io/v1/namespaces/default/events/n.1", (True, "patch", "events.k8s.io", "events", "n.1")),
    ("PATCH", "/api/v1/nodes/node-a/status", (True, "patch", "", "nodes/status", "node-a")),
    ("GET", "/apis/events.k8s.io/v1", (False, "get", "", "", "")),
]


def self_test() -> int:
    failures = []

    def expect(cond: bool, what: str) -> None:
        print(f"{'ok  ' if cond else 'FAIL'}  self-test: {what}")
        if not cond:
            failures.append(what)

    for method, target, want in REQUEST_INFO_CASES:
        ri = request_info(method, target)
        got = (ri.resource_request, ri.verb, ri.group, ri.resource_and_sub, ri.name)
        expect(got == want, f"{method} {target} -> {want}" + ("" if got == want else f" (got {got})"))
    roles = load_roles()
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        silent = lambda *_: None  # noqa: E731
        expect(check(d, roles, silent) == 1, "no logs at all fails")
        (d / "drain.log").write_text(GOOD_LOG)
        report: list[str] = []
        expect(check(d, roles, report.append) == 0, "a log of the handler's drain passes")
        if failures:
            print("\n".join(report))
        (d / "extra.log").write_text("DELETE /api/v1/namespaces/default/events/x\n")
        report = []
        expect(check(d, roles, report.append) == 1 and any("DENIED" in r and "events" in r for r in report),
               "a request the ClusterRole does not allow (delete events) fails, naming it")
        (d / "extra.log").write_text("PUT /api/v1/nodes/node-a/status\n")
        expect(check(d, roles, silent) == 1, "update nodes/status (PUT) fails: the role grants patch only")
        (d / "extra.log").write_text("GET /api/v1/secrets\n")
        expect(check(d, roles, silent) == 1, "a request the ClusterRole does not allow (list secrets) fails")
        (d / "extra.log").write_text("PUT /api/v1/nodes/node-a\n")
        expect(check(d, roles, silent) == 1, "update nodes (PUT) fails: the role grants patch only")
        (d / "extra.log").unlink()
        (d / "drain.log").write_text(GOOD_LOG.replace("PATCH /api/v1/nodes/node-a/status\n", ""))
        report = []
        expect(check(d, roles, report.append) == 1 and any("UNUSED" in r and "nodes/status" in r for r in report),
               "a rule no request uses (patch nodes/status) fails, naming it")
        (d / "drain.log").write_text(GOOD_LOG.replace("DELETE /api/v1/namespaces/shop/pods/web-2\n", ""))
        report = []
        expect(check(d, roles, report.append) == 1 and any("UNUSED" in r and "delete pods" in r for r in report),
               "a rule no request uses (delete pods) fails, naming it")
        (d / "drain.log").write_text(GOOD_LOG + "FETCH the pods\n")
        expect(check(d, roles, silent) == 1, "a malformed line fails")
        (d / "drain.log").write_text(GOOD_LOG)
        wide = [Role("synthetic wildcard role", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])]
        expect(check(d, wide, silent) == 1, "a wildcard rule fails (not least privilege)")
    surge_roles = load_surge_roles()
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        silent = lambda *_: None  # noqa: E731
        (d / "drain.log").write_text(GOOD_LOG)
        (d / f"{SURGE_PREFIX}drain.log").write_text(GOOD_LOG + SURGE_LOG)
        report = []
        expect(check(d, roles, report.append, surge_roles) == 0, "a SURGE_BLOCKED log passes the roles with the rule")
        if failures:
            print("\n".join(report))
        (d / "drain.log").write_text(GOOD_LOG + SURGE_LOG)
        report = []
        expect(check(d, roles, report.append, surge_roles) == 1
               and any("DENIED" in r and "deployments" in r and "default settings" not in r for r in report),
               "the same requests without SURGE_BLOCKED are denied by the default roles")
        (d / "drain.log").write_text(GOOD_LOG)
        (d / f"{SURGE_PREFIX}drain.log").write_text(GOOD_LOG + "GET /apis/apps/v1/namespaces/shop/deployments/web\n")
        report = []
        expect(check(d, roles, report.append, surge_roles) == 1
               and any("UNUSED" in r and "deployments" in r and "patch" in r for r in report),
               "a SURGE_BLOCKED rule no request uses (patch deployments) fails")
        (d / f"{SURGE_PREFIX}drain.log").write_text(GOOD_LOG + SURGE_LOG
                                                   + "PATCH /apis/apps/v1/namespaces/data/statefulsets/db\n")
        expect(check(d, roles, silent, surge_roles) == 1, "patching a StatefulSet is denied even with SURGE_BLOCKED")
        (d / f"{SURGE_PREFIX}drain.log").unlink()
        expect(check(d, roles, silent, surge_roles) == 1, "no SURGE_BLOCKED log fails")
    budgeted_roles = load_surge_roles(budgeted=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        silent = lambda *_: None  # noqa: E731
        (d / "drain.log").write_text(GOOD_LOG)
        (d / f"{SURGE_PREFIX}drain.log").write_text(GOOD_LOG + SURGE_LOG)
        (d / f"{BUDGETED_PREFIX}drain.log").write_text(GOOD_LOG + BUDGETED_LOG)
        report = []
        expect(check(d, roles, report.append, surge_roles, budgeted_roles) == 0,
               "a SURGE_BLOCKED=budgeted log passes the roles with both rules")
        if failures:
            print("\n".join(report))
        (d / f"{SURGE_PREFIX}drain.log").write_text(GOOD_LOG + BUDGETED_LOG)
        report = []
        expect(check(d, roles, report.append, surge_roles, budgeted_roles) == 1
               and any("DENIED" in r and "poddisruptionbudgets" in r for r in report),
               "listing budgets with SURGE_BLOCKED=true is denied: only budgeted has the rule")
        (d / f"{SURGE_PREFIX}drain.log").write_text(GOOD_LOG + SURGE_LOG)
        (d / f"{BUDGETED_PREFIX}drain.log").write_text(GOOD_LOG + SURGE_LOG)
        report = []
        expect(check(d, roles, report.append, surge_roles, budgeted_roles) == 1
               and any("UNUSED" in r and "poddisruptionbudgets" in r for r in report),
               "a budgeted rule no request uses (list poddisruptionbudgets) fails")
    print(f"rbac-check self-test: {len(REQUEST_INFO_CASES) + 18 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log_dir", nargs="?", default=str(lib.ROOT / "target" / "api-requests"))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    return check(pathlib.Path(args.log_dir), load_roles(), surge_roles=load_surge_roles(),
                 budgeted_roles=load_surge_roles(budgeted=True))


if __name__ == "__main__":
    sys.exit(main())
