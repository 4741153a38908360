//! AWS credentials: the metadata service's / container agent's JSON document and the STS
//! `AssumeRoleWithWebIdentity` XML answer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::credentials::{parse_assume_role, parse_document};

fuzz_target!(|data: &[u8]| {
    match parse_document(data, "iam/security-credentials/role") {
        Ok((keys, expires)) => {
            assert!(!keys.access_key_id.is_empty());
            assert!(!keys.secret_access_key.expose().is_empty());
            if let Some(t) = expires {
                stnh_fuzz::check_time(t, "expiration");
            }
            // A reference parser reads the same document, and the same key id when the
            // document names it once.
            // (Bytes that are not UTF-8, or numbers serde_json finds out of range, inside a
            // member we skip do not matter to us.)
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
                assert!(std::str::from_utf8(data).is_err() || stnh_fuzz::is_json(data), "not JSON");
                return;
            };
            let obj = v.as_object().expect("an object");
            let once = data.windows(13).filter(|w| w == b"\"AccessKeyId\"").count() == 1;
            if let (true, Some(id)) = (once, obj.get("AccessKeyId").and_then(|v| v.as_str())) {
                assert_eq!(id, keys.access_key_id);
            }
        }
        Err(e) => {
            // The message names no value of the document.
            assert!(!e.message.contains('\n'), "{:?}", e.message);
            assert!(e.message.len() < 300, "{:?}", e.message);
        }
    }
    let doc = String::from_utf8_lossy(data);
    if let Ok((keys, expires)) = parse_assume_role(&doc) {
        assert!(!keys.access_key_id.is_empty() && keys.session_token.is_some());
        if let Some(t) = expires {
            stnh_fuzz::check_time(t, "expiration");
        }
    }
});
