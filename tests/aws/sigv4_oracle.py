#!/usr/bin/env python3
"""botocore's SigV4 signer as an oracle for src/sigv4.rs (tests/sigv4_oracle.rs).

Reads a JSON list of cases on stdin; each case: method, url, headers ([[name, value], ...]),
body (text), region, service, access_key, secret_key, token (or null), timestamp
(YYYYMMDDTHHMMSSZ). Writes a JSON list of {canonical_request, string_to_sign, signature,
authorization, x_amz_date, x_amz_security_token}: the steps of botocore.auth.SigV4Auth.add_auth,
at the fixed time. Also signs once through add_auth itself (with botocore's clock pinned) and
checks it gives the same Authorization header.
"""
import datetime
import json
import sys

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def request(case):
    return AWSRequest(
        method=case["method"],
        url=case["url"],
        data=case["body"].encode("utf-8"),
        headers={k: v for k, v in case["headers"]},
    )


def sign(case):
    creds = Credentials(case["access_key"], case["secret_key"], case.get("token"))
    auth = SigV4Auth(creds, case["service"], case["region"])
    req = request(case)
    # add_auth, step by step, at the case's time.
    req.context["timestamp"] = case["timestamp"]
    auth._modify_request_before_signing(req)
    canonical_request = auth.canonical_request(req)
    string_to_sign = auth.string_to_sign(req, canonical_request)
    signature = auth.signature(string_to_sign, req)
    auth._inject_signature_to_request(req, signature)
    # The public path, with botocore's clock pinned to the same instant.
    pinned = datetime.datetime.strptime(case["timestamp"], "%Y%m%dT%H%M%SZ")
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: pinned
    try:
        again = request(case)
        auth.add_auth(again)
    finally:
        botocore.auth.get_current_datetime = saved
    assert again.headers["Authorization"] == req.headers["Authorization"], "add_auth disagrees"
    return {
        "canonical_request": canonical_request,
        "string_to_sign": string_to_sign,
        "signature": signature,
        "authorization": req.headers["Authorization"],
        "x_amz_date": req.headers["X-Amz-Date"],
        "x_amz_security_token": req.headers.get("X-Amz-Security-Token"),
    }


json.dump([sign(c) for c in json.load(sys.stdin)], sys.stdout)
