//! URL settings (metadata services, the API server, webhooks), proxy URLs, `NO_PROXY` lists and
//! a Node's `providerID`.
//!
//! Holds: a parsed URL names a host and a port from 1 to 65535, its path is empty or starts
//! with `/` and has no trailing slash, and written back it parses to itself; a proxy's `Debug`
//! never shows its credentials.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::from_provider_id;
use spot_termination_notice_handler::http::{no_proxy_matches, Proxy, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Url::parse(s) {
        Ok(u) => {
            assert!(!u.host.is_empty() && u.port >= 1);
            assert!(u.path.is_empty() || (u.path.starts_with('/') && !u.path.ends_with('/')));
            assert!(!s.contains(|c: char| c.is_whitespace() || c.is_control()));
            let host = if u.host.contains(':') {
                format!("[{}]", u.host)
            } else {
                u.host.clone()
            };
            let again = format!(
                "{}://{host}:{}{}",
                if u.https { "https" } else { "http" },
                u.port,
                u.path
            );
            assert_eq!(Url::parse(&again).as_ref(), Ok(&u), "{s:?} -> {again:?}");
        }
        Err(why) => assert!(!why.is_empty()),
    }
    match Proxy::parse(s) {
        Ok(p) => assert!(format!("{p:?}").starts_with("http://")),
        Err(e) => assert!(!e.is_empty()),
    }
    // A password planted in the URL shows neither in the proxy nor in the error.
    const CANARY: &str = "Kq9Zcanary";
    let mut s = s.to_string();
    while s.contains(CANARY) {
        s = s.replace(CANARY, "");
    }
    if let Some(at) = s.rfind('@') {
        let mut planted = s.clone();
        planted.insert_str(at, CANARY);
        match Proxy::parse(&planted) {
            Ok(p) => assert!(!format!("{p:?}").contains(CANARY), "{p:?}"),
            Err(e) => assert!(!e.contains(CANARY), "{e}"),
        }
    }
    if let Some((list, host)) = s.split_once('\n') {
        let _ = no_proxy_matches(list, host);
    }
    let _ = from_provider_id(&s);
});
