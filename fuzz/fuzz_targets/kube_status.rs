//! The `kind: Status` body of a failed API call, and the error the client builds from it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::http::Response;
use spot_termination_notice_handler::kube::status_error;

fuzz_target!(|data: &[u8]| {
    let [code, retry @ ..] = data else {
        return;
    };
    let (retry, body) = retry.split_at(retry.len().min(2));
    let status = [400, 403, 404, 409, 410, 422, 429, 500, 503][*code as usize % 9];
    let mut headers = Vec::new();
    if let [r, ..] = retry {
        headers.push(("Retry-After".to_string(), format!("{}", i32::from(*r) - 20)));
    }
    let resp = Response {
        status,
        headers,
        body: body.to_vec(),
    };
    let e = status_error("evict pod a/b".to_string(), &resp);
    assert_eq!(e.code(), Some(status));
    let _ = (
        e.is_not_found(),
        e.is_conflict(),
        e.is_gone(),
        e.is_budget_blocked(),
    );
    let _ = (
        e.is_multiple_budgets(),
        e.is_namespace_terminating(),
        e.cause_message(),
    );
    // A Retry-After header that is a number of seconds wins over the body's.
    let header = resp
        .headers
        .first()
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if let Some(h) = header {
        assert_eq!(e.retry_after().map(|d| d.as_secs()), Some(h));
    }
    let _ = e.to_string();
});
