//! The claim rules are written twice, of necessity: as pure functions (`ledger::claim`, which the
//! table tests read) and as the condition expressions DynamoDB applies atomically. Here both
//! meet every case: a head item of each owner, state and lease is put into the ledger on moto,
//! the real `claim`, the deploy function's `take` and `claim_for_rollback` are attempted, and each
//! must succeed exactly when its pure rule says so. A rule changed on one side only fails here.

use crate::support::fast_aws::FastAws;
use crate::support::{digest, TestBed, TABLE};
use aws_sdk_dynamodb::types::AttributeValue;
use pushdeploy::event::Push;
use pushdeploy::ledger::claim::{push_may_claim, rollback_may_claim, Claimant, Head};
use pushdeploy::ledger::{
    Claim, DeploymentRecord, Kind, Lease, Ledger, Status, Taken, ALL_STATUSES,
};

const NOW: u64 = 1_800_000_000_000;
fn push(event_id: &str, second: u32) -> Push {
    crate::support::typed_push(event_id, second, 'c')
}

/// Every head a push or a rollback can meet: held by an older push, this push (by this
/// invocation or another), or a newer one; in every state; its lease running or ended.
fn heads() -> Vec<Head> {
    let owners = [
        (push("e-old", 0), "req-old"),
        (push("e-this", 5), "req-this"),
        (push("e-this", 5), "req-other"),
        (push("e-new", 10), "req-new"),
    ];
    let mut heads = Vec::new();
    for (owner, holder) in &owners {
        for state in ALL_STATUSES {
            for lease in [NOW + 60_000, NOW - 60_000] {
                heads.push(Head {
                    event_id: Some(owner.event_id.clone()),
                    order_key: Some(owner.order_key()),
                    state: Some(state),
                    lease_until_ms: Some(lease),
                    holder: Some(holder.to_string()),
                    digest: Some(owner.digest.as_str().to_string()),
                    reason: None,
                });
            }
        }
    }
    heads
}

async fn put_head(dynamodb: &aws_sdk_dynamodb::Client, service_arn: &str, head: &Head) {
    let s = |v: &Option<String>| AttributeValue::S(v.clone().unwrap_or_default());
    dynamodb
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(service_arn.into()))
        .item("sk", AttributeValue::S("HEAD".into()))
        .item("event_id", s(&head.event_id))
        .item("order_key", s(&head.order_key))
        .item(
            "state",
            AttributeValue::S(head.state.unwrap().as_str().into()),
        )
        .item(
            "lease_until",
            AttributeValue::N(head.lease_until_ms.unwrap().to_string()),
        )
        .item("holder", s(&head.holder))
        .item("digest", s(&head.digest))
        .send()
        .await
        .expect("put the head");
}

fn failed_record(service_arn: &str, event_id: &str) -> DeploymentRecord {
    DeploymentRecord {
        kind: Kind::Deploy,
        reverts: None,
        service_arn: service_arn.into(),
        cluster: "agree".into(),
        service: "web".into(),
        event_id: event_id.into(),
        order_key: push(event_id, 5).order_key(),
        repository: "web".into(),
        tag: "latest".into(),
        digest: digest('c'),
        pushed_at: push(event_id, 5).pushed_at_text(),
        container: "app".into(),
        previous_task_definition: "web:1".into(),
        new_task_definition: Some("web:2".into()),
        deployment_id: None,
        previous_images: None,
        running_at_last_sweep: None,
        service_deployment_arn: None,
        codedeploy_deployment_id: None,
        awaits_ecs_rollback: false,
        status: Status::Failed,
        reason: None,
        created_at: "2026-11-26T12:00:05Z".into(),
        updated_at: "2026-11-26T12:00:05Z".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodbs_conditions_agree_with_the_claim_rules_in_every_case() {
    let bed = TestBed::start().await;
    let disagreements = disagreements(bed.dynamodb.clone()).await;
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// The bench's fast backend (tests/support/fast_aws.rs) must judge the ledger's conditions as
/// DynamoDB does (moto above stands for it), or the bench measures a ledger that acts otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_backend_agrees_with_the_claim_rules_in_every_case() {
    let fast = FastAws::start().await;
    let endpoint = format!("http://{}", fast.address);
    let bed = TestBed::start().await;
    let sdk = bed.sdk_through(&endpoint).await;
    let disagreements = disagreements(aws_sdk_dynamodb::Client::new(&sdk)).await;
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Every head put into `dynamodb`'s ledger table, every claim tried on it: where DynamoDB's
/// answer and the pure rule differ.
async fn disagreements(client: aws_sdk_dynamodb::Client) -> Vec<String> {
    let ledger = Ledger::new(client.clone(), TABLE);
    let this = push("e-this", 5);
    let order_key = this.order_key();
    let lease = Lease {
        holder: "req-this".into(),
        until_ms: NOW + 900_000,
    };
    let claimant = Claimant {
        event_id: &this.event_id,
        order_key: &order_key,
        holder: &lease.holder,
        now_ms: NOW,
    };
    let mut cases: Vec<Option<Head>> = vec![None];
    cases.extend(heads().into_iter().map(Some));
    let mut disagreements = Vec::new();
    for (i, head) in cases.iter().enumerate() {
        // The push's claim, on a service of its own.
        let service = format!("arn:aws:ecs:us-east-1:123456789012:service/agree/push-{i}");
        if let Some(head) = head {
            put_head(&client, &service, head).await;
        }
        let claimed = ledger
            .claim(&service, &this, &lease, NOW, "2026-11-26T12:00:05Z")
            .await
            .expect("a claim is answered");
        let dynamodb = matches!(claimed, Claim::Acquired { .. });
        let rule = push_may_claim(head.as_ref(), &claimant);
        if dynamodb != rule {
            disagreements.push(format!(
                "push claim on {head:?}: DynamoDB {dynamodb}, rule {rule}"
            ));
        }

        // The deploy function's take (quarantine check, claim and intent in one transaction),
        // on another: held exactly when the rule says so, and refused for the reason the claim
        // above gave, though it reads the head from the cancelled transaction, not a GetItem.
        let service = format!("arn:aws:ecs:us-east-1:123456789012:service/agree/take-{i}");
        if let Some(head) = head {
            put_head(&client, &service, head).await;
        }
        let intent = DeploymentRecord {
            status: Status::Deploying,
            new_task_definition: None,
            ..failed_record(&service, "e-this")
        };
        let taken = ledger
            .take(&intent, &lease, NOW)
            .await
            .expect("a take is answered");
        let held = matches!(taken, Taken::Held { resumed: false, .. });
        if held != rule {
            disagreements.push(format!("take on {head:?}: DynamoDB {held}, rule {rule}"));
        }
        if let (Taken::Refused(refused), false) = (&taken, dynamodb) {
            if *refused != claimed {
                disagreements.push(format!(
                    "take on {head:?} refused as {refused:?}, the claim as {claimed:?}"
                ));
            }
        }

        // The rollback's claim back from the failed push `e-this`, on another.
        let service = format!("arn:aws:ecs:us-east-1:123456789012:service/agree/rollback-{i}");
        if let Some(head) = head {
            put_head(&client, &service, head).await;
        }
        let rollback = Lease {
            holder: "req-other".into(),
            until_ms: NOW + 900_000,
        };
        let taken = ledger
            .claim_for_rollback(&failed_record(&service, "e-this"), &rollback, NOW, "now")
            .await
            .expect("a rollback claim is answered");
        let rule = rollback_may_claim(head.as_ref(), "e-this", &rollback.holder, NOW);
        if taken != rule {
            disagreements.push(format!(
                "rollback claim on {head:?}: DynamoDB {taken}, rule {rule}"
            ));
        }
    }
    println!(
        "{} heads: {} disagreements between the conditions and the claim rules",
        cases.len(),
        disagreements.len()
    );
    disagreements
}
