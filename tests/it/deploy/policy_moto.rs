//! Tag policies through the whole deploy path, against moto: a `semver:minor` service takes
//! 1.5.0 over 1.4.2, never goes back to 1.4.3 when that push is delivered after 1.5.0 (even
//! with a later push time), refuses 2.0.0 and pre-releases; a `prefix:` service takes
//! `release-*`; a service with a bad policy fails with its value named while the others deploy.

use crate::support::{digest, push_event, TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind, Report};
use pushdeploy::invocation::Invocation;

/// Pushes `web:<tag>` with digest `d` to ECR and delivers its event.
async fn push(
    bed: &TestBed,
    deployer: &Deployer,
    id: &str,
    tag: &str,
    d: char,
    time: &str,
) -> Report {
    bed.ecr_has("web", tag, &digest(d)).await;
    deployer
        .handle(
            push_event(id, "web", tag, &digest(d), time),
            &Invocation::default(),
        )
        .await
        .unwrap()
}

/// (service, outcome, skip reason) of each outcome.
fn summary(report: &Report) -> Vec<(String, OutcomeKind, Option<&'static str>)> {
    report
        .outcomes
        .iter()
        .map(|o| {
            (
                o.service.clone(),
                o.outcome,
                o.skip_reason.map(|r| r.as_str()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semver_and_prefix_policies_follow_only_what_they_should() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    bed.app_service(
        "prod",
        "api",
        &format!("{REGISTRY}/web:1.4.2"),
        &[
            ("pushdeploy:repository", "web"),
            ("pushdeploy:tag", "semver:minor"),
        ],
    )
    .await;
    bed.app_service(
        "prod",
        "batch",
        &format!("{REGISTRY}/web:release-2026-11-01"),
        &[
            ("pushdeploy:repository", "web"),
            ("pushdeploy:tag", "prefix:release-"),
        ],
    )
    .await;
    bed.app_service(
        "prod",
        "cron",
        &format!("{REGISTRY}/web:1.4.2"),
        &[
            ("pushdeploy:repository", "web"),
            ("pushdeploy:tag", "semver:mnior"),
        ],
    )
    .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    // 1.5.0: the semver service moves; the bad policy is said, naming service and value.
    let report = push(&bed, &deployer, "p1", "1.5.0", '1', "2026-11-26T12:00:00Z").await;
    let s = summary(&report);
    assert_eq!(s.len(), 2, "{report:?}");
    assert_eq!(
        (s[0].0.as_str(), s[0].1),
        ("api", OutcomeKind::Deployed),
        "{report:?}"
    );
    assert_eq!((s[1].0.as_str(), s[1].1), ("cron", OutcomeKind::Failed));
    let why = report.outcomes[1].reason.as_deref().unwrap();
    assert!(
        why.contains("pushdeploy:tag") && why.contains("\"semver:mnior\""),
        "{why}"
    );
    let at_150 = bed.running("prod", "api").await;
    assert_eq!(
        bed.image(&at_150, "app").await,
        format!("{REGISTRY}/web@{}", digest('1'))
    );

    // 1.4.3 pushed after 1.5.0 (later push time, later delivery): never a step back.
    let report = push(&bed, &deployer, "p2", "1.4.3", '2', "2026-11-26T12:05:00Z").await;
    assert_eq!(
        summary(&report)[0],
        ("api".into(), OutcomeKind::Skipped, Some("not_newer")),
        "{report:?}"
    );
    assert!(report.outcomes[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("not newer than 1.5.0"));
    // 2.0.0 is a major change; 1.6.0-rc.1 a pre-release: both outside semver:minor.
    for (id, tag, d) in [("p3", "2.0.0", '3'), ("p4", "1.6.0-rc.1", '4')] {
        let report = push(&bed, &deployer, id, tag, d, "2026-11-26T12:10:00Z").await;
        assert_eq!(
            summary(&report)[0],
            ("api".into(), OutcomeKind::Skipped, Some("outside_policy")),
            "{tag}: {report:?}"
        );
    }
    assert_eq!(bed.running("prod", "api").await, at_150, "nothing moved");
    // 1.5.1 moves it on.
    let report = push(&bed, &deployer, "p5", "v1.5.1", '5', "2026-11-26T12:15:00Z").await;
    assert_eq!(summary(&report)[0].1, OutcomeKind::Deployed, "{report:?}");

    // The prefix service takes release-*, and no semver tag reaches it. The service with the
    // bad policy keeps saying so on every push of its repository, until someone fixes the tag.
    let report = push(
        &bed,
        &deployer,
        "p6",
        "release-2026-11-26",
        '6',
        "2026-11-26T12:20:00Z",
    )
    .await;
    assert_eq!(
        summary(&report),
        [
            ("batch".into(), OutcomeKind::Deployed, None),
            ("cron".into(), OutcomeKind::Failed, None)
        ],
        "{report:?}"
    );
    assert_eq!(
        bed.image(&bed.running("prod", "batch").await, "app").await,
        format!("{REGISTRY}/web@{}", digest('6'))
    );
    assert_eq!(bed.revisions("batch").await.len(), 2);
}
