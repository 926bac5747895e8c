//! Not every push is a runnable image: the sample pushes of a signature (cosign's tag and
//! Notation's media type), an attestation, an SBOM and an untagged platform manifest change
//! nothing, each with its reason; the tagged multi-arch index deploys. Against moto, with the
//! demo world the samples name.

use crate::support::{sample_event, TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind};
use pushdeploy::invocation::Invocation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_skipped_and_the_tagged_index_deploys() {
    let bed = TestBed::start().await;
    let world = bed.demo_world().await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    for (sample, why) in [
        ("ecr-push-signature.json", "where cosign stores a signature"),
        (
            "ecr-push-notation-signature.json",
            "application/vnd.cncf.notary.signature is a signature",
        ),
        (
            "ecr-push-attestation.json",
            "application/vnd.in-toto+json is an attestation",
        ),
        ("ecr-push-sbom.json", "application/spdx+json is an SBOM"),
        ("ecr-push-platform-manifest.json", "no image-tag"),
    ] {
        let report = deployer
            .handle(sample_event(sample), &Invocation::default())
            .await
            .unwrap();
        assert!(report.outcomes.is_empty(), "{sample}: {report:?}");
        let reason = report.reason.as_deref().unwrap_or_default();
        assert!(reason.contains(why), "{sample}: {reason}");
        assert!(
            report.aws_calls.is_empty(),
            "{sample} made AWS calls: {report:?}"
        );
    }
    assert_eq!(bed.running("demo", "web").await, world.revision);
    assert_eq!(bed.revisions("pushdeploy-demo").await.len(), 1);

    let index = bed.pushed(sample_event("ecr-push-index.json")).await;
    let report = deployer
        .handle(index.clone(), &Invocation::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    let running = bed.running("demo", "web").await;
    assert_eq!(
        bed.image(&running, "app").await,
        format!(
            "{REGISTRY}/pushdeploy-demo@{}",
            index["detail"]["image-digest"].as_str().unwrap()
        ),
        "the index digest is what ECS pulls: it picks the platform's image itself"
    );
}
