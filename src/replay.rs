//! Replays the dead-letter queues through the functions' own handlers. A dead letter is either
//! Lambda's on-failure record (the event in `requestPayload`, the error in `responsePayload`)
//! or an event EventBridge could not deliver (the event itself, the error in message
//! attributes). Both go through exactly the path a live delivery takes, so the ledger makes a
//! replay of something already done a skip, never a second deployment.

use crate::aws::Aws;
use crate::config::Config;
use crate::deploy::{Deployer, Invocation};
use crate::rollback::RollbackHandler;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use serde_json::Value;
use std::collections::HashMap;

/// Which function an event belongs to, by its `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Deploy,
    Rollback,
}

impl Function {
    pub fn of(event: &Value) -> Option<Function> {
        match event.get("detail-type")?.as_str()? {
            "ECR Image Action" => Some(Function::Deploy),
            "ECS Deployment State Change" | "Scheduled Event" => Some(Function::Rollback),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Deploy => "deploy",
            Function::Rollback => "rollback",
        }
    }
}

/// A dead letter, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub event: Value,
    pub function: Function,
    /// The function the event was meant for, when the dead letter names it.
    pub function_arn: Option<String>,
    /// Why it landed in the queue, in the words of whoever put it there.
    pub why: String,
}

/// Opens a message body (and its attributes); `Err` says why it cannot be replayed.
pub fn open(
    body: &str,
    attributes: &HashMap<String, MessageAttributeValue>,
) -> Result<DeadLetter, String> {
    let body: Value =
        serde_json::from_str(body).map_err(|e| format!("the message is not JSON ({e})"))?;
    let attribute = |name: &str| {
        attributes
            .get(name)
            .and_then(|v| v.string_value())
            .map(str::to_string)
    };
    let (event, function_arn, why) = match body.get("requestPayload") {
        Some(event) => {
            let context = &body["requestContext"];
            let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
            let error = &body["responsePayload"];
            (
                event.clone(),
                context["functionArn"].as_str().map(str::to_string),
                format!(
                    "Lambda gave up ({} after {} attempts): {}: {}",
                    text(&context["condition"]),
                    context["approximateInvokeCount"],
                    text(&error["errorType"]),
                    text(&error["errorMessage"]),
                ),
            )
        }
        None => (
            body,
            attribute("TARGET_ARN"),
            format!(
                "EventBridge could not deliver it: {}: {}",
                attribute("ERROR_CODE").unwrap_or_else(|| "?".into()),
                attribute("ERROR_MESSAGE").unwrap_or_else(|| "?".into()),
            ),
        ),
    };
    let function = Function::of(&event)
        .ok_or("neither an ECR push nor an ECS deployment event nor a sweep: not pushdeploy's")?;
    Ok(DeadLetter {
        event,
        function,
        function_arn,
        why,
    })
}

/// What became of one message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub message_id: String,
    pub function: Option<&'static str>,
    pub event_id: Option<String>,
    pub why_dead: Option<String>,
    /// `replayed` (and deleted), `failed again` (kept), `kept` (cannot be replayed), `listed`.
    pub result: &'static str,
    pub report: Option<Value>,
    pub reason: Option<String>,
}

pub struct Replayer {
    sqs: aws_sdk_sqs::Client,
    deployer: Deployer,
    rollback: RollbackHandler,
}

impl Replayer {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Replayer {
        // The CLI's stdout is its answer, not CloudWatch.
        let config = Config {
            emit_metrics: false,
            ..config
        };
        // One set of clients for both handlers: they take turns, never run at once.
        let aws = Aws::new(sdk);
        Replayer {
            sqs: aws_sdk_sqs::Client::new(sdk),
            deployer: Deployer::with_aws(aws.clone(), config.clone()),
            rollback: RollbackHandler::with_aws(aws, config),
        }
    }

    /// Reads up to `max` messages; unless `list_only`, replays each and deletes the ones whose
    /// replay succeeded. A message that fails again, or cannot be replayed, stays in the queue.
    pub async fn run(
        &self,
        queue_url: &str,
        max: usize,
        list_only: bool,
    ) -> Result<Vec<Replayed>, String> {
        let mut done: Vec<Replayed> = Vec::new();
        let mut listed = Vec::new();
        'reading: while done.len() < max {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages((max - done.len()).min(10) as i32)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                // Long enough for a replay; a message kept becomes visible again after it.
                .visibility_timeout(120)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read {queue_url}: {}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    )
                })?;
            let messages = batch.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                if done
                    .iter()
                    .any(|d| Some(d.message_id.as_str()) == message.message_id())
                {
                    break 'reading; // a message kept earlier in this run came round again
                }
                let outcome = self.one(&message, list_only).await;
                if list_only {
                    listed.extend(message.receipt_handle().map(str::to_string));
                }
                if outcome.result == "replayed" {
                    if let Some(handle) = message.receipt_handle() {
                        self.sqs
                            .delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| format!("replayed {} but could not delete it: {e}; a second replay is a skip", outcome.message_id))?;
                    }
                }
                done.push(outcome);
            }
        }
        // Listing takes nothing: every message read is visible again at once.
        for handle in listed {
            let _ = self
                .sqs
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
        Ok(done)
    }

    async fn one(&self, message: &aws_sdk_sqs::types::Message, list_only: bool) -> Replayed {
        let message_id = message.message_id().unwrap_or("?").to_string();
        let opened = open(
            message.body().unwrap_or_default(),
            message
                .message_attributes
                .as_ref()
                .unwrap_or(&HashMap::new()),
        );
        let letter = match opened {
            Ok(letter) => letter,
            Err(reason) => {
                return Replayed {
                    message_id,
                    function: None,
                    event_id: None,
                    why_dead: None,
                    result: "kept",
                    report: None,
                    reason: Some(reason),
                }
            }
        };
        let mut replayed = Replayed {
            message_id: message_id.clone(),
            function: Some(letter.function.as_str()),
            event_id: letter.event["id"].as_str().map(str::to_string),
            why_dead: Some(letter.why.clone()),
            result: "listed",
            report: None,
            reason: None,
        };
        if list_only {
            return replayed;
        }
        let invocation = Invocation {
            deadline_ms: 0,
            function_arn: letter.function_arn.clone(),
            // Each replay is a delivery of its own.
            request_id: Some(format!("replay-{message_id}-{}", crate::deploy::now_ms())),
        };
        let result = match letter.function {
            Function::Deploy => self.deployer.handle(letter.event, &invocation).await,
            Function::Rollback => self.rollback.handle(letter.event, &invocation).await,
        };
        match result {
            Ok(report) => {
                replayed.result = "replayed";
                replayed.report = serde_json::to_value(&report).ok();
            }
            Err(failure) => {
                replayed.result = "failed again";
                replayed.reason = Some(failure.summary.clone());
                replayed.report = serde_json::to_value(&failure.report).ok();
            }
        }
        replayed
    }
}
