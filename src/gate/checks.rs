//! The checks a gate runs for a service, as configured where the mapping lives: service tags or
//! `PUSHDEPLOY_RULES`. ECS tag values allow only letters, digits, spaces and `+ - = . _ : / @`,
//! so the syntax uses nothing else (no `?`, `&`, `%` or `,`):
//!
//! - `pushdeploy:smoke` = `/healthz 200 500ms x3`: GET the path, expect the status, within the
//!   latency budget, that many times in a row. Several checks are joined by ` + `. Omitted:
//!   status 200, budget 1000ms, x3.
//! - `pushdeploy:smoke-url` = `http://internal-web.example:8080`: the test listener's base URL.
//! - `pushdeploy:alarms` = `web-5xx web-p99 5m`: CloudWatch alarms that must be OK, for 5
//!   minutes, at every stage the hook runs at ([`super::alarms`]).

use super::alarms::{parse_alarms, AlarmCheck, TAG_ALARMS};
use crate::config::Rule;
use aws_sdk_ecs::types::Service;
use std::time::Duration;

/// The service tag that holds the smoke checks.
pub const TAG_SMOKE: &str = "pushdeploy:smoke";
/// The service tag that holds the test listener's base URL.
pub const TAG_SMOKE_URL: &str = "pushdeploy:smoke-url";

/// One HTTP smoke check: GET `path` answers `status` within `budget`, `successes` times in a
/// row (one try per invocation of the hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmokeCheck {
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) budget: Duration,
    pub(crate) successes: u32,
}

/// The checks configured for one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GateChecks {
    pub(crate) smoke: Vec<SmokeCheck>,
    pub(crate) base_url: Option<String>,
    /// Every alarm the tag and the rules name, held OK for the longest time any of them asks.
    pub(crate) alarms: Option<AlarmCheck>,
}

impl GateChecks {
    pub(crate) fn is_empty(&self) -> bool {
        self.smoke.is_empty() && self.alarms.is_none()
    }

    fn add_alarms(&mut self, more: AlarmCheck) {
        match &mut self.alarms {
            Some(alarms) => {
                alarms.ok_for = alarms.ok_for.max(more.ok_for);
                for name in more.names {
                    if !alarms.names.contains(&name) {
                        alarms.names.push(name);
                    }
                }
            }
            None => self.alarms = Some(more),
        }
    }
}

/// How to configure checks, for the fail-closed answer and its notification.
pub(crate) const HOW_TO_CONFIGURE: &str = "tag the service pushdeploy:smoke = \"/healthz 200 500ms x3\" and pushdeploy:smoke-url = \"http://<test listener>:<port>\", and/or pushdeploy:alarms = \"<alarm> <alarm> 5m\" (or give a PUSHDEPLOY_RULES entry for it \"smoke\", \"smoke_url\" and/or \"alarms\")";

/// The checks for `service`: its tags, then the rules entries that name it (cluster and
/// service, by name or ARN). An `Err` says which setting does not read: the gate fails closed.
pub(crate) fn configured(service: &Service, rules: &[Rule]) -> Result<GateChecks, String> {
    let tag = |key: &str| {
        service
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    let mut checks = GateChecks::default();
    let mut add =
        |smoke: Option<String>, url: Option<String>, alarms: Option<String>, whose: &str| {
            if let Some(text) = alarms {
                let parsed =
                    parse_alarms(&text).map_err(|e| format!("{whose} alarms {text:?}: {e}"))?;
                checks.add_alarms(parsed);
            }
            if let Some(text) = smoke {
                let parsed =
                    parse_smoke(&text).map_err(|e| format!("{whose} smoke {text:?}: {e}"))?;
                checks.smoke.extend(parsed);
            }
            if let Some(url) = url {
                let url = parse_base_url(&url).map_err(|e| format!("{whose} smoke-url: {e}"))?;
                checks.base_url.get_or_insert(url);
            }
            Ok::<(), String>(())
        };
    add(tag(TAG_SMOKE), tag(TAG_SMOKE_URL), tag(TAG_ALARMS), "tag")?;
    for (index, rule) in rules.iter().enumerate() {
        if rule_names(rule, service) {
            let whose = format!("PUSHDEPLOY_RULES entry {index}");
            add(
                rule.smoke.clone(),
                rule.smoke_url.clone(),
                rule.alarms.clone(),
                &whose,
            )?;
        }
    }
    Ok(checks)
}

fn rule_names(rule: &Rule, service: &Service) -> bool {
    let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let cluster = service.cluster_arn().map(last);
    let name = service.service_name().map(str::to_string);
    cluster.as_deref() == Some(last(&rule.cluster).as_str())
        && name.as_deref() == Some(last(&rule.service).as_str())
}

/// `/healthz 200 500ms x3 + /ready`: one or more checks.
pub(crate) fn parse_smoke(text: &str) -> Result<Vec<SmokeCheck>, String> {
    text.split(" + ").map(parse_one).collect()
}

fn parse_one(text: &str) -> Result<SmokeCheck, String> {
    let mut words = text.split_whitespace();
    let path = words.next().ok_or("an empty check")?;
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not a path (it must start with /)"));
    }
    let mut check = SmokeCheck {
        path: path.to_string(),
        status: 200,
        budget: Duration::from_millis(1000),
        successes: 3,
    };
    for word in words {
        if let Some(n) = word.strip_prefix('x') {
            check.successes = n
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| format!("{word:?}: successes are x1 to x100"))?;
        } else if let Some(ms) = word.strip_suffix("ms") {
            check.budget = Duration::from_millis(budget(ms, word)?);
        } else if let Some(s) = word.strip_suffix('s') {
            check.budget = Duration::from_secs(budget(s, word)?);
        } else if word.len() == 3 {
            check.status = word
                .parse()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| format!("{word:?} is not an HTTP status"))?;
        } else {
            return Err(format!(
                "{word:?} is none of: a status (200), a budget (500ms, 2s), a count (x3)"
            ));
        }
    }
    Ok(check)
}

fn budget(number: &str, word: &str) -> Result<u64, String> {
    number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{word:?} is not a latency budget (500ms, 2s)"))
}

/// `http://host[:port][/prefix]` or `https://...`, kept without a trailing `/`.
pub(crate) fn parse_base_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| format!("{text:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{text:?} names no host"));
    }
    Ok(text.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::Tag;

    #[test]
    fn the_tag_syntax_reads_with_defaults() {
        let checks = parse_smoke("/healthz 200 500ms x3 + /ready 204 + /slow 2s x1").unwrap();
        assert_eq!(checks.len(), 3);
        assert_eq!(
            checks[0],
            SmokeCheck {
                path: "/healthz".into(),
                status: 200,
                budget: Duration::from_millis(500),
                successes: 3
            }
        );
        assert_eq!(
            (checks[1].status, checks[1].budget, checks[1].successes),
            (204, Duration::from_secs(1), 3)
        );
        assert_eq!(
            (checks[2].budget, checks[2].successes),
            (Duration::from_secs(2), 1)
        );
    }

    #[test]
    fn what_does_not_read_says_why() {
        for (text, says) in [
            ("healthz", "not a path"),
            ("/h 2000", "none of"),
            ("/h 999", "not an HTTP status"),
            ("/h x0", "x1 to x100"),
            ("/h 0ms", "not a latency budget"),
            ("", "an empty check"),
        ] {
            let err = parse_smoke(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("http://").is_err());
        assert_eq!(
            parse_base_url("http://alb:8080/").unwrap(),
            "http://alb:8080"
        );
    }

    fn service(tags: &[(&str, &str)]) -> Service {
        let mut b = Service::builder()
            .service_name("web")
            .cluster_arn("arn:aws:ecs:us-east-1:1:cluster/prod");
        for (k, v) in tags {
            b = b.tags(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn tags_and_rules_both_configure_and_tags_name_the_url_first() {
        let rule: Rule = serde_json::from_str(
            r#"{"repository":"web","tag":"latest","cluster":"prod","service":"web","smoke":"/ready","smoke_url":"http://rule:1"}"#,
        )
        .unwrap();
        let other: Rule = serde_json::from_str(
            r#"{"repository":"web","tag":"latest","cluster":"prod","service":"api","smoke":"/api"}"#,
        )
        .unwrap();
        let tagged = service(&[(TAG_SMOKE, "/healthz x2"), (TAG_SMOKE_URL, "http://tag:2")]);
        let checks = configured(&tagged, &[rule.clone(), other.clone()]).unwrap();
        let paths: Vec<&str> = checks.smoke.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/healthz", "/ready"]);
        assert_eq!(checks.base_url.as_deref(), Some("http://tag:2"));
        assert!(configured(&service(&[]), &[other]).unwrap().is_empty());
        let broken = service(&[(TAG_SMOKE, "/h 20x")]);
        assert!(configured(&broken, &[])
            .unwrap_err()
            .starts_with("tag smoke"));
    }

    #[test]
    fn alarms_from_the_tag_and_the_rules_add_up() {
        let rule: Rule = serde_json::from_str(
            r#"{"repository":"web","tag":"latest","cluster":"prod","service":"web","alarms":"web-p99 10m"}"#,
        )
        .unwrap();
        let tagged = service(&[(TAG_ALARMS, "web-5xx web-p99 5m")]);
        let checks = configured(&tagged, &[rule]).unwrap();
        assert!(!checks.is_empty());
        let alarms = checks.alarms.unwrap();
        assert_eq!(alarms.names, ["web-5xx", "web-p99"]);
        assert_eq!(alarms.ok_for, Duration::from_secs(600));
        let broken = service(&[(TAG_ALARMS, "10m")]);
        assert!(configured(&broken, &[])
            .unwrap_err()
            .starts_with("tag alarms"));
    }
}
