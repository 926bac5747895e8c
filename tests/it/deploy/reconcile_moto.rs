//! Missed pushes, against moto's ECR: no push event is delivered at all; the scheduled
//! reconcile finds, for each following service, the newest image its policy allows and deploys
//! it through the push path; a second run changes nothing; the image's late push event is then a
//! skip; a paused service stays where it is. Its reads are bounded (issue 14, item 6): tag
//! values that are not repository names are not read, images are read tagged only and 1000 to
//! a page, a read stops at its page cap, and a run short of time says what it did not reach.

use crate::support;

use crate::support::{TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind};
use pushdeploy::invocation::Invocation;
use serde_json::json;

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

/// Issue 13, item 8: with TrustedAccounts, the reconcile reads each trusted account's registry
/// (DescribeImages with its `registryId`: "If you do not specify a registry, the default
/// registry is assumed", API reference), so a missed push of another account's repository is
/// recovered. moto serves one account's registry per caller, so ECR is a mock here that answers
/// by registry id; ECS, tagging and the ledger stay moto. A repository of the same name in two
/// registries moves each service only to the image of the registry it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_reads_every_trusted_registry_and_moves_each_service_within_its_own() {
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::types::ImageDetail;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use support::{digest, mocks::wire_error};

    const OTHER: &str = "210987654321";
    const OTHER_REGISTRY: &str = "210987654321.dkr.ecr.us-east-1.amazonaws.com";
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    for (name, registry) in [("theirs", OTHER_REGISTRY), ("ours", REGISTRY)] {
        let td = bed
            .task_definition(name, &[("app", &format!("{registry}/web:latest"))])
            .await;
        bed.service("prod", name, &td, &[("pushdeploy:repository", "web")])
            .await;
    }
    let image_of = |registry: &str, d: char| {
        DescribeImagesOutput::builder()
            .image_details(
                ImageDetail::builder()
                    .registry_id(registry)
                    .repository_name("web")
                    .image_digest(digest(d))
                    .image_tags("latest")
                    .image_pushed_at(aws_smithy_types::DateTime::from_secs(1_795_000_000))
                    .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                    .build(),
            )
            .build()
    };
    let theirs = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|input| input.registry_id() == Some(OTHER))
        .then_output(move || image_of(OTHER, 'b'));
    let ours = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|input| input.registry_id() != Some(OTHER))
        .then_output(move || image_of("123456789012", 'c'));
    // Both registries' accounts are trusted; ECR is the mock, the rest moto.
    let trusting_both = |ecr| {
        let mut config = bed.config();
        config.trusted_accounts = Some(
            [OTHER, "123456789012"]
                .into_iter()
                .map(String::from)
                .collect(),
        );
        with_ecr_and_config(&bed, ecr, config)
    };
    let deployer = trusting_both(mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        &[&theirs, &ours]
    ));
    let invocation = Invocation {
        function_arn: Some("arn:aws:lambda:us-east-1:123456789012:function:deploy".into()),
        ..Invocation::default()
    };

    let report = deployer
        .handle(scheduled("reconcile-1"), &invocation)
        .await
        .unwrap();

    let moved: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome))
        .collect();
    assert_eq!(
        moved,
        [
            ("ours", OutcomeKind::Deployed),
            ("theirs", OutcomeKind::Deployed)
        ],
        "each service once, nothing failed: {report:?}"
    );
    let running = bed.running("prod", "theirs").await;
    assert_eq!(
        bed.image(&running, "app").await,
        format!("{OTHER_REGISTRY}/web@{}", digest('b'))
    );
    let running = bed.running("prod", "ours").await;
    assert_eq!(
        bed.image(&running, "app").await,
        format!("{REGISTRY}/web@{}", digest('c'))
    );
    assert_eq!((theirs.num_calls(), ours.num_calls()), (1, 1));

    // A trusted registry without the repository is no error: it only has none of its images.
    let missing = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|input| input.registry_id() == Some(OTHER))
        .then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(wire_error("RepositoryNotFoundException")),
            )
        });
    let report = trusting_both(mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        &[&missing, &ours]
    ))
    .handle(scheduled("reconcile-2"), &invocation)
    .await
    .unwrap();
    let reason = report.reason.clone().unwrap_or_default();
    assert!(!reason.contains("could not read"), "{reason}");
    assert_eq!(missing.num_calls(), 1);
}

/// The ECR stand-in of the mock tests: moto for ECS, tagging and the ledger, `ecr` for ECR.
fn with_ecr(bed: &TestBed, ecr: aws_sdk_ecr::Client) -> Deployer {
    with_ecr_and_config(bed, ecr, bed.config())
}

/// The same, with `config`.
fn with_ecr_and_config(
    bed: &TestBed,
    ecr: aws_sdk_ecr::Client,
    config: pushdeploy::config::Config,
) -> Deployer {
    let aws = pushdeploy::aws::Aws::from_clients(
        bed.ecs.clone(),
        aws_sdk_resourcegroupstagging::Client::new(&bed.sdk),
        bed.dynamodb.clone(),
        aws_sdk_sns::Client::new(&bed.sdk),
        ecr,
        aws_sdk_codedeploy::Client::new(&bed.sdk),
    );
    Deployer::with_aws(aws, config)
}

/// Issue 14, item 6: a `pushdeploy:repository` value is anyone's to set who may tag a service,
/// and each value was a repository read on every run. Values that are not repository names
/// (ECR's pattern) are not read: one DescribeImages for the one real name, and the services
/// that carry the others are named in the reason (by ARN, never by the value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_values_that_are_not_repository_names_are_not_read() {
    let bed = TestBed::start().await;
    bed.push_image("web", "latest", 7).await;
    bed.cluster("prod").await;
    bed.app_service(
        "prod",
        "site",
        &format!("{REGISTRY}/web:latest"),
        &[("pushdeploy:repository", "web")],
    )
    .await;
    let mut odd = Vec::new();
    for (name, value) in [
        ("upper", "Web"),
        ("spaced", "web app"),
        ("slashes", "team//web"),
        ("dots", "../web"),
    ] {
        bed.app_service(
            "prod",
            name,
            &format!("{REGISTRY}/web:latest"),
            &[("pushdeploy:repository", value)],
        )
        .await;
        odd.push(format!(
            "arn:aws:ecs:us-east-1:123456789012:service/prod/{name}"
        ));
    }
    let report = Deployer::new(&bed.sdk, bed.config())
        .handle(scheduled("names-1"), &Invocation::default())
        .await
        .unwrap();
    assert_eq!(
        report.aws_calls.get("ECR.DescribeImages"),
        Some(&1),
        "web only: {report:?}"
    );
    let reason = report.reason.clone().unwrap_or_default();
    assert!(reason.contains("1 repositories"), "{reason}");
    assert!(
        reason.contains("ignored the pushdeploy:repository tag of"),
        "{reason}"
    );
    for arn in &odd {
        assert!(reason.contains(arn.as_str()), "{arn} named: {reason}");
    }
    assert!(
        !reason.contains("web app") && !reason.contains("../web"),
        "{reason}"
    );
    let site = report.outcomes.iter().find(|o| o.service == "site");
    assert_eq!(
        site.map(|o| o.outcome),
        Some(OutcomeKind::Deployed),
        "{report:?}"
    );
}

/// Issue 14, item 6: DescribeImages asks for tagged images only (`filter.tagStatus` TAGGED)
/// in pages of 1000 (`maxResults`), and a read stops at its page cap (100 pages: 100,000
/// images, ECR's default quota per repository). moto's DescribeImages ignores `filter`,
/// `maxResults` and `nextToken` (one page of everything), so ECR is a mock here that answers
/// only requests that carry both, with a next page always: a repository without end. From a
/// read that stopped early, the service that follows an exact tag found there moves; the
/// `prefix:` follower, whose newest image may be on a page not read, stays, and the reason
/// says which repository was read only partly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_read_tagged_1000_to_a_page_and_a_read_stops_at_its_page_cap() {
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::types::{ImageDetail, TagStatus};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::sync::atomic::{AtomicU32, Ordering};

    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    bed.app_service(
        "prod",
        "site",
        &format!("{REGISTRY}/web:latest"),
        &[("pushdeploy:repository", "web")],
    )
    .await;
    let nightly = bed
        .app_service(
            "prod",
            "nightly",
            &format!("{REGISTRY}/web:build-0"),
            &[
                ("pushdeploy:repository", "web"),
                ("pushdeploy:tag", "prefix:build-"),
            ],
        )
        .await;
    let page = std::sync::Arc::new(AtomicU32::new(0));
    let served = page.clone();
    let pages = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|input| {
            input.filter().and_then(|f| f.tag_status()) == Some(&TagStatus::Tagged)
                && input.max_results() == Some(1000)
        })
        .then_output(move || {
            let n = served.fetch_add(1, Ordering::SeqCst) + 1;
            let mut image = ImageDetail::builder()
                .registry_id("123456789012")
                .repository_name("web")
                .image_digest(format!("sha256:{n:064x}"))
                .image_tags(format!("build-{n}"))
                .image_pushed_at(aws_smithy_types::DateTime::from_secs(
                    1_795_000_000 + i64::from(n),
                ))
                .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json");
            if n == 1 {
                image = image.image_tags("latest");
            }
            DescribeImagesOutput::builder()
                .image_details(image.build())
                .next_token(format!("after-{n}"))
                .build()
        });
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, &[&pages]);

    let report = with_ecr(&bed, ecr)
        .handle(scheduled("pages-1"), &Invocation::default())
        .await
        .unwrap();

    assert_eq!(pages.num_calls(), 100, "the page cap: {report:?}");
    assert_eq!(report.aws_calls.get("ECR.DescribeImages"), Some(&100));
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(
            "read only partly: web (100 images in 100 pages, stopped by the cap of 100 pages)"
        ),
        "{reason}"
    );
    assert!(!reason.contains("could not read"), "{reason}");
    let moved: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome, o.tag.as_deref()))
        .collect();
    assert_eq!(
        moved,
        [("site", OutcomeKind::Deployed, Some("latest"))],
        "{report:?}"
    );
    assert_eq!(
        bed.image(&bed.running("prod", "site").await, "app").await,
        format!("{REGISTRY}/web@sha256:{:064x}", 1)
    );
    assert_eq!(bed.running("prod", "nightly").await, nightly);
}

/// Issue 14, item 6: a run starts no read later than 15 s before its deadline. One that has
/// less than that left reads nothing, moves nothing, and names every repository it did not
/// reach; the next run (with its full time) covers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_short_of_time_says_what_it_did_not_reach_and_the_next_covers_it() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    for (n, repository) in [(1, "api"), (2, "web")] {
        bed.push_image(repository, "latest", n).await;
        bed.app_service(
            "prod",
            repository,
            &format!("{REGISTRY}/{repository}:latest"),
            &[("pushdeploy:repository", repository)],
        )
        .await;
    }
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
    let short = Invocation {
        deadline_ms: now_ms + 10_000,
        ..Invocation::default()
    };

    let report = deployer.handle(scheduled("short-1"), &short).await.unwrap();

    assert_eq!(
        report.aws_calls.get("ECR.DescribeImages"),
        None,
        "{report:?}"
    );
    assert!(report.outcomes.is_empty(), "{report:?}");
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(
            "did not reach api, web before the run's reads had to stop, 15 s before its deadline"
        ) || reason.contains(
            "did not reach web, api before the run's reads had to stop, 15 s before its deadline"
        ),
        "{reason}"
    );

    let report = deployer
        .handle(scheduled("short-2"), &Invocation::default())
        .await
        .unwrap();
    assert_eq!(report.aws_calls.get("ECR.DescribeImages"), Some(&2));
    let reason = report.reason.clone().unwrap_or_default();
    assert!(!reason.contains("did not reach"), "{reason}");
    let moved: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome))
        .collect();
    assert_eq!(
        moved,
        [
            ("api", OutcomeKind::Deployed),
            ("web", OutcomeKind::Deployed)
        ],
        "{report:?}"
    );
}
