//! The claim rules, case by case: every owner of the head (none, an older push, this push by
//! this invocation, this push by another, a newer push), every state, a lease still running or
//! ended. The expected answers are written out, not computed.

use super::*;

const NOW: u64 = 1_000_000;
const OLDER: &str = "2026-11-26T12:00:00.000Z#e-old";
const THIS: &str = "2026-11-26T12:05:00.000Z#e-this";
const NEWER: &str = "2026-11-26T12:10:00.000Z#e-new";
const DONE: [Status; 5] = [
    Status::Deployed,
    Status::Succeeded,
    Status::Failed,
    Status::NeedsHuman,
    Status::Superseded,
];

#[derive(Debug, Clone, Copy)]
enum Owner {
    Older,
    ThisByThisInvocation,
    ThisByAnother,
    Newer,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lease {
    Running,
    Ended,
}

fn head(owner: Owner, state: Status, lease: Lease) -> Head {
    let (event_id, order_key, holder) = match owner {
        Owner::Older => ("e-old", OLDER, "req-old"),
        Owner::ThisByThisInvocation => ("e-this", THIS, "req-this"),
        Owner::ThisByAnother => ("e-this", THIS, "req-other"),
        Owner::Newer => ("e-new", NEWER, "req-new"),
    };
    Head {
        event_id: Some(event_id.into()),
        order_key: Some(order_key.into()),
        state: Some(state),
        lease_until_ms: Some(if lease == Lease::Running {
            NOW + 1
        } else {
            NOW - 1
        }),
        holder: Some(holder.into()),
        digest: Some("sha256:held".into()),
        reason: None,
    }
}

fn this_push() -> Claimant<'static> {
    Claimant {
        event_id: "e-this",
        order_key: THIS,
        holder: "req-this",
        now_ms: NOW,
    }
}

/// What a refused claim answers, by kind.
#[derive(Debug, PartialEq)]
enum Answer {
    Takes,
    Busy { retryable: bool },
    Stale,
    Finished,
}

fn answer(head: Option<&Head>) -> Answer {
    let claimant = this_push();
    if push_may_claim(head, &claimant) {
        return Answer::Takes;
    }
    match refusal(head.expect("no head is always taken"), &claimant) {
        Claim::Busy { retryable, .. } => Answer::Busy { retryable },
        Claim::Stale { .. } => Answer::Stale,
        Claim::Finished { .. } => Answer::Finished,
        Claim::Acquired { .. } => panic!("a refusal is never an acquisition"),
    }
}

#[test]
fn a_push_claims_a_service_by_these_rules() {
    use Answer::*;
    use Lease::*;
    use Owner::*;
    assert_eq!(answer(None), Takes, "no push ever took the service");
    let deploying = Status::Deploying;
    let rows = [
        // An older push still deploying holds the service until its lease ends.
        (Older, deploying, Running, Busy { retryable: true }),
        (Older, deploying, Ended, Takes),
        // This push, again: its own invocation takes it back at any time (Lambda's retry);
        // another delivery waits for the lease, then resumes the interrupted one.
        (ThisByThisInvocation, deploying, Running, Takes),
        (ThisByThisInvocation, deploying, Ended, Takes),
        (ThisByAnother, deploying, Running, Busy { retryable: false }),
        (ThisByAnother, deploying, Ended, Takes),
        // A newer push owns it: this one is stale, whatever the state or lease.
        (Newer, deploying, Running, Stale),
        (Newer, deploying, Ended, Stale),
    ];
    for (owner, state, lease, expected) in rows {
        let head = head(owner, state, lease);
        assert_eq!(
            answer(Some(&head)),
            expected,
            "{owner:?} {state:?} {lease:?}"
        );
    }
    for state in DONE {
        for lease in [Running, Ended] {
            let case = |owner| (owner, state, lease);
            // An older push done with the service (a lease left over changes nothing).
            assert_eq!(
                answer(Some(&head(Older, state, lease))),
                Takes,
                "{:?}",
                case(Older)
            );
            // This push was handled already, by whichever invocation.
            for owner in [ThisByThisInvocation, ThisByAnother] {
                let got = answer(Some(&head(owner, state, lease)));
                assert_eq!(got, Finished, "{:?}", case(owner));
            }
            assert_eq!(
                answer(Some(&head(Newer, state, lease))),
                Stale,
                "{:?}",
                case(Newer)
            );
        }
    }
}

#[test]
fn the_rollback_takes_the_service_back_only_from_the_failed_push() {
    use Lease::*;
    use Owner::*;
    let may = |head: Option<&Head>, holder: &str| rollback_may_claim(head, "e-this", holder, NOW);
    assert!(!may(None, "req-rollback"), "no head: nothing to take back");
    for state in DONE {
        for lease in [Running, Ended] {
            for owner in [ThisByThisInvocation, ThisByAnother] {
                assert!(may(Some(&head(owner, state, lease)), "req-rollback"));
            }
            // Another push took the service since: the newer intent wins.
            for owner in [Older, Newer] {
                assert!(!may(Some(&head(owner, state, lease)), "req-rollback"));
            }
        }
    }
    let deploying = Status::Deploying;
    // The failed push is being deployed again (a retry of its delivery): not while it runs.
    assert!(!may(
        Some(&head(ThisByAnother, deploying, Running)),
        "req-rollback"
    ));
    assert!(may(
        Some(&head(ThisByAnother, deploying, Ended)),
        "req-rollback"
    ));
    // The rollback's own earlier attempt holds it (Lambda's retry of the rollback).
    assert!(may(
        Some(&head(ThisByAnother, deploying, Running)),
        "req-other"
    ));
    for owner in [Older, Newer] {
        assert!(!may(Some(&head(owner, deploying, Ended)), "req-rollback"));
    }
}

#[test]
fn what_the_head_lacks_satisfies_no_rule_that_compares_it() {
    let claimant = this_push();
    let bare = Head {
        event_id: Some("e-old".into()),
        order_key: Some(OLDER.into()),
        ..Head::default()
    };
    // No state, no lease: an older push neither done nor past its lease.
    assert!(!push_may_claim(Some(&bare), &claimant));
    assert!(!rollback_may_claim(Some(&bare), "e-old", "req", NOW));
    let done = Head {
        state: Some(Status::Failed),
        ..bare
    };
    assert!(push_may_claim(Some(&done), &claimant));
}
