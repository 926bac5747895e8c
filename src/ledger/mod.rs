//! The deployment ledger (DynamoDB). Keys, for the readers that come later (rollback,
//! quarantine, history):
//!
//! | item | pk | sk | what it is |
//! |---|---|---|---|
//! | head | service ARN | `HEAD` | the service's newest accepted push and its lease: serialises deployments of one service |
//! | deployment | service ARN | `DEPLOY#<pushed-at>#<event-id>` | one record per (service, deployment); newest last |
//!
//! "Latest deployments of service X" is a Query on pk = X, sk begins_with `DEPLOY#`, backwards.
//! "Has digest D been deployed to X" is a Query of the `by-digest` index on
//! `service_digest` = `X#D`.

use crate::aws::{AwsError, Problem};
use crate::event::Push;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

pub mod claim;
mod followup;
use followup::quarantine_sentence;
mod hold;
mod phases;
mod queries;
mod record;
pub use hold::Taken;
pub(crate) use phases::Written;
pub use record::{deploy_sk, DeploymentRecord, Kind, Status, ALL_STATUSES, DEPLOY_PREFIX};
use record::{s, text, Item};

/// The sort key of a service's head item.
pub const HEAD_SK: &str = "HEAD";
/// The index on `service_digest` (`<service ARN>#<digest>`): every deployment of one digest to
/// one service.
pub const BY_DIGEST_INDEX: &str = "by-digest";
/// The sparse index of the deployment records the sweep watches, by `inflight` partition and
/// `updated_at`: those ECS is still rolling out, and failed ones awaiting ECS's own rollback.
pub const IN_FLIGHT_INDEX: &str = "in-flight";
/// The sort-key prefix of a digest quarantined for a service (`QUARANTINE#<digest>`).
pub const QUARANTINE_PREFIX: &str = "QUARANTINE#";
/// The `sk` prefix of a lifted quarantine (`pushdeploy unquarantine`): who, when, the reason it had.
pub const QUARANTINE_LIFTED_PREFIX: &str = "QUARANTINE_LIFTED#";
/// The `sk` prefix of a person's answer to a pause hook (`pushdeploy approve` / `reject`).
pub const HOOK_ANSWER_PREFIX: &str = "HOOK_ANSWER#";
/// The sort-key prefix of an ECS deployment event pushdeploy did not start
/// (`SEEN#<deployment id>#<state>`).
pub const SEEN_PREFIX: &str = "SEEN#";

/// The outcome of trying to take a service for a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The push owns the service until its lease ends. `resumed` is what an earlier, interrupted
    /// delivery of the same event had recorded.
    Acquired {
        /// The interrupted delivery's record, if it had written one.
        resumed: Option<Box<DeploymentRecord>>,
    },
    /// Not now: `retryable` says whether this invocation must fail so Lambda tries again later.
    Busy {
        /// Why, for the service's outcome.
        reason: String,
        /// Whether to fail the invocation so that Lambda runs it again.
        retryable: bool,
    },
    /// A newer push already owns the service.
    Stale {
        /// Which newer push, and when it was pushed, for the service's outcome.
        reason: String,
    },
    /// This very push was already handled by an earlier delivery.
    Finished {
        /// How the earlier delivery ended, for the service's outcome.
        reason: String,
    },
}

/// How long a claim holds, and who holds it. The holder is the Lambda request id: Lambda's own
/// retry of a failed invocation keeps it, and only ever runs after the failed attempt ended, so
/// the same holder may take the claim again at any time. That covers a claim whose write landed
/// but whose answer was lost (the SDK's resend of it then finds its own claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The Lambda request id of the invocation that holds the claim.
    pub holder: String,
    /// Epoch milliseconds: the invocation's deadline, after which it is surely gone.
    pub until_ms: u64,
}

/// Why a ledger call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Said as AWS's problem alone when it is one a setting or a grant fixes (the sentence names
    /// the table when it is missing), else with the ledger's name for it.
    #[error("{}", match &.0.problem {
        Some(problem) => problem.to_string(),
        None => format!("the deployment ledger is unavailable: {}", .0),
    })]
    Aws(#[from] AwsError),
    /// An item read from the table lacks a field the code needs, or holds a value it does not
    /// know: no retry fixes it.
    #[error("deployment ledger item {pk} / {sk} is malformed: {problem}")]
    Malformed {
        /// The item's partition key.
        pk: String,
        /// The item's sort key.
        sk: String,
        /// What is missing or wrong in it.
        problem: String,
    },
    /// Releasing the head found another push's event id on it: a newer push claimed the service
    /// once this one's lease had ended. Holds the service ARN.
    #[error(
        "the ledger head of {0} no longer belongs to this push (taken over after the lease ended)"
    )]
    LostLease(String),
    /// DynamoDB cancelled a transaction for a reason other than its conditions: another
    /// transaction on the same item at the same moment, or throttling (a retry gets past both),
    /// or a request it could not accept (no retry does).
    #[error("the deployment ledger cancelled a write to {service_arn} ({codes})")]
    Cancelled {
        /// The service whose items the transaction wrote.
        service_arn: String,
        /// DynamoDB's cancellation codes, other than conditions.
        codes: String,
        /// Whether every code is one a later attempt gets past.
        retryable: bool,
    },
    /// A ledger request pushdeploy built lacks a field DynamoDB requires: a bug, which no retry
    /// fixes; please report it.
    #[error("pushdeploy built an invalid ledger request ({0}); this is a bug, please report it")]
    Unbuildable(String),
}

impl LedgerError {
    /// Whether a retry of the invocation may succeed where this failed.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            LedgerError::Aws(e) => e.retryable,
            LedgerError::Malformed { .. } => false,
            // A newer push took the service after this one's lease ended; that push deploys its
            // own image, so a retry of this one would only be refused by the claim.
            LedgerError::LostLease(_) => false,
            LedgerError::Cancelled { retryable, .. } => *retryable,
            LedgerError::Unbuildable(_) => false,
        }
    }
}

/// The deployment ledger: what it promises is that each service has one owner at a time (the
/// newest push, or the rollback of a failed one), that every deployment and rollback has a
/// record, and that a retry finds what an interrupted attempt left.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    table: String,
}

pub(super) fn is_condition_failure<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

impl Ledger {
    /// The ledger in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Ledger {
        Ledger {
            client,
            table: table.into(),
        }
    }

    /// A failed call on the table: [`AwsError::from_sdk`], and a table DynamoDB does not know
    /// (ResourceNotFoundException) named, with its region, as the setting to correct.
    pub(super) fn failed<E>(
        &self,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> AwsError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let mut error = AwsError::from_sdk(operation, err);
        if error.code.as_deref() == Some("ResourceNotFoundException") {
            error.problem = Some(Box::new(Problem::NoTable {
                table: self.table.clone(),
                region: self
                    .client
                    .config()
                    .region()
                    .map_or_else(|| "no region".to_string(), |r| r.to_string()),
            }));
        }
        error
    }

    /// Takes `service_arn` for `push` until `lease.until_ms`, atomically: only when no push owns
    /// it, an older push is done with it (or its lease ended), or an interrupted delivery of this
    /// same push left it behind. Taken, the head names the push, `deploying`, and a resumed
    /// delivery's record comes back ([`Claim::Acquired`]); refused, the head is read to say why.
    pub async fn claim(
        &self,
        service_arn: &str,
        push: &Push,
        lease: &Lease,
        now_ms: u64,
        now_text: &str,
    ) -> Result<Claim, LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_arn))
            .key("sk", s(HEAD_SK))
            .update_expression("SET order_key = :order, event_id = :event, digest = :digest, #state = :deploying, lease_until = :lease, holder = :holder, updated_at = :now_text REMOVE reason")
            .condition_expression(claim::PUSH_CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":order", s(push.order_key()))
            .expression_attribute_values(":event", s(&push.event_id))
            .expression_attribute_values(":digest", s(push.digest.as_str()))
            .expression_attribute_values(":deploying", s(Status::Deploying.as_str()))
            .expression_attribute_values(":lease", AttributeValue::N(lease.until_ms.to_string()))
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_text", s(now_text))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let previous = out.attributes.unwrap_or_default();
                let resumed =
                    if text(&previous, "event_id").as_deref() == Some(push.event_id.as_str()) {
                        self.record(service_arn, &push.order_key())
                            .await?
                            .map(Box::new)
                    } else {
                        None
                    };
                Ok(Claim::Acquired { resumed })
            }
            Err(e) if is_condition_failure(&e) => {
                self.why_not(service_arn, push, &lease.holder, now_ms).await
            }
            Err(e) => Err(self.failed("dynamodb:UpdateItem", e).into()),
        }
    }

    /// Reads the head that refused a claim and says why ([`claim::refusal`]).
    async fn why_not(
        &self,
        service_arn: &str,
        push: &Push,
        holder: &str,
        now_ms: u64,
    ) -> Result<Claim, LedgerError> {
        let head = self.get(service_arn, HEAD_SK).await?.unwrap_or_default();
        let order_key = push.order_key();
        let claimant = claim::Claimant {
            event_id: &push.event_id,
            order_key: &order_key,
            holder,
            now_ms,
        };
        Ok(claim::refusal(&claim::Head::from_item(&head), &claimant))
    }

    /// Ends a push's hold on the service: the head takes `status` (and `reason`) and its lease
    /// ends. A `Deploying` end keeps the claim but ends its lease, so that the retry of the same
    /// event can resume at once. Refused ([`LedgerError::LostLease`]) when the head names
    /// another push.
    pub async fn release(
        &self,
        service_arn: &str,
        event_id: &str,
        status: Status,
        reason: Option<&str>,
        now_text: &str,
    ) -> Result<(), LedgerError> {
        let (expression, values) = hold::release_expression(event_id, status, reason, now_text);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_arn))
            .key("sk", s(HEAD_SK))
            .update_expression(expression)
            .condition_expression("event_id = :event")
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values));
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => {
                Err(LedgerError::LostLease(service_arn.to_string()))
            }
            Err(e) => Err(self.failed("dynamodb:UpdateItem", e).into()),
        }
    }

    /// Writes the whole record, unconditionally (over whatever the item held); the same record
    /// written twice is the same item.
    pub async fn put(&self, record: &DeploymentRecord) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:PutItem", e))?;
        Ok(())
    }

    /// Reads the record of the deployment of `order_key` to the service, if there is one
    /// (a strongly consistent read).
    pub async fn record(
        &self,
        service_arn: &str,
        order_key: &str,
    ) -> Result<Option<DeploymentRecord>, LedgerError> {
        self.get(service_arn, &deploy_sk(order_key))
            .await?
            .as_ref()
            .map(DeploymentRecord::from_item)
            .transpose()
    }

    /// Reads the service's latest `limit` records (deployments and rollbacks), newest first.
    pub async fn latest(
        &self,
        service_arn: &str,
        limit: i32,
    ) -> Result<Vec<DeploymentRecord>, LedgerError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(service_arn))
            .expression_attribute_values(":prefix", s(DEPLOY_PREFIX))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:Query", e))?;
        out.items()
            .iter()
            .map(DeploymentRecord::from_item)
            .collect()
    }

    /// Every deployment of `digest` to the service, oldest first, read from the `by-digest`
    /// index (so eventually consistent: a write of a moment ago may be missing).
    pub async fn deployments_of_digest(
        &self,
        service_arn: &str,
        digest: &str,
    ) -> Result<Vec<DeploymentRecord>, LedgerError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_DIGEST_INDEX)
            .key_condition_expression("service_digest = :sd")
            .expression_attribute_values(":sd", s(format!("{service_arn}#{digest}")))
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:Query", e))?;
        out.items()
            .iter()
            .map(DeploymentRecord::from_item)
            .collect()
    }

    pub(super) async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:GetItem", e))?;
        Ok(out.item)
    }
}
