//! Who may claim a service, written once over typed values. DynamoDB applies the same rules
//! atomically as the condition expressions of [`super::Ledger::claim`] and
//! [`super::Ledger::claim_for_rollback`] (`PUSH_CLAIM_CONDITION`, `ROLLBACK_CLAIM_CONDITION`);
//! `tests/it/ledger/claim_agreement.rs` holds each expression to its function here, case by
//! case, against the emulator. `refusal` says why a refused push was refused.
//!
//! A comparison with an attribute the item lacks is false in a condition expression, so an
//! absent state, lease or holder satisfies no clause that compares it: the functions read an
//! absent value as `None` and compare it the same way.

use super::record::{number, text, Item};
use super::{Claim, Status};

/// The condition under which a push takes the service (`:order`, `:event`, `:holder`, `:now`
/// are the claimant's; `#state` is `state`).
pub(crate) const PUSH_CLAIM_CONDITION: &str = "attribute_not_exists(pk) \
     OR (order_key < :order AND (#state <> :deploying OR lease_until < :now)) \
     OR (event_id = :event AND #state = :deploying AND lease_until < :now) \
     OR (event_id = :event AND #state = :deploying AND holder = :holder)";

/// The condition under which the rollback function takes the service back from the failed
/// push `:event`.
pub(crate) const ROLLBACK_CLAIM_CONDITION: &str =
    "event_id = :event AND (#state <> :deploying OR lease_until < :now OR holder = :holder)";

/// A service's head item, as the claim rules read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The push that holds, or last held, the service.
    pub event_id: Option<String>,
    /// That push's order key (`<pushed-at>#<event-id>`): newer pushes sort after it.
    pub order_key: Option<String>,
    /// `deploying` while a push or rollback holds the service (or was interrupted holding it),
    /// else how the last one ended.
    pub state: Option<Status>,
    /// Epoch milliseconds after which the holder is surely gone.
    pub lease_until_ms: Option<u64>,
    /// The invocation (Lambda request id) that holds the lease.
    pub holder: Option<String>,
    /// The digest that push deploys, named when a stale push is refused.
    pub digest: Option<String>,
    /// Why the last holder ended as it did, if it said; quoted to a later delivery of it.
    pub reason: Option<String>,
}

impl Head {
    pub(super) fn from_item(item: &Item) -> Head {
        Head {
            event_id: text(item, "event_id"),
            order_key: text(item, "order_key"),
            state: text(item, "state").as_deref().and_then(Status::parse),
            lease_until_ms: number(item, "lease_until"),
            holder: text(item, "holder"),
            digest: text(item, "digest"),
            reason: text(item, "reason"),
        }
    }

    fn deploying(&self) -> bool {
        self.state == Some(Status::Deploying)
    }

    /// In a state other than deploying (an absent state is neither).
    fn done(&self) -> bool {
        self.state.is_some_and(|s| s != Status::Deploying)
    }

    fn lease_ended(&self, now_ms: u64) -> bool {
        self.lease_until_ms.is_some_and(|until| until < now_ms)
    }

    fn held_by(&self, holder: &str) -> bool {
        self.holder.as_deref() == Some(holder)
    }

    fn is_event(&self, event_id: &str) -> bool {
        self.event_id.as_deref() == Some(event_id)
    }
}

/// Who asks for the service, and when.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    /// The push's event id.
    pub event_id: &'a str,
    /// The push's order key, compared with the head's: only a newer push takes over.
    pub order_key: &'a str,
    /// The invocation that asks (Lambda request id).
    pub holder: &'a str,
    /// Epoch milliseconds now, compared with the head's lease.
    pub now_ms: u64,
}

/// Whether a push may take the service whose head is `head` (`None`: no push ever has).
/// Each line is one clause of `PUSH_CLAIM_CONDITION`, in its order.
pub fn push_may_claim(head: Option<&Head>, claimant: &Claimant) -> bool {
    let Some(head) = head else {
        return true;
    };
    let now = claimant.now_ms;
    let older = head
        .order_key
        .as_deref()
        .is_some_and(|held| held < claimant.order_key);
    let own = head.is_event(claimant.event_id) && head.deploying();
    // An older push that is done with the service, or whose lease ended.
    (older && (head.done() || head.lease_ended(now)))
        // This push's own delivery, interrupted: its lease ended.
        || (own && head.lease_ended(now))
        // This push's own delivery, by the same invocation (Lambda's retry keeps the id).
        || (own && head.held_by(claimant.holder))
}

/// Whether the rollback function may take the service back from the failed push
/// `failed_event_id`: only while that push still holds it, and nobody is deploying it now
/// (or that invocation is gone, or is this one). Each part is a clause of
/// `ROLLBACK_CLAIM_CONDITION`.
pub fn rollback_may_claim(
    head: Option<&Head>,
    failed_event_id: &str,
    holder: &str,
    now_ms: u64,
) -> bool {
    let Some(head) = head else {
        return false;
    };
    head.is_event(failed_event_id)
        && (head.done() || head.lease_ended(now_ms) || head.held_by(holder))
}

/// Why a push that [`push_may_claim`] refused was refused, as the deploy function answers it.
pub(crate) fn refusal(head: &Head, claimant: &Claimant) -> Claim {
    let leased = head.deploying() && head.lease_until_ms.unwrap_or(0) >= claimant.now_ms;
    let state = head.state.map_or("unknown", Status::as_str);
    let holder_order = head.order_key.as_deref().unwrap_or_default();
    let holder_digest = head.digest.as_deref().unwrap_or_default();
    if head.is_event(claimant.event_id) {
        if leased {
            return Claim::Busy {
                reason: "a concurrent delivery of this push is deploying it".into(),
                retryable: false,
            };
        }
        let why = head
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return Claim::Finished {
            reason: format!("an earlier delivery of this push already ended as {state}{why}"),
        };
    }
    if holder_order > claimant.order_key {
        let when = holder_order.split('#').next().unwrap_or_default();
        return Claim::Stale {
            reason: format!(
                "stale push: a newer push ({holder_digest}, {when}) already took this service"
            ),
        };
    }
    if leased {
        return Claim::Busy {
            reason: format!("an older push ({holder_digest}) is still being deployed to this service; retry once it is done"),
            retryable: true,
        };
    }
    Claim::Busy {
        reason: "the ledger head changed while claiming; retry".into(),
        retryable: true,
    }
}

#[cfg(test)]
#[path = "claim_tests.rs"]
mod tests;
