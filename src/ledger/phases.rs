//! Who may write a deployment record, and when. Both functions write the same record: the deploy
//! function while it deploys, the rollback function when ECS reports on the deployment. ECS
//! sends IN_PROGRESS as soon as UpdateService starts a deployment ("Amazon ECS service deployment
//! state change events", Developer Guide), so the rollback function can read the record before
//! the deploy function's last write and write after it. Every write is therefore conditional on
//! the record still being in a status the writer may move it from, and the rollback function's
//! event writes change only the fields it owns: a write never undoes another.

use super::record::{s, Item, AWAITS_ECS_ROLLBACK, INFLIGHT, INFLIGHT_YES, SWEEP_RUNNING};
use super::{is_condition_failure, DeploymentRecord, Ledger, LedgerError, Status};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Whether a conditional write landed, or found the record already moved on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Landed,
    /// The record was no longer in a status this writer may move it from: someone who knew
    /// more (ECS's report of the deployment's end) wrote it first. Nothing was changed.
    MovedOn,
}

/// Where a deployment record may stand for the deploy function to (re)write it: not yet
/// written, or still its own (claimed, or deployed by an earlier delivery of the same push).
pub(super) const DEPLOYS: [Status; 2] = [Status::Deploying, Status::Deployed];

/// The condition that a record stands in one of `from` (`#status` is `status`), or
/// (`may_create`) does not exist yet; with its values.
pub(super) fn status_condition(from: &[Status], may_create: bool) -> (String, Item) {
    let values: Item = from
        .iter()
        .enumerate()
        .map(|(i, status)| (format!(":from{i}"), s(status.as_str())))
        .collect();
    let mut names: Vec<&str> = values.keys().map(String::as_str).collect();
    names.sort_unstable();
    let in_status = format!("#status IN ({})", names.join(", "));
    let condition = if may_create {
        format!("attribute_not_exists(pk) OR {in_status}")
    } else {
        format!("attribute_exists(pk) AND {in_status}")
    };
    (condition, values)
}

impl Ledger {
    /// A conditional write's answer: landed, or the condition found the record moved on.
    fn conditional<T, E>(
        &self,
        sent: Result<T, SdkError<E, HttpResponse>>,
        operation: &'static str,
    ) -> Result<Written, LedgerError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match sent {
            Ok(_) => Ok(Written::Landed),
            Err(e) if is_condition_failure(&e) => Ok(Written::MovedOn),
            Err(e) => Err(self.failed(operation, e).into()),
        }
    }

    /// An UpdateItem of `record`'s item, to be given its expressions.
    fn record_update(&self, record: &DeploymentRecord) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&record.service_arn))
            .key("sk", s(record.sk()))
    }

    /// The deploy function's write of its record: only while the deployment is its own (new,
    /// `deploying` or `deployed`), never over an end ECS already reported.
    pub(crate) async fn put_deploying(
        &self,
        record: &DeploymentRecord,
    ) -> Result<Written, LedgerError> {
        self.put_from(record, true, &DEPLOYS).await
    }

    /// The rollback function's write of a failure over a record it read unsettled (in flight,
    /// or only inferred superseded, which ECS's FAILED outranks): lands only if no one settled
    /// it meanwhile.
    pub(crate) async fn put_unsettled(
        &self,
        record: &DeploymentRecord,
    ) -> Result<Written, LedgerError> {
        let unsettled = [Status::Deploying, Status::Deployed, Status::Superseded];
        self.put_from(record, false, &unsettled).await
    }

    async fn put_from(
        &self,
        record: &DeploymentRecord,
        may_create: bool,
        from: &[Status],
    ) -> Result<Written, LedgerError> {
        let (condition, values) = status_condition(from, may_create);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .expression_attribute_names("#status", "status")
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values));
        self.conditional(put.send().await, "dynamodb:PutItem")
    }

    /// ECS's IN_PROGRESS: the record learns its ECS deployment id, and nothing else changes.
    /// Lands only on an existing record without an id or with this one: an id already recorded
    /// is kept.
    pub(crate) async fn link_deployment(
        &self,
        record: &DeploymentRecord,
        deployment_id: &str,
        now: &str,
    ) -> Result<Written, LedgerError> {
        let update = self
            .record_update(record)
            .update_expression("SET deployment_id = :id, updated_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(deployment_id) OR deployment_id = :id)",
            )
            .expression_attribute_values(":id", s(deployment_id))
            .expression_attribute_values(":now", s(now));
        self.conditional(update.send().await, "dynamodb:UpdateItem")
    }

    /// ECS shows the deployment replaced by a newer one before it completed: it leaves the
    /// in-flight index as `superseded`; only from `deployed`.
    pub(crate) async fn mark_superseded(
        &self,
        record: &DeploymentRecord,
        reason: &str,
        now: &str,
    ) -> Result<Written, LedgerError> {
        let update = self
            .record_update(record)
            .update_expression(format!(
                "SET #status = :superseded, reason = :reason, updated_at = :now REMOVE {INFLIGHT}"
            ))
            .condition_expression("attribute_exists(pk) AND #status = :deployed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":superseded", s(Status::Superseded.as_str()))
            .expression_attribute_values(":deployed", s(Status::Deployed.as_str()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(now));
        self.conditional(update.send().await, "dynamodb:UpdateItem")
    }

    /// The sweep found the deployment progressing: keep its running count for the next look,
    /// and move its deadline on by one deploy timeout (the in-flight index orders by
    /// `updated_at`); only while it is `deployed`.
    pub(crate) async fn note_progress(
        &self,
        record: &DeploymentRecord,
        running: i32,
        now: &str,
    ) -> Result<Written, LedgerError> {
        let update = self
            .record_update(record)
            .update_expression(format!("SET {SWEEP_RUNNING} = :running, updated_at = :now"))
            .condition_expression("attribute_exists(pk) AND #status = :deployed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":deployed", s(Status::Deployed.as_str()))
            .expression_attribute_values(":running", AttributeValue::N(running.to_string()))
            .expression_attribute_values(":now", s(now));
        self.conditional(update.send().await, "dynamodb:UpdateItem")
    }

    /// The sweep saw ECS roll the service back as expected: the failed deployment leaves the
    /// sweep's watch; only while it still awaits that.
    pub(crate) async fn ecs_rollback_seen(
        &self,
        record: &DeploymentRecord,
        now: &str,
    ) -> Result<Written, LedgerError> {
        let update = format!("SET updated_at = :now REMOVE {AWAITS_ECS_ROLLBACK}, {INFLIGHT}");
        self.end_wait(record, &update, now).await
    }

    /// ECS did not roll back as expected: the failed deployment goes back in flight, so that
    /// pushdeploy's own failure handling takes it (claim, rollback, record); only while it still
    /// awaits ECS.
    pub(crate) async fn reopen_for_rollback(
        &self,
        record: &DeploymentRecord,
        now: &str,
    ) -> Result<Written, LedgerError> {
        let update = format!(
            "SET #status = :deployed, {INFLIGHT} = :yes, updated_at = :now REMOVE {AWAITS_ECS_ROLLBACK}"
        );
        self.end_wait(record, &update, now).await
    }

    /// Applies `update` to a failed record that still awaits ECS's rollback.
    async fn end_wait(
        &self,
        record: &DeploymentRecord,
        update: &str,
        now: &str,
    ) -> Result<Written, LedgerError> {
        let mut request = self
            .record_update(record)
            .update_expression(update)
            .condition_expression(format!(
                "attribute_exists({AWAITS_ECS_ROLLBACK}) AND #status = :failed"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", s(Status::Failed.as_str()))
            .expression_attribute_values(":now", s(now));
        if update.contains(":deployed") {
            request = request
                .expression_attribute_values(":deployed", s(Status::Deployed.as_str()))
                .expression_attribute_values(":yes", s(INFLIGHT_YES));
        }
        self.conditional(request.send().await, "dynamodb:UpdateItem")
    }

    /// ECS's COMPLETED: the deployment succeeded and leaves the in-flight index; from
    /// `deploying` (the deploy function's last write not landed yet), `deployed`, or
    /// `superseded` (it completed, then a newer deployment replaced it: ECS's word wins).
    pub(crate) async fn mark_succeeded(
        &self,
        record: &DeploymentRecord,
        deployment_id: Option<&str>,
        now: &str,
    ) -> Result<Written, LedgerError> {
        // A CodeDeploy deployment has no ECS deployment id to keep.
        let keep_id = if deployment_id.is_some() {
            ", deployment_id = if_not_exists(deployment_id, :id)"
        } else {
            ""
        };
        let update = self
            .record_update(record)
            .update_expression(format!(
                "SET #status = :succeeded, updated_at = :now{keep_id} REMOVE {INFLIGHT}, reason"
            ))
            .condition_expression(
                "attribute_exists(pk) AND #status IN (:deploying, :deployed, :superseded)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":superseded", s(Status::Superseded.as_str()))
            .expression_attribute_values(":succeeded", s(Status::Succeeded.as_str()))
            .expression_attribute_values(":deploying", s(Status::Deploying.as_str()))
            .expression_attribute_values(":deployed", s(Status::Deployed.as_str()))
            .expression_attribute_values(":now", s(now));
        let update = match deployment_id {
            Some(id) => update.expression_attribute_values(":id", s(id)),
            None => update,
        };
        self.conditional(update.send().await, "dynamodb:UpdateItem")
    }
}
