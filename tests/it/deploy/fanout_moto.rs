//! One push, fifty services in five clusters, against moto: every follower is deployed once,
//! services that run the same task definition share one new revision (one RegisterTaskDefinition
//! per distinct revision, not per service), DescribeServices is batched per cluster, and a paused
//! service is left alone.

use crate::support::{digest, push_event, TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind};
use pushdeploy::invocation::Invocation;
use std::collections::{BTreeMap, BTreeSet};

const CLUSTERS: usize = 5;
const PER_CLUSTER: usize = 10;
const FAMILIES: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_services_in_five_clusters_share_revisions_and_deploy_once() {
    let bed = TestBed::start().await;
    let mut first = Vec::new();
    for f in 0..FAMILIES {
        first.push(
            bed.task_definition(
                &format!("f{f}"),
                &[("app", &format!("{REGISTRY}/web:latest"))],
            )
            .await,
        );
    }
    let mut family_of = BTreeMap::new();
    for c in 0..CLUSTERS {
        bed.cluster(&format!("c{c}")).await;
        for s in 0..PER_CLUSTER {
            let family = (c * PER_CLUSTER + s) % FAMILIES;
            let mut tags = vec![("pushdeploy:repository", "web")];
            if (c, s) == (2, 5) {
                tags.push(("pushdeploy:paused", "true"));
            }
            bed.service(&format!("c{c}"), &format!("s{s}"), &first[family], &tags)
                .await;
            family_of.insert((format!("c{c}"), format!("s{s}")), family);
        }
    }
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let report = deployer
        .handle(
            bed.pushed(push_event(
                "fan-1",
                "web",
                "latest",
                &digest('f'),
                "2026-11-26T12:00:00Z",
            ))
            .await,
            &Invocation::default(),
        )
        .await
        .unwrap();

    assert_eq!(report.outcomes.len(), CLUSTERS * PER_CLUSTER, "{report:?}");
    let paused: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.outcome != OutcomeKind::Deployed)
        .map(|o| {
            (
                o.cluster.as_str(),
                o.service.as_str(),
                o.skip_reason.map(|r| r.as_str()),
            )
        })
        .collect();
    assert_eq!(paused, [("c2", "s5", Some("paused"))], "{report:?}");

    // One new revision per family, shared by every deployed service of that family.
    let mut new_of_family: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for o in report
        .outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Deployed)
    {
        let family = family_of[&(o.cluster.clone(), o.service.clone())];
        new_of_family
            .entry(family)
            .or_default()
            .insert(o.task_definition.clone().unwrap());
    }
    assert_eq!(new_of_family.len(), FAMILIES);
    for (family, revisions) in &new_of_family {
        assert_eq!(revisions.len(), 1, "family f{family}: {revisions:?}");
        assert_eq!(
            bed.revisions(&format!("f{family}")).await.len(),
            2,
            "family f{family}"
        );
        let revision = revisions.iter().next().unwrap();
        assert_eq!(
            bed.image(revision, "app").await,
            format!("{REGISTRY}/web@{}", digest('f'))
        );
    }
    for ((cluster, service), family) in &family_of {
        let running = bed.running(cluster, service).await;
        if (cluster.as_str(), service.as_str()) == ("c2", "s5") {
            assert_eq!(running, first[*family], "the paused service is untouched");
        } else {
            assert!(
                new_of_family[family].contains(&running),
                "{cluster}/{service}"
            );
        }
    }

    let calls = |op: &str| report.aws_calls.get(op).copied().unwrap_or(0);
    assert_eq!(
        calls("ECS.RegisterTaskDefinition"),
        FAMILIES as u32,
        "{:?}",
        report.aws_calls
    );
    assert_eq!(calls("ECS.UpdateService"), 49, "each deployed service once");
    assert_eq!(
        calls("ECS.DescribeServices"),
        CLUSTERS as u32,
        "10 services per call, per cluster"
    );
    assert_eq!(
        calls("ECS.DescribeTaskDefinition"),
        FAMILIES as u32,
        "each distinct revision once"
    );
    assert_eq!(calls("Resource Groups Tagging API.GetResources"), 1);
}
