//! A push's hold on a service, taken and given back in one ledger write each
//! (TransactWriteItems): taking checks the quarantine, claims the head and writes the intent
//! record; settling writes the record as it ends and releases the head. Every condition is the
//! one the separate calls used to check, so a cancelled transaction says which one failed:
//! "Transaction cancellation reasons are ordered in the order of requested items, if an item has
//! no error it will have `None` code" (DynamoDB API Reference, TransactWriteItems), and with
//! `ReturnValuesOnConditionCheckFailure` ALL_OLD the failed item comes back, so a refusal is
//! explained without reading the head again.

use super::claim::{self, Claimant, PUSH_CLAIM_CONDITION};
use super::phases::{status_condition, DEPLOYS};
use super::record::{s, Item};
use super::{
    quarantine_sentence, Claim, DeploymentRecord, Lease, Ledger, LedgerError, Status, HEAD_SK,
    QUARANTINE_PREFIX,
};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use std::collections::HashMap;

/// What taking a service for a push found.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// The push holds the service: `record` is the intent just written, or (`resumed`) the record
    /// an interrupted delivery of the same push wrote.
    Held {
        /// The record the deployment goes on with.
        record: Box<DeploymentRecord>,
        /// Whether an earlier delivery got this far (it may have registered the revision).
        resumed: bool,
    },
    /// The digest failed on this service before: the sentence the skipped push reports.
    Quarantined(String),
    /// The head refused the push (never [`Claim::Acquired`]).
    Refused(Claim),
}

/// Why DynamoDB cancelled a transaction, item by item, in the order the items were sent.
struct Cancelled(Vec<CancellationReason>);

const CONDITION_FAILED: &str = "ConditionalCheckFailed";
/// Cancellation codes a later attempt gets past: another transaction on the same item, or
/// throttling ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
/// DynamoDB API Reference, TransactWriteItems).
const TRANSIENT: [&str; 3] = [
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

impl Cancelled {
    /// The item at `index` failed its condition: what it held (ALL_OLD), if it existed.
    fn condition_failed(&self, index: usize) -> Option<Item> {
        let reason = self.0.get(index)?;
        (reason.code() == Some(CONDITION_FAILED))
            .then(|| reason.item().cloned().unwrap_or_default())
    }

    /// The error for a cancellation that was not (only) a condition: `None` when it was.
    fn other(&self, service_arn: &str) -> Option<LedgerError> {
        let codes: Vec<&str> = self
            .0
            .iter()
            .filter_map(CancellationReason::code)
            .filter(|code| *code != "None" && *code != CONDITION_FAILED)
            .collect();
        (!codes.is_empty()).then(|| LedgerError::Cancelled {
            service_arn: service_arn.to_string(),
            retryable: codes.iter().all(|code| TRANSIENT.contains(code)),
            codes: codes.join(", "),
        })
    }
}

/// The positions of the items of a take.
const QUARANTINE_ITEM: usize = 0;
const HEAD_ITEM: usize = 1;
const INTENT_ITEM: usize = 2;
/// The position of the head's release in a settle (after the record).
const RELEASE_ITEM: usize = 1;

impl Ledger {
    /// Takes the service for `intent`'s push in one write: refused when its digest is
    /// quarantined for the service or the head refuses the claim (`claim::refusal`); else the
    /// head names the push and the intent record is written. When a delivery of the same push
    /// already wrote its record, that record is resumed instead (a second write claims the head
    /// alone): the retry of an interrupted attempt, or the SDK's resend of a take whose answer
    /// was lost.
    pub async fn take(
        &self,
        intent: &DeploymentRecord,
        lease: &Lease,
        now_ms: u64,
    ) -> Result<Taken, LedgerError> {
        let Some(cancelled) = self.send_take(intent, lease, now_ms, true).await? else {
            return Ok(Taken::Held {
                record: Box::new(intent.clone()),
                resumed: false,
            });
        };
        if let Some(refused) = self.refused(&cancelled, intent, lease, now_ms)? {
            return Ok(refused);
        }
        let Some(earlier) = cancelled.condition_failed(INTENT_ITEM) else {
            return Err(self.unexplained(intent));
        };
        let earlier = Box::new(DeploymentRecord::from_item(&earlier)?);
        match self.send_take(intent, lease, now_ms, false).await? {
            None => Ok(Taken::Held {
                record: earlier,
                resumed: true,
            }),
            Some(cancelled) => self
                .refused(&cancelled, intent, lease, now_ms)?
                .ok_or_else(|| self.unexplained(intent)),
        }
    }

    /// The refusal a cancelled take carries, if the quarantine or the head refused it; an error
    /// when DynamoDB cancelled it for another reason.
    fn refused(
        &self,
        cancelled: &Cancelled,
        intent: &DeploymentRecord,
        lease: &Lease,
        now_ms: u64,
    ) -> Result<Option<Taken>, LedgerError> {
        if let Some(error) = cancelled.other(&intent.service_arn) {
            return Err(error);
        }
        if let Some(mark) = cancelled.condition_failed(QUARANTINE_ITEM) {
            return Ok(Some(Taken::Quarantined(quarantine_sentence(
                &intent.digest,
                &mark,
            ))));
        }
        Ok(cancelled.condition_failed(HEAD_ITEM).map(|head| {
            let claimant = Claimant {
                event_id: &intent.event_id,
                order_key: &intent.order_key,
                holder: &lease.holder,
                now_ms,
            };
            Taken::Refused(claim::refusal(&claim::Head::from_item(&head), &claimant))
        }))
    }

    fn unexplained(&self, intent: &DeploymentRecord) -> LedgerError {
        LedgerError::Cancelled {
            service_arn: intent.service_arn.clone(),
            codes: "no reason given".into(),
            retryable: true,
        }
    }

    /// One take: the quarantine mark must be absent, the head must admit the claim
    /// ([`PUSH_CLAIM_CONDITION`]), and (`with_intent`) the intent record must not exist yet.
    /// `None`: it landed; else why DynamoDB cancelled it.
    async fn send_take(
        &self,
        intent: &DeploymentRecord,
        lease: &Lease,
        now_ms: u64,
        with_intent: bool,
    ) -> Result<Option<Cancelled>, LedgerError> {
        let service = &intent.service_arn;
        let quarantine = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(service))
            .key("sk", s(format!("{QUARANTINE_PREFIX}{}", intent.digest)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| self.unbuildable(e))?;
        let head = Update::builder()
            .table_name(&self.table)
            .key("pk", s(service))
            .key("sk", s(HEAD_SK))
            .update_expression("SET order_key = :order, event_id = :event, digest = :digest, #state = :deploying, lease_until = :lease, holder = :holder, updated_at = :now_text REMOVE reason")
            .condition_expression(PUSH_CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(claim_values(intent, lease, now_ms)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| self.unbuildable(e))?;
        let mut items = vec![
            TransactWriteItem::builder()
                .condition_check(quarantine)
                .build(),
            TransactWriteItem::builder().update(head).build(),
        ];
        if with_intent {
            let record = Put::builder()
                .table_name(&self.table)
                .set_item(Some(intent.to_item()))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| self.unbuildable(e))?;
            items.push(TransactWriteItem::builder().put(record).build());
        }
        // Sent here, beside the items it holds, and not through a shared helper: the IAM check
        // (tests/iam_check.py) finds the actions a transaction needs from the item builders in
        // the function that sends it.
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        self.cancelled(sent)
    }

    /// Ends the push's hold in one write: the record as it ends (unless ECS's report of its end
    /// got there first: the conditions of [`Ledger::put_deploying`]), and the head released in
    /// the record's status (see [`Ledger::release`]). When the record had moved on, the head is
    /// released alone; when the head names another push, the record is still written, and the
    /// answer is [`LedgerError::LostLease`].
    pub(crate) async fn settle(&self, record: &DeploymentRecord) -> Result<(), LedgerError> {
        let (deploys_condition, deploys_values) = status_condition(&DEPLOYS, true);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .condition_expression(deploys_condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(deploys_values))
            .build()
            .map_err(|e| self.unbuildable(e))?;
        let (expression, values) = release_expression(
            &record.event_id,
            record.status,
            record.reason.as_deref(),
            &record.updated_at,
        );
        let release = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&record.service_arn))
            .key("sk", s(HEAD_SK))
            .update_expression(expression)
            .condition_expression("event_id = :event")
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| self.unbuildable(e))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(release).build(),
        ];
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Some(cancelled) = self.cancelled(sent)? else {
            return Ok(());
        };
        if let Some(error) = cancelled.other(&record.service_arn) {
            return Err(error);
        }
        if cancelled.condition_failed(RELEASE_ITEM).is_some() {
            self.put_deploying(record).await?;
            return Err(LedgerError::LostLease(record.service_arn.clone()));
        }
        self.release(
            &record.service_arn,
            &record.event_id,
            record.status,
            record.reason.as_deref(),
            &record.updated_at,
        )
        .await
    }

    /// A transaction's answer: `None` when it landed, else DynamoDB's reasons for cancelling it.
    fn cancelled(
        &self,
        sent: Result<TransactWriteItemsOutput, SdkError<TransactWriteItemsError, HttpResponse>>,
    ) -> Result<Option<Cancelled>, LedgerError> {
        match sent {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    Ok(Some(Cancelled(cancelled.cancellation_reasons().to_vec())))
                }
                _ => Err(self.failed("dynamodb:TransactWriteItems", e).into()),
            },
        }
    }

    fn unbuildable(&self, e: aws_sdk_dynamodb::error::BuildError) -> LedgerError {
        LedgerError::Unbuildable(e.to_string())
    }
}

/// The values [`PUSH_CLAIM_CONDITION`] and the head's new state name.
fn claim_values(intent: &DeploymentRecord, lease: &Lease, now_ms: u64) -> Item {
    HashMap::from([
        (":order".to_string(), s(&intent.order_key)),
        (":event".to_string(), s(&intent.event_id)),
        (":digest".to_string(), s(&intent.digest)),
        (":deploying".to_string(), s(Status::Deploying.as_str())),
        (
            ":lease".to_string(),
            AttributeValue::N(lease.until_ms.to_string()),
        ),
        (":holder".to_string(), s(&lease.holder)),
        (":now".to_string(), AttributeValue::N(now_ms.to_string())),
        (":now_text".to_string(), s(&intent.updated_at)),
    ])
}

/// The head's release in `status` (and `reason`) by the push `event_id`, as
/// [`Ledger::release`] and [`Ledger::settle`] write it: the lease ends.
pub(super) fn release_expression(
    event_id: &str,
    status: Status,
    reason: Option<&str>,
    now_text: &str,
) -> (&'static str, Item) {
    let mut values = HashMap::from([
        (":event".to_string(), s(event_id)),
        (":state".to_string(), s(status.as_str())),
        (":zero".to_string(), AttributeValue::N("0".into())),
        (":now_text".to_string(), s(now_text)),
    ]);
    let expression = match reason {
        Some(reason) => {
            values.insert(":reason".to_string(), s(reason));
            "SET #state = :state, lease_until = :zero, updated_at = :now_text, reason = :reason"
        }
        None => "SET #state = :state, lease_until = :zero, updated_at = :now_text REMOVE reason",
    };
    (expression, values)
}
