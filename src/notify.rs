//! Deployment notifications on an optional SNS topic: one short message per milestone
//! (started, completed, failed, rolled back, needs a human). A notification that cannot be sent
//! is logged and dropped: it never fails or repeats a deployment.

use crate::outcome::{Milestone, Outcome};
use crate::telemetry::Subject;
use aws_sdk_sns::types::MessageAttributeValue;
use std::time::Duration;

/// SNS's limit for a subject.
const SUBJECT_MAX: usize = 100;
/// How long a notification may hold up the invocation.
const PUBLISH_WITHIN: Duration = Duration::from_secs(5);

/// One message, ready for SNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub(crate) subject: String,
    pub(crate) message: String,
    /// For subscription filter policies: `outcome`, `cluster`, `service`, `repository`.
    pub(crate) attributes: Vec<(&'static str, String)>,
}

/// What an operator reads first: which service, what happened.
fn headline(milestone: Milestone) -> &'static str {
    match milestone {
        Milestone::Started => "deployment started",
        Milestone::Completed => "deployment completed",
        Milestone::Failed => "deployment failed",
        Milestone::RolledBack => "deployment failed and was rolled back",
        Milestone::NeedsHuman => "rollback failed, needs a human",
        Milestone::AwaitingApproval => "deployment paused, awaiting approval",
    }
}

/// The notification of an outcome, if it marks a milestone.
pub(crate) fn notification(subject: Subject<'_>, o: &Outcome) -> Option<Notification> {
    let milestone = o.milestone()?;
    let repository = o.repository.as_deref().unwrap_or(subject.repository);
    let title = format!(
        "pushdeploy: {}/{} {}",
        o.cluster,
        o.service,
        headline(milestone)
    );
    let mut attributes = vec![
        ("outcome", milestone.as_str().to_string()),
        ("cluster", o.cluster.clone()),
        ("service", o.service.clone()),
    ];
    if !repository.is_empty() {
        attributes.push(("repository", repository.to_string()));
    }
    Some(Notification {
        subject: subject_line(&title),
        message: message(subject, o, milestone),
        attributes,
    })
}

/// The body: the headline first, then one line per fact the outcome knows, the event last.
fn message(subject: Subject<'_>, o: &Outcome, milestone: Milestone) -> String {
    let lines = [
        Some(format!(
            "{}/{}: {}.",
            o.cluster,
            o.service,
            headline(milestone)
        )),
        image_line(subject, o),
        revision_line(o),
        o.deployment_id
            .as_ref()
            .map(|id| format!("ECS deployment: {id}")),
        o.push_to_completed_ms.map(|ms| {
            format!(
                "Push to completed: {:.0} s",
                Duration::from_millis(ms).as_secs_f64()
            )
        }),
        o.reason.as_ref().map(|reason| format!("Why: {reason}")),
        o.warning.as_ref().map(|warning| format!("Note: {warning}")),
        Some(format!("Event: {}", subject.event_id)),
    ];
    lines.into_iter().flatten().collect::<Vec<_>>().join("\n")
}

/// The outcome's own image, else the push's; none when neither names a repository.
fn image_line(subject: Subject<'_>, o: &Outcome) -> Option<String> {
    let repository = o.repository.as_deref().unwrap_or(subject.repository);
    let tag = o.tag.as_deref().unwrap_or(subject.tag);
    let digest = o.digest.as_deref().unwrap_or(subject.digest);
    if repository.is_empty() {
        return None;
    }
    let image = if tag.is_empty() {
        repository.to_string()
    } else {
        format!("{repository}:{tag}")
    };
    Some(format!("Image: {image} ({digest})"))
}

/// From -> to when the outcome moved the service, else the one revision it knows.
fn revision_line(o: &Outcome) -> Option<String> {
    match (&o.previous_task_definition, &o.task_definition) {
        (Some(from), Some(to)) if from != to => {
            Some(format!("Revision: {} -> {}", short(from), short(to)))
        }
        (_, Some(to)) => Some(format!("Revision: {}", short(to))),
        _ => None,
    }
}

/// `family:revision` from a task definition ARN: what people call a revision.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// SNS subjects are printable ASCII, one line, at most 100 characters.
fn subject_line(title: &str) -> String {
    let printable: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if printable.len() <= SUBJECT_MAX {
        printable
    } else {
        format!("{}...", &printable[..SUBJECT_MAX - 3])
    }
}

/// Sends notifications to the topic, when there is one.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    sns: aws_sdk_sns::Client,
    topic_arn: Option<String>,
}

impl Notifier {
    pub(crate) fn new(sns: aws_sdk_sns::Client, topic_arn: Option<String>) -> Notifier {
        Notifier { sns, topic_arn }
    }

    /// Publishes one notification per milestone among `outcomes`, concurrently; failures are
    /// logged, never returned.
    pub(crate) async fn send(&self, subject: Subject<'_>, outcomes: &[Outcome]) {
        let Some(topic) = self.topic_arn.as_deref() else {
            return;
        };
        let sends = outcomes.iter().filter_map(|o| {
            let n = notification(subject, o)?;
            Some(async move {
                let result = tokio::time::timeout(PUBLISH_WITHIN, self.publish(topic, &n)).await;
                let problem = match result {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(_) => format!("no answer within {} s", PUBLISH_WITHIN.as_secs()),
                };
                tracing::warn!(
                    event_id = subject.event_id,
                    cluster = o.cluster.as_str(),
                    service = o.service.as_str(),
                    outcome = o.outcome.as_str(),
                    reason = problem.as_str(),
                    "could not send the notification to {topic}; the deployment is not affected"
                );
            })
        });
        futures::future::join_all(sends).await;
    }

    async fn publish(&self, topic: &str, n: &Notification) -> Result<(), String> {
        let mut request = self
            .sns
            .publish()
            .topic_arn(topic)
            .subject(&n.subject)
            .message(&n.message);
        for (name, value) in &n.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())?;
            request = request.message_attributes(*name, attribute);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::aws::AwsError::from_sdk("sns:Publish", e).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::ServiceKey;
    use crate::outcome::OutcomeKind;

    fn subject() -> Subject<'static> {
        Subject {
            event_id: "ev-1",
            repository: "web",
            tag: "latest",
            digest: "sha256:abc",
        }
    }

    #[test]
    fn a_started_deployment_names_service_image_and_revisions() {
        let key = ServiceKey {
            cluster: "prod".into(),
            service: "web".into(),
        };
        let o = Outcome {
            task_definition: Some("arn:aws:ecs:us-east-1:1:task-definition/web:8".into()),
            previous_task_definition: Some("arn:aws:ecs:us-east-1:1:task-definition/web:7".into()),
            deployment_id: Some("ecs-svc/1".into()),
            ..Outcome::new(&key, OutcomeKind::Deployed, None)
        };
        let n = notification(subject(), &o).unwrap();
        assert_eq!(n.subject, "pushdeploy: prod/web deployment started");
        assert_eq!(
            n.message,
            "prod/web: deployment started.\nImage: web:latest (sha256:abc)\nRevision: web:7 -> web:8\nECS deployment: ecs-svc/1\nEvent: ev-1"
        );
        assert_eq!(n.attributes[0], ("outcome", "started".to_string()));
        let skipped = Outcome::new(&key, OutcomeKind::Skipped, None);
        assert_eq!(notification(subject(), &skipped), None);
    }

    #[test]
    fn a_failed_rollback_asks_for_a_human() {
        let key = ServiceKey {
            cluster: "prod".into(),
            service: "web".into(),
        };
        let o = Outcome::new(
            &key,
            OutcomeKind::NeedsHuman,
            Some("the rollback deployment failed".into()),
        );
        let n = notification(subject(), &o).unwrap();
        assert_eq!(
            n.subject,
            "pushdeploy: prod/web rollback failed, needs a human"
        );
        assert!(n.message.contains("Why: the rollback deployment failed"));
        assert_eq!(n.attributes[0], ("outcome", "needs_human".to_string()));
        // A retryable failure is not news yet: Lambda runs it again.
        let retry = Outcome::failed(&key, "throttled", true);
        assert_eq!(notification(subject(), &retry), None);
    }

    #[test]
    fn subjects_fit_sns_rules() {
        let long = format!("pushdeploy: {}/x deployment failed\n", "c".repeat(200));
        let s = subject_line(&long);
        assert_eq!(s.len(), SUBJECT_MAX);
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }
}
