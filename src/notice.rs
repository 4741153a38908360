//! What the cloud says: a reclaim notice with its action and deadline. Pure parsing.

use std::time::{Duration, SystemTime};

use nanoserde::DeJson;

use crate::time::{format_rfc3339, parse_rfc3339};

/// When a notice carries no usable time, AWS's documented lead time applies.
pub const DEFAULT_LEAD: Duration = Duration::from_secs(120);

/// A notice older than the machine's boot by more than this is left over from before a
/// stop/start cycle and is ignored.
const STALE_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Stable across restarts and pods: recorded on the Node so a restarted handler resumes.
    pub id: String,
    /// `terminate`, `stop` or `hibernate` (whatever AWS says; unknown actions are acted on too).
    pub action: String,
    pub deadline: SystemTime,
    /// False when the deadline was not in the notice and is `DEFAULT_LEAD` from reception.
    pub deadline_given: bool,
}

/// `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}` from `spot/instance-action`.
#[derive(DeJson)]
struct InstanceAction {
    action: String,
    time: Option<String>,
}

const KNOWN_ACTIONS: [&str; 3] = ["terminate", "stop", "hibernate"];

impl Notice {
    /// Parses the body of `spot/instance-action` (served only when a notice exists).
    pub fn from_instance_action(body: &[u8], now: SystemTime) -> Result<Notice, String> {
        let ia: InstanceAction = crate::json::parse(body).map_err(|e| {
            format!(
                "spot/instance-action: {e} (body {:?})",
                crate::json::snippet(body)
            )
        })?;
        let action = ia.action.trim().to_ascii_lowercase();
        if action.is_empty()
            || action.len() > 32
            || !action
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "spot/instance-action: expected an action such as terminate, stop or hibernate, got {:?}",
                crate::json::snippet(ia.action.as_bytes())
            ));
        }
        let time = ia.time.as_deref().and_then(parse_rfc3339);
        Ok(Notice::new("aws-spot", action, time, now))
    }

    /// Seed compatibility (`NOTICE_URL`): HTTP 200 is the notice; the body may hold the
    /// `termination-time` timestamp, or the instance-action JSON, or anything else.
    pub fn from_notice_url(body: &[u8], now: SystemTime) -> Notice {
        if let Ok(n) = Notice::from_instance_action(body, now) {
            return Notice {
                id: n.id.replacen("aws-spot", "notice-url", 1),
                ..n
            };
        }
        let time = std::str::from_utf8(body).ok().and_then(parse_rfc3339);
        Notice::new("notice-url", "terminate".to_string(), time, now)
    }

    fn new(source: &str, action: String, time: Option<SystemTime>, now: SystemTime) -> Notice {
        let id = match time {
            Some(t) => format!("{source}/{action}/{}", format_rfc3339(t)),
            None => format!("{source}/{action}/no-time"),
        };
        Notice {
            id,
            action,
            deadline: time.unwrap_or(now + DEFAULT_LEAD),
            deadline_given: time.is_some(),
        }
    }

    pub fn is_known_action(&self) -> bool {
        KNOWN_ACTIONS.contains(&self.action.as_str())
    }

    /// True when the notice's own time lies before this machine booted: a leftover from
    /// before a stop/start (AWS: "ignore a notice whose time is older than the boot time").
    pub fn is_stale(&self, boot_time: Option<SystemTime>) -> bool {
        match boot_time {
            Some(boot) if self.deadline_given => self.deadline + STALE_SLACK < boot,
            _ => false,
        }
    }
}

/// When this machine booted, from `/proc/uptime` (not namespaced, so it is the host's uptime
/// inside a container too). `None` when unreadable.
pub fn boot_time(now: SystemTime) -> Option<SystemTime> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    now.checked_sub(Duration::try_from_secs_f64(secs).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_505_722_800)
    }

    #[test]
    fn instance_action_table() {
        let t = parse_rfc3339("2017-09-18T08:22:00Z").unwrap();
        let cases: &[(&str, Result<(&str, SystemTime, bool), &str>)] = &[
            (
                r#"{"action": "terminate", "time": "2017-09-18T08:22:00Z"}"#,
                Ok(("terminate", t, true)),
            ),
            (
                r#"{"action":"stop","time":"2017-09-18T08:22:00Z"}"#,
                Ok(("stop", t, true)),
            ),
            (
                r#"{"action":"Hibernate","time":"2017-09-18T08:22:00Z","extra":[1]}"#,
                Ok(("hibernate", t, true)),
            ),
            (
                r#"{"action":"terminate"}"#,
                Ok(("terminate", now() + DEFAULT_LEAD, false)),
            ),
            (
                r#"{"action":"terminate","time":"soon"}"#,
                Ok(("terminate", now() + DEFAULT_LEAD, false)),
            ),
            (
                r#"{"action":"terminate","time":null}"#,
                Ok(("terminate", now() + DEFAULT_LEAD, false)),
            ),
            (
                r#"{"action": "terminate", "time": "2017-09-18T08:2"#,
                Err("malformed JSON"),
            ),
            (
                r#"{"time":"2017-09-18T08:22:00Z"}"#,
                Err("unexpected JSON shape"),
            ),
            (
                r#"{"action":"","time":"2017-09-18T08:22:00Z"}"#,
                Err("expected an action"),
            ),
            (
                r#"{"action":"rm -rf /","time":"2017-09-18T08:22:00Z"}"#,
                Err("expected an action"),
            ),
            ("<html>404</html>", Err("malformed JSON")),
            ("", Err("malformed JSON")),
        ];
        for (body, want) in cases {
            let got = Notice::from_instance_action(body.as_bytes(), now());
            match (got, want) {
                (Ok(n), Ok((action, deadline, given))) => {
                    assert_eq!(
                        (n.action.as_str(), n.deadline, n.deadline_given),
                        (*action, *deadline, *given),
                        "{body}"
                    );
                }
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{body}: {e}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ids_are_stable_and_distinguish_sources() {
        let body = br#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#;
        let a = Notice::from_instance_action(body, now()).unwrap();
        let b = Notice::from_instance_action(body, now() + Duration::from_secs(30)).unwrap();
        assert_eq!(a.id, "aws-spot/terminate/2017-09-18T08:22:00Z");
        assert_eq!(a.id, b.id);
        let seed = Notice::from_notice_url(b"2017-09-18T08:22:00Z", now());
        assert_eq!(seed.id, "notice-url/terminate/2017-09-18T08:22:00Z");
        assert!(seed.deadline_given);
        let seed_json = Notice::from_notice_url(body, now());
        assert_eq!(seed_json.id, "notice-url/terminate/2017-09-18T08:22:00Z");
        let seed_junk = Notice::from_notice_url(b"<html>ok</html>", now());
        assert_eq!(seed_junk.id, "notice-url/terminate/no-time");
        assert_eq!(seed_junk.deadline, now() + DEFAULT_LEAD);
    }

    #[test]
    fn stale_notices() {
        let n = Notice::from_instance_action(
            br#"{"action":"stop","time":"2017-09-18T08:22:00Z"}"#,
            now(),
        )
        .unwrap();
        let boot_after = n.deadline + Duration::from_secs(3600);
        assert!(n.is_stale(Some(boot_after)));
        assert!(!n.is_stale(Some(n.deadline - Duration::from_secs(3600))));
        assert!(!n.is_stale(None));
        let no_time = Notice::from_instance_action(br#"{"action":"stop"}"#, now()).unwrap();
        assert!(!no_time.is_stale(Some(boot_after)));
        assert!(n.is_known_action());
    }

    #[test]
    fn boot_time_is_in_the_past() {
        let now = SystemTime::now();
        let boot = boot_time(now).expect("/proc/uptime is readable on Linux");
        assert!(boot < now);
    }
}
