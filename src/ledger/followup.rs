//! What the rollback function keeps in the ledger beside deployment records: quarantined
//! digests, ECS deployments it saw but did not start, the in-flight index, rollback claims.

use super::record::{s, text, Item};
use super::{
    is_condition_failure, DeploymentRecord, Lease, Ledger, LedgerError, Status, HEAD_SK,
    HOOK_ANSWER_PREFIX, QUARANTINE_LIFTED_PREFIX, QUARANTINE_PREFIX, SEEN_PREFIX,
};
use aws_sdk_dynamodb::types::AttributeValue;

impl Ledger {
    /// Marks `record`'s digest as bad for its service: later pushes of it are skipped. The first
    /// mark is kept (a later failure of the same digest adds nothing to its evidence).
    pub(crate) async fn quarantine(
        &self,
        record: &DeploymentRecord,
        reason: &str,
        at: &str,
    ) -> Result<(), LedgerError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&record.service_arn))
            .item("sk", s(format!("{QUARANTINE_PREFIX}{}", record.digest)))
            .item("digest", s(&record.digest))
            .item("deployment", s(record.sk()))
            .item("reason", s(reason))
            .item("at", s(at))
            // The first quarantine's reason stays: it holds the evidence (a gate's status codes
            // and latencies), and a later report of the same failure only repeats it.
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(self.failed("dynamodb:PutItem", e).into()),
        }
    }

    /// Why `digest` is quarantined for the service, if it is, as the sentence a skipped push
    /// reports.
    pub async fn quarantined(
        &self,
        service_arn: &str,
        digest: &str,
    ) -> Result<Option<String>, LedgerError> {
        let item = self
            .get(service_arn, &format!("{QUARANTINE_PREFIX}{digest}"))
            .await?;
        Ok(item.map(|item| quarantine_sentence(digest, &item)))
    }

    /// Notes an ECS deployment event pushdeploy did not start, for the record only: one item per
    /// deployment and state, a repeat of the event overwriting it.
    pub async fn record_seen(
        &self,
        service_arn: &str,
        deployment_id: &str,
        state: &str,
        reason: &str,
        at: &str,
    ) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_arn))
            .item("sk", s(format!("{SEEN_PREFIX}{deployment_id}#{state}")))
            .item("reason", s(reason))
            .item("at", s(at))
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:PutItem", e))?;
        Ok(())
    }

    /// Lifts the quarantine of `digest` for the service, keeping who lifted it (`by`), when and
    /// the reason it had in a `QUARANTINE_LIFTED#` item; the reason it had, or `None` when the
    /// digest was not quarantined.
    pub async fn lift_quarantine(
        &self,
        service_arn: &str,
        digest: &str,
        by: &str,
        at: &str,
    ) -> Result<Option<String>, LedgerError> {
        let sk = format!("{QUARANTINE_PREFIX}{digest}");
        let Some(item) = self.get(service_arn, &sk).await? else {
            return Ok(None);
        };
        let reason = text(&item, "reason").unwrap_or_default();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_arn))
            .item("sk", s(format!("{QUARANTINE_LIFTED_PREFIX}{digest}#{at}")))
            .item("digest", s(digest))
            .item("reason", s(&reason))
            .item("by", s(by))
            .item("at", s(at))
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:PutItem", e))?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(service_arn))
            .key("sk", s(&sk))
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:DeleteItem", e))?;
        Ok(Some(reason))
    }

    /// Records a person's answer to a pause hook: who (`by`, the caller's ARN), what
    /// (`approved` or `rejected`) and when, one item per hook of a service deployment.
    pub async fn record_hook_answer(
        &self,
        service_arn: &str,
        service_deployment_arn: &str,
        hook_id: &str,
        answer: &str,
        by: &str,
        at: &str,
    ) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(service_arn))
            .item(
                "sk",
                s(format!(
                    "{HOOK_ANSWER_PREFIX}{service_deployment_arn}#{hook_id}"
                )),
            )
            .item("service_deployment_arn", s(service_deployment_arn))
            .item("hook_id", s(hook_id))
            .item("answer", s(answer))
            .item("by", s(by))
            .item("at", s(at))
            .send()
            .await
            .map_err(|e| self.failed("dynamodb:PutItem", e))?;
        Ok(())
    }

    /// Deployments ECS has been rolling out since before `cutoff` (an RFC 3339 time).
    pub async fn in_flight_since_before(
        &self,
        cutoff: &str,
    ) -> Result<Vec<DeploymentRecord>, LedgerError> {
        self.in_flight_query(Some(cutoff)).await
    }

    /// Takes the service back from `failed` to roll it back, under `lease`: only while the
    /// failed push still holds the head and no other live invocation is deploying it
    /// ([`super::claim::rollback_may_claim`]). `false` when refused: a newer push owns it now
    /// (and wins), or a live invocation still works on it.
    pub async fn claim_for_rollback(
        &self,
        failed: &DeploymentRecord,
        lease: &Lease,
        now_ms: u64,
        now_text: &str,
    ) -> Result<bool, LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&failed.service_arn))
            .key("sk", s(HEAD_SK))
            .update_expression(
                "SET #state = :deploying, lease_until = :lease, holder = :holder, updated_at = :now_text",
            )
            .condition_expression(super::claim::ROLLBACK_CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":event", s(&failed.event_id))
            .expression_attribute_values(":deploying", s(Status::Deploying.as_str()))
            .expression_attribute_values(":lease", AttributeValue::N(lease.until_ms.to_string()))
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_text", s(now_text))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.failed("dynamodb:UpdateItem", e).into()),
        }
    }
}

/// What a push of `digest` reports when the quarantine mark `item` refuses it.
pub(super) fn quarantine_sentence(digest: &str, item: &Item) -> String {
    format!(
        "quarantined: {digest} failed on this service at {} ({}); push a new image",
        text(item, "at").unwrap_or_default(),
        text(item, "reason").unwrap_or_default()
    )
}
