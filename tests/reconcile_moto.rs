//! Missed pushes, against moto's ECR: no push event is delivered at all; the scheduled
//! reconcile finds, for each following service, the newest image its policy allows and deploys
//! it through the push path; a second run changes nothing; the image's late push event is then a
//! skip; a paused service stays where it is.

mod support;

use pushdeploy::deploy::{Deployer, Invocation, OutcomeKind};
use serde_json::json;
use support::{TestBed, REGISTRY};

fn manifest(n: u32) -> String {
    json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1000 + n,
                      "digest": format!("sha256:{:064x}", n)},
           // moto's digest is a hash of the layer digests: one layer of its own per image.
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": n,
                       "digest": format!("sha256:{:064x}", 1000 + n)}]})
    .to_string()
}

fn scheduled(id: &str) -> serde_json::Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": "2026-11-26T13:00:00Z", "region": "us-east-1",
           "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_deploys_what_was_missed_once_and_by_policy() {
    let bed = TestBed::start().await;
    let ecr = aws_sdk_ecr::Client::new(&bed.sdk);
    ecr.create_repository()
        .repository_name("web")
        .send()
        .await
        .unwrap();
    let mut digests = std::collections::BTreeMap::new();
    for (n, tags) in [
        (1, vec!["1.4.2"]),
        (2, vec!["1.5.0", "latest"]),
        (3, vec!["2.0.0"]),
        (4, vec!["1.6.0-rc.1"]),
    ] {
        for tag in tags {
            let out = ecr
                .put_image()
                .repository_name("web")
                .image_manifest(manifest(n))
                .image_tag(tag)
                .send()
                .await
                .unwrap();
            let digest = out
                .image()
                .unwrap()
                .image_id()
                .unwrap()
                .image_digest()
                .unwrap()
                .to_string();
            digests.insert(tag, digest);
        }
    }
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
        "site",
        &format!("{REGISTRY}/web:latest"),
        &[("pushdeploy:repository", "web")],
    )
    .await;
    let frozen = bed
        .app_service(
            "prod",
            "cron",
            &format!("{REGISTRY}/web:latest"),
            &[
                ("pushdeploy:repository", "web"),
                ("pushdeploy:paused", "true"),
            ],
        )
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = deployer
        .handle(scheduled("tick-1"), &Invocation::default())
        .await
        .unwrap();
    let by_service: Vec<(&str, OutcomeKind, Option<&str>)> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome, o.tag.as_deref()))
        .collect();
    assert_eq!(
        by_service,
        [
            ("api", OutcomeKind::Deployed, Some("1.5.0")),
            ("cron", OutcomeKind::Skipped, Some("latest")),
            ("site", OutcomeKind::Deployed, Some("latest")),
        ],
        "semver:minor takes 1.5.0 (not 2.0.0, not the rc); latest takes latest; paused is skipped: {report:?}"
    );
    let pinned = |tag: &str| format!("{REGISTRY}/web@{}", digests[tag]);
    assert_eq!(
        bed.image(&bed.running("prod", "api").await, "app").await,
        pinned("1.5.0")
    );
    assert_eq!(
        bed.image(&bed.running("prod", "site").await, "app").await,
        pinned("latest")
    );
    assert_eq!(bed.running("prod", "cron").await, frozen);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap()
            .contains("1 repositories, 3 services follow them, 0 already"),
        "{report:?}"
    );
    assert!(
        report.aws_calls.contains_key("ECR.DescribeImages"),
        "{report:?}"
    );

    // A second run: everything is in step, nothing is registered or updated.
    let report = deployer
        .handle(scheduled("tick-2"), &Invocation::default())
        .await
        .unwrap();
    let moved: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.outcome != OutcomeKind::Skipped)
        .collect();
    assert!(moved.is_empty(), "{report:?}");
    assert_eq!(report.aws_calls.get("ECS.RegisterTaskDefinition"), None);
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap()
            .contains("2 already run the newest image"),
        "{report:?}"
    );
    assert_eq!(bed.revisions("api").await.len(), 2);

    // The missed push event of 1.5.0 finally arrives: the service already runs it.
    let late = support::push_event(
        "late-1",
        "web",
        "1.5.0",
        &digests["1.5.0"],
        "2026-11-26T12:00:00Z",
    );
    let report = deployer.handle(late, &Invocation::default()).await.unwrap();
    let api = report.outcomes.iter().find(|o| o.service == "api").unwrap();
    assert_eq!(
        api.skip_reason.map(|r| r.as_str()),
        Some("already_running"),
        "{report:?}"
    );
    assert_eq!(bed.revisions("api").await.len(), 2);
}
