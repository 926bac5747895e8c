use super::*;

/// What a policy does with a push of `pushed` to a service running `running`.
fn verdict(policy: &str, running: Option<&str>, pushed: &str) -> &'static str {
    let policy = TagPolicy::parse(policy).unwrap();
    if !policy.admits(pushed) {
        return "not followed";
    }
    match policy.allows_move(running, pushed) {
        Ok(()) => "deploy",
        Err(Refusal::NotNewer(_)) => "not newer",
        Err(Refusal::Outside(_)) => "outside policy",
    }
}

#[test]
fn every_policy_by_table() {
    #[rustfmt::skip]
    let table: &[(&str, Option<&str>, &str, &str)] = &[
        // exact (the default `latest`)
        ("latest", None, "latest", "deploy"),
        ("latest", None, "v1.4.2", "not followed"),
        ("v1.4.2", Some("v1.4.1"), "v1.4.2", "deploy"),
        ("v1.4.2", None, "1.4.2", "not followed"),
        // prefix
        ("prefix:release-", None, "release-2026-11-26", "deploy"),
        ("prefix:release-", None, "release-", "deploy"),
        ("prefix:release-", None, "hotfix-2026-11-26", "not followed"),
        ("prefix:sha-", Some("sha-3f2a1c"), "sha-000000", "deploy"),
        // any
        ("any", None, "whatever_1", "deploy"),
        // semver:patch
        ("semver:patch", Some("1.4.2"), "1.4.3", "deploy"),
        ("semver:patch", Some("1.4.2"), "1.5.0", "outside policy"),
        ("semver:patch", Some("1.4.2"), "2.0.0", "outside policy"),
        ("semver:patch", Some("1.4.2"), "1.4.2", "not newer"),
        ("semver:patch", Some("1.4.2"), "1.4.1", "not newer"),
        // semver:minor
        ("semver:minor", Some("1.4.2"), "1.5.0", "deploy"),
        ("semver:minor", Some("1.4.2"), "1.4.3", "deploy"),
        ("semver:minor", Some("1.4.2"), "2.0.0", "outside policy"),
        ("semver:minor", Some("1.5.0"), "1.4.3", "not newer"), // out of order: 1.4.3 after 1.5.0
        ("semver:minor", Some("1.5.0"), "1.5.0", "not newer"),
        // semver:major
        ("semver:major", Some("1.4.2"), "2.0.0", "deploy"),
        ("semver:major", Some("1.4.2"), "10.0.0", "deploy"),
        ("semver:major", Some("2.0.0"), "1.9.9", "not newer"),
        // v prefixes, on either side
        ("semver:minor", Some("v1.4.2"), "v1.5.0", "deploy"),
        ("semver:minor", Some("1.4.2"), "v1.5.0", "deploy"),
        ("semver:minor", Some("v1.5.0"), "1.4.9", "not newer"),
        // pre-releases are never followed, and do not count as newer
        ("semver:minor", Some("1.4.2"), "1.5.0-rc.1", "outside policy"),
        ("semver:major", None, "2.0.0-beta", "outside policy"),
        ("semver:patch", Some("1.4.2-rc.1"), "1.4.2", "deploy"), // a release beats its pre-release
        // numbers compare as numbers
        ("semver:minor", Some("1.9.0"), "1.10.0", "deploy"),
        // not versions
        ("semver:minor", Some("1.4.2"), "latest", "not followed"),
        ("semver:minor", Some("1.4.2"), "1.4", "not followed"),
        ("semver:minor", Some("1.4.2"), "01.4.3", "not followed"),
        ("semver:minor", Some("1.4.2"), "1.4.3.1", "not followed"),
        // nothing to compare with: the first version becomes the baseline
        ("semver:minor", None, "1.4.2", "deploy"),
        ("semver:minor", Some("latest"), "3.0.0", "deploy"),
    ];
    for (policy, running, pushed, expected) in table {
        assert_eq!(
            verdict(policy, *running, pushed),
            *expected,
            "{policy} running {running:?}, pushed {pushed}"
        );
    }
}

#[test]
fn policies_fit_ecs_tag_values_and_bad_ones_are_named() {
    for good in [
        "latest",
        "v1.4.2",
        "prefix:release-",
        "semver:minor",
        "any",
        "_x",
    ] {
        assert_eq!(TagPolicy::parse(good).unwrap().to_string(), good);
    }
    for bad in [
        "",
        "semver:mnior",
        "prefix:",
        "release-*",
        "prefix:a b",
        "-x",
        ".x",
    ] {
        let err = TagPolicy::parse(bad).unwrap_err().to_string();
        assert!(err.contains("is not a tag policy"), "{bad}: {err}");
    }
    assert!(TagPolicy::parse(&"a".repeat(129)).is_err());
}

#[test]
fn semver_precedence() {
    let v = |s| Version::parse(s).unwrap();
    let ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ];
    for pair in ordered.windows(2) {
        assert_eq!(
            v(pair[0]).cmp_precedence(&v(pair[1])),
            Ordering::Less,
            "{pair:?}"
        );
    }
    assert_eq!(Version::parse("1.0.0-01"), None);
}
