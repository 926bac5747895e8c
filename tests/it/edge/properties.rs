//! Property tests over the edge: the event parser, the image-reference parser and the follow
//! (tag) matcher take arbitrary input without panicking, and nothing that fails validation
//! comes out as a deployable push. Pure: no AWS at all.

use proptest::prelude::*;
use pushdeploy::config::Config;
use pushdeploy::event::{is_valid_repository, is_valid_tag, parse_push, Digest};
use pushdeploy::follow::{followers, TaggedService};
use pushdeploy::image::ImageRef;
use pushdeploy::policy::{TagPolicy, Version};
use pushdeploy::tags::{TAG_REPOSITORY, TAG_TAG};
use serde_json::{json, Map, Value};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Push-shaped events whose fields are drawn from near-miss values, so that the parser's
/// checks, not serde, do the rejecting.
fn push_like() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        Just(None),
        ".{0,20}".prop_map(Some),
        "[a-z0-9._/-]{0,12}".prop_map(Some)
    ];
    let digest = prop_oneof![
        Just(None),
        ".{0,80}".prop_map(Some),
        "sha256:[0-9a-fA-F]{60,68}".prop_map(Some),
        Just(Some(format!("sha256:{}", "a".repeat(64)))),
    ];
    (
        prop_oneof![Just("PUSH".to_string()), ".{0,8}"],
        prop_oneof![Just("SUCCESS".to_string()), ".{0,8}"],
        text.clone(),
        text,
        digest,
        prop_oneof![Just("123456789012".to_string()), ".{0,14}"],
        prop_oneof![Just("e-1".to_string()), ".{0,20}"],
    )
        .prop_map(|(action, result, repository, tag, digest, account, id)| {
            json!({
                "version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
                "account": account, "time": "2026-11-26T12:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"action-type": action, "result": result, "repository-name": repository,
                           "image-tag": tag, "image-digest": digest}
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_json_is_parsed_or_refused_without_panicking(event in arbitrary_json()) {
        let _ = parse_push(event);
    }

    #[test]
    fn only_fully_valid_pushes_come_out(event in push_like()) {
        if let Ok(push) = parse_push(event.clone()) {
            let detail = &event["detail"];
            prop_assert_eq!(detail["action-type"].as_str(), Some("PUSH"));
            prop_assert_eq!(detail["result"].as_str(), Some("SUCCESS"));
            prop_assert!(is_valid_tag(&push.tag));
            prop_assert!(is_valid_repository(&push.repository));
            prop_assert!(Digest::parse(push.digest.as_str()).is_ok());
            prop_assert_eq!(push.account.len(), 12);
            prop_assert!(!push.event_id.contains('#'));
        }
    }

    #[test]
    fn image_references_parse_without_panicking_and_pin_to_exactly_the_digest(image in ".{0,120}", registry in "[a-z0-9.:-]{0,30}") {
        let digest = Digest::parse(&format!("sha256:{}", "c".repeat(64))).unwrap();
        for candidate in [image.clone(), format!("{registry}/{image}")] {
            if let Some(reference) = ImageRef::parse(&candidate) {
                let pinned = reference.pinned_to(&digest);
                let suffix = format!("@{}", digest.as_str());
                prop_assert!(pinned.ends_with(&suffix));
                let again = ImageRef::parse(&pinned);
                prop_assert!(again.is_some(), "{} does not parse again", pinned);
                let again = again.unwrap();
                prop_assert_eq!(again.digest.as_deref(), Some(digest.as_str()));
            }
        }
    }

    #[test]
    fn the_tag_matcher_only_selects_services_whose_policy_admits_the_tag(
        tags in prop::collection::vec((prop_oneof![Just("web".to_string()), ".{0,6}"], prop::option::of(prop_oneof![Just("latest".to_string()), ".{0,6}"]), "[a-z]{1,4}"), 0..12),
        pushed_tag in prop_oneof![Just("latest".to_string()), "[a-z0-9]{1,6}"],
    ) {
        let push = parse_push(json!({
            "version": "0", "id": "e-1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-26T12:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "web", "image-tag": pushed_tag,
                       "image-digest": format!("sha256:{}", "a".repeat(64))}
        })).unwrap();
        let tagged: Vec<TaggedService> = tags.iter().enumerate().map(|(i, (repository, tag, cluster))| {
            let mut t: std::collections::BTreeMap<String, String> = [(TAG_REPOSITORY.to_string(), repository.clone())].into_iter().collect();
            if let Some(tag) = tag { t.insert(TAG_TAG.to_string(), tag.clone()); }
            TaggedService { arn: format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/s{i}"), tags: t }
        }).collect();
        let config = Config { deploy_timeout: std::time::Duration::from_secs(60), ..Config::for_table("t") };
        for follower in followers(&push, &tagged, &config).into_iter().flatten() {
            let index: usize = follower.key.service[1..].parse().unwrap();
            let (repository, tag, _) = &tags[index];
            prop_assert_eq!(repository, "web");
            let policy = TagPolicy::parse(tag.as_deref().unwrap_or("latest")).unwrap();
            prop_assert!(policy.admits(&push.tag), "{} does not admit {}", policy, push.tag);
            if let TagPolicy::Exact(exact) = &policy {
                prop_assert_eq!(exact, &push.tag);
            }
        }
    }

    #[test]
    fn a_semver_policy_never_selects_a_version_that_is_not_higher(
        running in "v?[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-(rc|beta)\\.[0-9])?",
        pushed in "v?[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-(rc|beta)\\.[0-9])?",
        level in prop_oneof![Just("semver:major"), Just("semver:minor"), Just("semver:patch")],
    ) {
        let policy = TagPolicy::parse(level).unwrap();
        let (from, to) = (Version::parse(&running), Version::parse(&pushed));
        if let (Ok(()), Some(from), Some(to)) = (policy.allows_move(Some(&running), &pushed), &from, &to) {
            prop_assert_eq!(to.cmp_precedence(from), std::cmp::Ordering::Greater, "{} -> {}", running, pushed);
            prop_assert!(to.pre.is_none(), "a pre-release was selected: {}", pushed);
            if level != "semver:major" {
                prop_assert_eq!(to.major, from.major);
            }
            if level == "semver:patch" {
                prop_assert_eq!(to.minor, from.minor);
            }
        }
    }
}
