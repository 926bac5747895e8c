//! Which services follow a push: service tags (the mapping lives with the service) merged with
//! `PUSHDEPLOY_RULES` (central config), one entry per service.

use crate::config::{resource_name, Config};
use crate::event::Push;
use crate::policy::TagPolicy;
use crate::tags::{TAG_CONTAINER, TAG_REPOSITORY, TAG_TAG};
use std::collections::BTreeMap;

/// The tag a service follows when it does not say.
pub(crate) const DEFAULT_TAG: &str = "latest";

/// A service by cluster name and service name (unique within one account and region).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub(crate) cluster: String,
    /// The service's name, never its ARN.
    pub service: String,
}

/// A service found by the Resource Groups Tagging API, with all its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedService {
    /// The service's ARN, as the Tagging API lists it.
    pub arn: String,
    /// Every tag the service carries, by key.
    pub tags: BTreeMap<String, String>,
}

/// A service that follows the pushed repository and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    /// The service to deploy.
    pub key: ServiceKey,
    /// The container to update, when the service or rule names one.
    pub(crate) container: Option<String>,
    /// The tags it follows; the push's tag is one of them.
    pub(crate) policy: TagPolicy,
    /// Where the follow came from, for the log: "service tags", "PUSHDEPLOY_RULES[0]".
    pub(crate) via: Vec<String>,
}

/// A service that matched the push but will not be deployed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    pub(crate) key: ServiceKey,
    pub(crate) reason: String,
    /// A configuration problem (fails) rather than a deliberate exclusion (skips).
    pub(crate) is_error: bool,
}

/// `arn:<partition>:ecs:<region>:<account>:service/<cluster>/<service>` -> its key. The old
/// ARN format without a cluster (retired by ECS in 2021) cannot be described, so it is rejected.
pub(crate) fn service_key_from_arn(arn: &str) -> Option<ServiceKey> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("service"), Some(cluster), Some(service), None)
            if !cluster.is_empty() && !service.is_empty() =>
        {
            Some(ServiceKey {
                cluster: cluster.to_string(),
                service: service.to_string(),
            })
        }
        _ => None,
    }
}

/// A follow found through the service's own tags (the Resource Groups Tagging API).
pub(crate) const VIA_TAGS: &str = "service tags";

impl Follower {
    /// Found only through its tags: the Tagging API, which lists resources that were tagged
    /// before and may lag behind a deletion, not through a rule someone wrote.
    pub(crate) fn only_by_tags(&self) -> bool {
        self.via.iter().all(|v| v == VIA_TAGS)
    }
}

/// The services that follow `push`, one entry each: found through their tags and through
/// `PUSHDEPLOY_RULES`, merged where both name a service (they must agree on the container and
/// the policy), and excluded with a reason when they cannot be deployed or lie outside
/// `PUSHDEPLOY_CLUSTERS`.
pub fn followers(
    push: &Push,
    tagged: &[TaggedService],
    config: &Config,
) -> Vec<Result<Follower, Excluded>> {
    let (by_tags, unusable) = found_by_tags(push, tagged);
    let mut by_key: BTreeMap<ServiceKey, Result<Follower, Excluded>> = BTreeMap::new();
    for found in by_tags.into_iter().chain(found_by_rules(push, config)) {
        let key = found.key.clone();
        let merged = merge(by_key.remove(&key), found);
        by_key.insert(key, merged);
    }
    unusable
        .into_iter()
        .map(Err)
        .chain(by_key.into_values())
        .map(|selection| within_clusters(selection, config.clusters.as_ref()))
        .collect()
}

/// The services whose tags follow the push; and those whose tags would, but cannot be
/// deployed (a bad tag policy, an ARN without a cluster), each with its reason.
fn found_by_tags(push: &Push, tagged: &[TaggedService]) -> (Vec<Follower>, Vec<Excluded>) {
    let (mut found, mut unusable) = (Vec::new(), Vec::new());
    for service in tagged {
        if service.tags.get(TAG_REPOSITORY) != Some(&push.repository) {
            continue;
        }
        let raw_policy = service
            .tags
            .get(TAG_TAG)
            .map(String::as_str)
            .unwrap_or(DEFAULT_TAG);
        let key = service_key_from_arn(&service.arn);
        let policy = match (TagPolicy::parse(raw_policy), &key) {
            (Ok(policy), _) => policy,
            // A bad policy is this service's problem only: said, and the others go on.
            (Err(bad), Some(key)) => {
                let reason = format!("service tag {TAG_TAG}: {bad}");
                unusable.push(Excluded {
                    key: key.clone(),
                    reason,
                    is_error: true,
                });
                continue;
            }
            (Err(_), None) => continue,
        };
        if !policy.admits(&push.tag) {
            continue;
        }
        let Some(key) = key else {
            unusable.push(Excluded {
                key: ServiceKey { cluster: String::new(), service: service.arn.clone() },
                reason: "the service ARN has no cluster (old ARN format); opt the account into the long ECS ARN format".into(),
                is_error: true,
            });
            continue;
        };
        found.push(Follower {
            key,
            container: service.tags.get(TAG_CONTAINER).cloned(),
            policy,
            via: vec![VIA_TAGS.to_string()],
        });
    }
    (found, unusable)
}

/// The services `PUSHDEPLOY_RULES` has follow the push.
fn found_by_rules(push: &Push, config: &Config) -> Vec<Follower> {
    let mut found = Vec::new();
    for (index, rule) in config.rules.iter().enumerate() {
        // Rules' policies were checked at start (Config::from_env).
        let Ok(policy) = TagPolicy::parse(&rule.tag) else {
            continue;
        };
        if rule.repository == push.repository && policy.admits(&push.tag) {
            found.push(Follower {
                key: ServiceKey {
                    cluster: resource_name(&rule.cluster).to_string(),
                    service: resource_name(&rule.service).to_string(),
                },
                container: rule.container.clone(),
                policy,
                via: vec![format!("PUSHDEPLOY_RULES[{index}]")],
            });
        }
    }
    found
}

/// One more way `found` follows a service already found (`earlier`): they must agree on the
/// container and the policy, or the service is excluded until someone makes them agree.
fn merge(
    earlier: Option<Result<Follower, Excluded>>,
    found: Follower,
) -> Result<Follower, Excluded> {
    let mut f = match earlier {
        None => return Ok(found),
        Some(Err(excluded)) => return Err(excluded),
        Some(Ok(f)) => f,
    };
    let via = found.via.join(" and ");
    let disagree = |reason: String| Excluded {
        key: found.key.clone(),
        reason,
        is_error: true,
    };
    match (&f.container, &found.container) {
        (Some(a), Some(b)) if a != b => Err(disagree(format!(
            "{} name container {a:?} but {via} names {b:?}; make them agree",
            f.via.join(" and ")
        ))),
        _ if f.policy != found.policy => Err(disagree(format!(
            "{} follow tags {} but {via} follows {}; make them agree",
            f.via.join(" and "),
            f.policy,
            found.policy
        ))),
        _ => {
            f.container = f.container.or(found.container);
            f.via.extend(found.via);
            Ok(f)
        }
    }
}

/// A follower outside `PUSHDEPLOY_CLUSTERS` is excluded: a deliberate skip, not an error.
fn within_clusters(
    selection: Result<Follower, Excluded>,
    clusters: Option<&std::collections::BTreeSet<String>>,
) -> Result<Follower, Excluded> {
    match (selection, clusters) {
        (Ok(f), Some(clusters)) if !clusters.contains(&f.key.cluster) => Err(Excluded {
            reason: format!("cluster {:?} is not in PUSHDEPLOY_CLUSTERS", f.key.cluster),
            key: f.key,
            is_error: false,
        }),
        (selection, _) => selection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rule;
    use crate::event::Digest;
    use chrono::TimeZone;

    fn push(repository: &str, tag: &str) -> Push {
        Push {
            event_id: "e".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            pushed_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            manifest_media_type: None,
            artifact_media_type: None,
            replicated_from: None,
        }
    }

    fn tagged(cluster: &str, service: &str, tags: &[(&str, &str)]) -> TaggedService {
        TaggedService {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{service}"),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn config(rules: Vec<Rule>, clusters: Option<&[&str]>) -> Config {
        Config {
            clusters: clusters.map(|c| c.iter().map(|s| s.to_string()).collect()),
            rules,
            ..Config::for_table("t")
        }
    }

    fn rule(cluster: &str, service: &str, tag: &str, container: Option<&str>) -> Rule {
        Rule {
            repository: "web".into(),
            tag: tag.into(),
            cluster: cluster.into(),
            service: service.into(),
            container: container.map(Into::into),
            smoke: None,
            smoke_url: None,
            alarms: None,
        }
    }

    fn keys(selection: &[Result<Follower, Excluded>]) -> Vec<String> {
        selection
            .iter()
            .map(|s| match s {
                Ok(f) => format!("{}/{}", f.key.cluster, f.key.service),
                Err(e) => format!("!{}/{}", e.key.cluster, e.key.service),
            })
            .collect()
    }

    #[test]
    fn tags_default_to_latest_and_must_match_exactly() {
        let services = [
            tagged("prod", "a", &[(TAG_REPOSITORY, "web")]),
            tagged("prod", "b", &[(TAG_REPOSITORY, "web"), (TAG_TAG, "v1")]),
            tagged("prod", "c", &[(TAG_REPOSITORY, "api")]),
            tagged("prod", "d", &[(TAG_TAG, "latest")]),
        ];
        assert_eq!(
            keys(&followers(
                &push("web", "latest"),
                &services,
                &config(vec![], None)
            )),
            ["prod/a"]
        );
        assert_eq!(
            keys(&followers(
                &push("web", "v1"),
                &services,
                &config(vec![], None)
            )),
            ["prod/b"]
        );
    }

    #[test]
    fn rules_and_tags_merge_into_one_entry_per_service() {
        let services = [tagged(
            "prod",
            "a",
            &[(TAG_REPOSITORY, "web"), (TAG_CONTAINER, "app")],
        )];
        let rules = vec![
            rule(
                "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
                "a",
                "latest",
                None,
            ),
            rule("prod", "b", "latest", Some("app")),
            rule("prod", "c", "v2", None),
        ];
        let selection = followers(&push("web", "latest"), &services, &config(rules, None));
        assert_eq!(keys(&selection), ["prod/a", "prod/b"]);
        let a = selection[0].as_ref().unwrap();
        assert_eq!(a.container.as_deref(), Some("app"));
        assert_eq!(a.via, ["service tags", "PUSHDEPLOY_RULES[0]"]);
    }

    #[test]
    fn conflicting_containers_are_an_error_not_a_guess() {
        let services = [tagged(
            "prod",
            "a",
            &[(TAG_REPOSITORY, "web"), (TAG_CONTAINER, "app")],
        )];
        let selection = followers(
            &push("web", "latest"),
            &services,
            &config(vec![rule("prod", "a", "latest", Some("web"))], None),
        );
        let excluded = selection[0].as_ref().unwrap_err();
        assert!(excluded.is_error);
        assert!(
            excluded.reason.contains("\"app\"") && excluded.reason.contains("\"web\""),
            "{}",
            excluded.reason
        );
    }

    #[test]
    fn clusters_setting_limits_both_sources() {
        let services = [
            tagged("prod", "a", &[(TAG_REPOSITORY, "web")]),
            tagged("dev", "b", &[(TAG_REPOSITORY, "web")]),
        ];
        let rules = vec![rule("dev", "c", "latest", None)];
        let selection = followers(
            &push("web", "latest"),
            &services,
            &config(rules, Some(&["prod"])),
        );
        assert_eq!(keys(&selection), ["!dev/b", "!dev/c", "prod/a"]);
        assert!(selection
            .iter()
            .filter_map(|s| s.as_ref().err())
            .all(|e| !e.is_error && e.reason.contains("PUSHDEPLOY_CLUSTERS")));
    }

    #[test]
    fn policies_select_and_a_bad_one_is_that_services_error_only() {
        let services = [
            tagged(
                "prod",
                "a",
                &[(TAG_REPOSITORY, "web"), (TAG_TAG, "semver:minor")],
            ),
            tagged(
                "prod",
                "b",
                &[(TAG_REPOSITORY, "web"), (TAG_TAG, "prefix:v1.")],
            ),
            tagged(
                "prod",
                "c",
                &[(TAG_REPOSITORY, "web"), (TAG_TAG, "semver:*")],
            ),
            tagged("prod", "d", &[(TAG_REPOSITORY, "web")]),
            tagged("prod", "e", &[(TAG_REPOSITORY, "api"), (TAG_TAG, "bad*")]),
        ];
        let selection = followers(&push("web", "v1.4.2"), &services, &config(vec![], None));
        assert_eq!(keys(&selection), ["!prod/c", "prod/a", "prod/b"]);
        let bad = selection[0].as_ref().unwrap_err();
        assert!(
            bad.is_error && bad.reason.contains("\"semver:*\""),
            "{}",
            bad.reason
        );
        // A service of another repository is not even looked at, bad policy or not.
        let rules = vec![rule("prod", "a", "any", None)];
        let selection = followers(&push("web", "v1.4.2"), &services[..1], &config(rules, None));
        let conflict = selection[0].as_ref().unwrap_err();
        assert!(
            conflict.reason.contains("semver:minor") && conflict.reason.contains("follows any"),
            "{}",
            conflict.reason
        );
    }

    #[test]
    fn service_arns() {
        assert_eq!(
            service_key_from_arn("arn:aws:ecs:us-east-1:123456789012:service/prod/web"),
            Some(ServiceKey {
                cluster: "prod".into(),
                service: "web".into()
            })
        );
        assert_eq!(
            service_key_from_arn("arn:aws:ecs:us-east-1:123456789012:service/web"),
            None
        );
        assert_eq!(service_key_from_arn("garbage"), None);
        let old = [tagged("x", "y", &[(TAG_REPOSITORY, "web")])].map(|mut t| {
            t.arn = "arn:aws:ecs:us-east-1:123456789012:service/web".into();
            t
        });
        assert!(
            followers(&push("web", "latest"), &old, &config(vec![], None))[0]
                .as_ref()
                .unwrap_err()
                .is_error
        );
    }
}
