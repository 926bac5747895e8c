//! The ledger's claim rules against DynamoDB on moto (its condition expressions are evaluated
//! for real): one owner per service at a time, newest push wins, leases end at the deadline.

mod support;

use chrono::TimeZone;
use pushdeploy::event::{Digest, Push};
use pushdeploy::ledger::{Claim, Lease, Ledger, Status};
use support::{digest, TestBed, TABLE};

const SERVICE: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
const NOW: u64 = 1_800_000_000_000;

fn push(event_id: &str, second: u32, d: char) -> Push {
    Push {
        event_id: event_id.into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        repository: "web".into(),
        tag: "latest".into(),
        digest: Digest::parse(&digest(d)).unwrap(),
        pushed_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 12, 0, second)
            .unwrap(),
        manifest_media_type: None,
        artifact_media_type: None,
    }
}

/// A claim by `holder` (a Lambda request id: each delivery of an event has its own).
async fn claim(ledger: &Ledger, p: &Push, holder: &str, lease_until: u64, now: u64) -> Claim {
    let lease = Lease {
        holder: holder.into(),
        until_ms: lease_until,
    };
    ledger
        .claim(SERVICE, p, &lease, now, "2026-11-26T12:00:00Z")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_claims_of_one_push_have_one_winner() {
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let p = push("ev-1", 0, 'a');
    let (a, b) = tokio::join!(
        claim(&ledger, &p, "delivery-1", NOW + 60_000, NOW),
        claim(&ledger, &p, "delivery-2", NOW + 60_000, NOW)
    );
    let mut results = [a, b];
    results.sort_by_key(|c| matches!(c, Claim::Acquired { .. }));
    assert_eq!(results[1], Claim::Acquired { resumed: None });
    assert_eq!(
        results[0],
        Claim::Busy {
            reason: "a concurrent delivery of this push is deploying it".into(),
            retryable: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_push_wins_and_an_older_one_in_flight_makes_the_newer_wait() {
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let (older, newer) = (push("ev-old", 0, 'a'), push("ev-new", 5, 'b'));

    assert_eq!(
        claim(&ledger, &older, "delivery-3", NOW + 60_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    match claim(&ledger, &newer, "delivery-4", NOW + 60_000, NOW).await {
        Claim::Busy {
            retryable: true,
            reason,
        } => assert!(reason.contains("older push"), "{reason}"),
        other => panic!("{other:?}"),
    }
    ledger
        .release(SERVICE, &older.event_id, Status::Deployed, None, "t")
        .await
        .unwrap();
    assert_eq!(
        claim(&ledger, &newer, "delivery-5", NOW + 60_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    match claim(&ledger, &older, "delivery-6", NOW + 60_000, NOW).await {
        Claim::Stale { reason } => assert!(reason.starts_with("stale push"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_past_its_deadline_is_taken_over_by_the_same_push_only() {
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let p = push("ev-1", 0, 'a');
    assert_eq!(
        claim(&ledger, &p, "delivery-7", NOW + 1_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    // Still leased: a redelivery stays out.
    assert!(matches!(
        claim(&ledger, &p, "delivery-8", NOW + 61_000, NOW + 500).await,
        Claim::Busy {
            retryable: false,
            ..
        }
    ));
    // The first invocation died at its deadline: its retry takes over.
    assert_eq!(
        claim(&ledger, &p, "delivery-9", NOW + 62_000, NOW + 2_000).await,
        Claim::Acquired { resumed: None }
    );
    // Done: later deliveries are told so.
    ledger
        .release(SERVICE, &p.event_id, Status::Deployed, None, "t")
        .await
        .unwrap();
    assert!(matches!(
        claim(&ledger, &p, "delivery-10", NOW + 70_000, NOW + 10_000).await,
        Claim::Finished { .. }
    ));
    // Losing the head shows up when releasing.
    let newer = push("ev-2", 9, 'b');
    assert_eq!(
        claim(&ledger, &newer, "delivery-11", NOW + 80_000, NOW + 20_000).await,
        Claim::Acquired { resumed: None }
    );
    assert!(ledger
        .release(SERVICE, &p.event_id, Status::Failed, Some("late"), "t")
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_of_a_claim_may_take_it_again_while_leased() {
    // A claim whose write landed but whose answer was lost is sent again by the SDK (same
    // invocation), and Lambda's retry of a failed invocation keeps its request id: both find
    // their own claim and go on. Another delivery of the same event still stays out.
    let bed = TestBed::start().await;
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let p = push("ev-1", 0, 'a');
    assert_eq!(
        claim(&ledger, &p, "req-1", NOW + 60_000, NOW).await,
        Claim::Acquired { resumed: None }
    );
    assert_eq!(
        claim(&ledger, &p, "req-1", NOW + 60_000, NOW + 10).await,
        Claim::Acquired { resumed: None }
    );
    assert!(matches!(
        claim(&ledger, &p, "req-2", NOW + 60_000, NOW + 20).await,
        Claim::Busy {
            retryable: false,
            ..
        }
    ));
    // Once the push is done, its own holder is told so like anyone else.
    ledger
        .release(SERVICE, &p.event_id, Status::Deployed, None, "t")
        .await
        .unwrap();
    assert!(matches!(
        claim(&ledger, &p, "req-1", NOW + 60_000, NOW + 30).await,
        Claim::Finished { .. }
    ));
}
