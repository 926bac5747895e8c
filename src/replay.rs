//! Replays the dead-letter queues through the functions' own handlers. A dead letter is either
//! Lambda's on-failure record (the event in `requestPayload`, the error in `responsePayload`)
//! or an event EventBridge could not deliver (the event itself, the error in message
//! attributes). Both go through exactly the path a live delivery takes, so the ledger makes a
//! replay of something already done a skip, never a second deployment.
//!
//! Each function has a queue of its own (template.yaml), tagged `pushdeploy:function`: every
//! dead letter of a queue goes back to that function, and to no other. The event alone cannot
//! say where it goes: both functions take EventBridge's `Scheduled Event` (the deploy
//! function's reconcile, the rollback function's sweep). A message that names the other
//! function, or holds an event its queue's function does not take, stays in the queue with
//! its reason.
//!
//! A dead letter runs with the settings of the function it names, read from AWS (its
//! configuration: `Clusters`, `TrustedAccounts`, `DryRun`, the table, ...), never with the
//! operator's shell, and only when AWS confirms it: the function sends its failed events to
//! this very queue, and the message was sent by that function's role (Lambda's on-failure
//! record) or by EventBridge (an event it could not deliver; see `Kept::EventBridgeUnconfirmed`).
//! Anything else is kept as untrusted: a message that names no function, a function that is not
//! this queue's, a sender that is neither.

use crate::aws::Aws;
use crate::config::Config;
use crate::deploy::Deployer;
use crate::ecs_event::{parse_trigger, RollbackEventKind, RollbackTrigger};
use crate::event::{parse_deploy_trigger, DeployEventKind, DeployTrigger};
use crate::invocation::Invocation;
use crate::rollback::RollbackHandler;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The queue tag that names the function a queue's dead letters were meant for.
pub(crate) const FUNCTION_TAG: &str = "pushdeploy:function";

/// One of pushdeploy's two functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// The deploy function: pushes, and the scheduled reconcile.
    Deploy,
    /// The rollback function: ECS deployment state changes, and the scheduled sweep.
    Rollback,
}

impl Function {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Function::Deploy => "deploy",
            Function::Rollback => "rollback",
        }
    }

    /// The value of a queue's `pushdeploy:function` tag.
    pub(crate) fn from_tag(value: &str) -> Option<Function> {
        match value {
            "deploy" => Some(Function::Deploy),
            "rollback" => Some(Function::Rollback),
            _ => None,
        }
    }

    /// The function a Lambda function ARN (or name) clearly means, by the name SAM gives it:
    /// `<stack>-DeployFunction-<suffix>` or `<stack>-RollbackFunction-<suffix>`. `None` for
    /// a name that says neither, or both (a renamed or truncated function).
    pub(crate) fn named_in(arn: &str) -> Option<Function> {
        let parts: Vec<&str> = arn.split(':').collect();
        // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        let name = match parts.as_slice() {
            ["arn", _, "lambda", _, _, "function", name, ..] => name,
            [name] => name,
            _ => return None,
        };
        let says = |logical_id: &str| name.split('-').any(|part| part == logical_id);
        match (says("DeployFunction"), says("RollbackFunction")) {
            (true, false) => Some(Function::Deploy),
            (false, true) => Some(Function::Rollback),
            _ => None,
        }
    }

    fn the(self) -> &'static str {
        match self {
            Function::Deploy => "the deploy function",
            Function::Rollback => "the rollback function",
        }
    }

    fn other(self) -> Function {
        match self {
            Function::Deploy => Function::Rollback,
            Function::Rollback => Function::Deploy,
        }
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why replay will not read a queue: it cannot tell which function its dead letters were
/// meant for, or it is told two different ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueueRefused {
    #[error("{queue} has no {FUNCTION_TAG} tag, so replay cannot tell which function its dead letters were meant for (a queue of a stack from before the tag, or not pushdeploy's): name it with --function deploy (the DeployDeadLetterQueueUrl output) or --function rollback (RollbackDeadLetterQueueUrl)")]
    Untagged { queue: String },
    #[error("{queue} is tagged {FUNCTION_TAG}={value:?}, which is neither deploy nor rollback: set the tag to the function whose queue it is")]
    BadTag { queue: String, value: String },
    #[error("{queue} is tagged {FUNCTION_TAG}={tagged}, but --function says {named}: its dead letters were meant for the {tagged} function, so replay sends them nowhere else (drop --function, or name the other queue)")]
    Disagree {
        queue: String,
        tagged: Function,
        named: Function,
    },
}

/// The function a queue's dead letters go back to: its `pushdeploy:function` tag, or the one
/// the operator names when the queue has no tag; never a guess, never two different answers.
pub(crate) fn queue_function(
    queue: &str,
    tag: Option<&str>,
    named: Option<Function>,
) -> Result<Function, QueueRefused> {
    let tagged = match tag {
        None => None,
        Some(value) => Some(
            Function::from_tag(value).ok_or_else(|| QueueRefused::BadTag {
                queue: queue.to_string(),
                value: value.to_string(),
            })?,
        ),
    };
    match (tagged, named) {
        (Some(tagged), Some(named)) if tagged != named => Err(QueueRefused::Disagree {
            queue: queue.to_string(),
            tagged,
            named,
        }),
        (Some(function), _) | (None, Some(function)) => Ok(function),
        (None, None) => Err(QueueRefused::Untagged {
            queue: queue.to_string(),
        }),
    }
}

/// What a dead letter's event is, as the function that takes it parses it: named in the
/// reason a letter in the other function's queue is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// An ECR push: the deploy function's.
    EcrPush,
    /// An ECR replication: the deploy function's.
    EcrReplication,
    /// An ECS deployment state change: the rollback function's.
    EcsDeployment,
    /// An ECS hook state change (a paused deployment): the rollback function's.
    EcsHook,
    /// EventBridge's schedule: either function's.
    Scheduled,
}

impl EventKind {
    fn an(self) -> &'static str {
        match self {
            EventKind::EcrPush => "an ECR push",
            EventKind::EcrReplication => "an ECR replication",
            EventKind::EcsDeployment => "an ECS deployment event",
            EventKind::EcsHook => "an ECS hook event",
            EventKind::Scheduled => "a Scheduled Event",
        }
    }
}

/// What the function a dead letter goes back to does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Handling {
    /// The deploy function deploys a push.
    Push,
    /// The deploy function deploys an image ECR replicated into its region, like a push.
    Replication,
    /// The deploy function's schedule: it deploys the pushes whose event was missed.
    Reconcile,
    /// The rollback function acts on an ECS deployment's state change.
    DeploymentChange,
    /// The rollback function tells people of a deployment paused at a pause hook.
    HookStateChange,
    /// The rollback function's schedule: deployments stuck past the deploy timeout.
    Sweep,
}

impl Handling {
    pub(crate) fn function(self) -> Function {
        match self {
            Handling::Push | Handling::Replication | Handling::Reconcile => Function::Deploy,
            Handling::DeploymentChange | Handling::HookStateChange | Handling::Sweep => {
                Function::Rollback
            }
        }
    }

    /// What `function` does with `event`, as the parse its own handler does says; `None`
    /// when it does not take it. An event of its kind that it ignores (a malformed push, say)
    /// is still its own: replayed, its handler answers it with the reason.
    pub(crate) fn of(function: Function, event: &Value) -> Option<Handling> {
        match function {
            Function::Deploy => match parse_deploy_trigger(event.clone()) {
                Ok(DeployTrigger::Push(push)) if push.replicated_from.is_some() => {
                    Some(Handling::Replication)
                }
                Ok(DeployTrigger::Push(_)) => Some(Handling::Push),
                Ok(DeployTrigger::Reconcile { .. }) => Some(Handling::Reconcile),
                Err(ignored) => ignored.kind.map(|kind| match kind {
                    DeployEventKind::Push => Handling::Push,
                    DeployEventKind::Replication => Handling::Replication,
                    DeployEventKind::Schedule => Handling::Reconcile,
                }),
            },
            Function::Rollback => match parse_trigger(event.clone()) {
                Ok(RollbackTrigger::Deployment(_)) => Some(Handling::DeploymentChange),
                Ok(RollbackTrigger::HookAwaiting(_)) => Some(Handling::HookStateChange),
                Ok(RollbackTrigger::Sweep { .. }) => Some(Handling::Sweep),
                Err(ignored) => ignored.kind.map(|kind| match kind {
                    RollbackEventKind::DeploymentStateChange => Handling::DeploymentChange,
                    RollbackEventKind::HookStateChange => Handling::HookStateChange,
                    RollbackEventKind::Schedule => Handling::Sweep,
                }),
            },
        }
    }

    /// The kind of event the function takes this way.
    fn event_kind(self) -> EventKind {
        match self {
            Handling::Push => EventKind::EcrPush,
            Handling::Replication => EventKind::EcrReplication,
            Handling::DeploymentChange => EventKind::EcsDeployment,
            Handling::HookStateChange => EventKind::EcsHook,
            Handling::Reconcile | Handling::Sweep => EventKind::Scheduled,
        }
    }
}

/// Why a message stays in its queue instead of being replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Kept {
    #[error("the message is not JSON ({0})")]
    NotJson(String),
    #[error("neither an ECR push or replication nor an ECS deployment event nor a Scheduled Event: not pushdeploy's")]
    NotPushdeploys,
    #[error("the dead letter names {arn}, {}, but sits in the queue of {}: replay sends it to neither (replay it by hand if it is meant for {})", .named.the(), .queue.the(), .named.the())]
    NamesOtherFunction {
        queue: Function,
        named: Function,
        arn: String,
    },
    #[error("{} in the queue of {}, which does not take it: replay never sends a dead letter to a function it was not meant for", .kind.an(), .queue.the())]
    NotTaken { queue: Function, kind: EventKind },
    #[error("untrusted: the dead letter names no function (no requestContext.functionArn, no TARGET_ARN attribute), so replay can neither read the settings it was meant to run with nor confirm who sent it")]
    NamesNoFunction,
    #[error("untrusted: replay cannot read the settings of {arn}, which the dead letter names: {reason}")]
    Unverified { arn: String, reason: String },
    #[error("untrusted: {arn} sends its failed events to {}, not to this queue ({queue_arn}): the dead letter is not one of its own", .destination.as_deref().unwrap_or("no queue"))]
    NotThisQueues {
        arn: String,
        destination: Option<String>,
        queue_arn: String,
    },
    #[error("untrusted: the message has no SenderId, so replay cannot tell who sent it")]
    NoSender,
    #[error("untrusted: Lambda's on-failure record of {arn}, but sent by {sender}, not by a session of that function's role {role_arn} (id {role_id}), with which Lambda writes its records")]
    NotSentByRole {
        arn: String,
        sender: String,
        role_arn: String,
        role_id: String,
    },
    /// AWS documents the sender id of a role's session (`<role id>:<session>`, SQS
    /// ReceiveMessage `SenderId`: "For an IAM role, returns the IAM role ID, for example
    /// ABCDE1F2GH3I4JK5LMNOP:i-a123b456"), and that Lambda writes on-failure records with the
    /// function's execution role (Lambda Developer Guide, "Configuring destinations for
    /// asynchronous invocation": "To send events to a destination, your function needs
    /// additional permissions. Add a policy with the required permissions to your function's
    /// execution role"). It documents no sender id for EventBridge's dead letters: the safe side
    /// is to keep them until the operator names the sender (`--eventbridge-sender`), which the
    /// stack's queue policy lets be EventBridge alone.
    #[error("untrusted until you say otherwise: an event EventBridge could not deliver, sent by {sender}; AWS does not document the sender id of EventBridge's dead letters, so replay cannot tell it from a message {sender} planted. The stack's queue policy (DeadLetterQueuePolicy) lets only the functions' roles and EventBridge, for the stack's rules, send to this queue: where it is in place, {sender} is EventBridge, and `--eventbridge-sender {sender}` replays it")]
    EventBridgeUnconfirmed { sender: String },
}

/// Who writes a dead letter of its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// Lambda's on-failure record, written with the function's execution role.
    Lambda,
    /// An event EventBridge could not deliver to its target.
    EventBridge,
}

/// A dead letter, opened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeadLetter {
    pub(crate) event: Value,
    /// The function the event was meant for, when the dead letter names it: the on-failure
    /// record's `requestContext.functionArn`, EventBridge's `TARGET_ARN` attribute.
    pub(crate) function_arn: Option<String>,
    /// Why it landed in the queue, in the words of whoever put it there.
    pub(crate) why: String,
    /// Whose form it has.
    pub(crate) writer: Writer,
}

/// Opens a message body (and its attributes); `Err` says why it cannot be replayed.
pub(crate) fn open(
    body: &str,
    attributes: &HashMap<String, MessageAttributeValue>,
) -> Result<DeadLetter, Kept> {
    let body: Value = serde_json::from_str(body).map_err(|e| Kept::NotJson(e.to_string()))?;
    let attribute = |name: &str| {
        attributes
            .get(name)
            .and_then(|v| v.string_value())
            .map(str::to_string)
    };
    let (event, function_arn, why, writer) = match body.get("requestPayload") {
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
                Writer::Lambda,
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
            Writer::EventBridge,
        ),
    };
    Ok(DeadLetter {
        event,
        function_arn,
        why,
        writer,
    })
}

/// Where a dead letter of `queue`'s function goes: back to that function, as what it takes;
/// or nowhere, with the reason, when the letter names the other function or holds an event
/// the function does not take.
pub(crate) fn route(queue: Function, letter: &DeadLetter) -> Result<Handling, Kept> {
    if let Some(arn) = &letter.function_arn {
        match Function::named_in(arn) {
            Some(named) if named != queue => {
                return Err(Kept::NamesOtherFunction {
                    queue,
                    named,
                    arn: arn.clone(),
                })
            }
            _ => {}
        }
    }
    // The other function's parse only names what the queue's function does not take.
    Handling::of(queue, &letter.event).ok_or_else(|| {
        match Handling::of(queue.other(), &letter.event) {
            Some(theirs) => Kept::NotTaken {
                queue,
                kind: theirs.event_kind(),
            },
            None => Kept::NotPushdeploys,
        }
    })
}

/// A Lambda function ARN without its qualifier (`:$LATEST`, a version, an alias): the function
/// whose live settings apply. `None` for anything that is not a Lambda function's ARN (a name
/// alone says neither account nor region).
pub(crate) fn unqualified(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "lambda", region, account, "function", name, ..]
            if parts.len() <= 8
                && ![partition, region, account, name]
                    .iter()
                    .any(|p| p.is_empty()) =>
        {
            Some(parts[..7].join(":"))
        }
        _ => None,
    }
}

/// What AWS says of a function a dead letter names (lambda:GetFunctionConfiguration,
/// lambda:GetFunctionEventInvokeConfig, iam:GetRole): never what the message or the operator's
/// shell says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionFacts {
    /// The function's ARN, unqualified, as Lambda gives it.
    pub(crate) arn: String,
    /// Its settings, from its environment, as the function itself reads them at cold start.
    pub(crate) config: Config,
    /// Its execution role.
    pub(crate) role_arn: String,
    /// The role's unique id (`AROA...`): what SQS gives as the sender of its sessions' messages.
    pub(crate) role_id: String,
    /// Where Lambda sends the events it gave up on.
    pub(crate) on_failure: Option<String>,
}

/// Whether a dead letter of `queue_arn` may run with `function`'s settings: the function sends
/// its failed events to this very queue, and the message was sent by whoever writes dead
/// letters of its form: the function's role for Lambda's on-failure record (SenderId
/// `<role id>:<session>`), one of the senders the operator named as EventBridge for an event
/// EventBridge could not deliver.
pub(crate) fn trust(
    letter: &DeadLetter,
    sender: Option<&str>,
    function: &FunctionFacts,
    queue_arn: &str,
    eventbridge_senders: &[String],
) -> Result<(), Kept> {
    if function.on_failure.as_deref() != Some(queue_arn) {
        return Err(Kept::NotThisQueues {
            arn: function.arn.clone(),
            destination: function.on_failure.clone(),
            queue_arn: queue_arn.to_string(),
        });
    }
    let sender = sender.filter(|s| !s.is_empty()).ok_or(Kept::NoSender)?;
    match letter.writer {
        Writer::Lambda => {
            // A session of a role: `<role id>:<session name>`; the role's id alone never names
            // a user (user ids begin AIDA, role ids AROA).
            let role_id = sender.split_once(':').map(|(id, _)| id);
            if role_id == Some(function.role_id.as_str()) {
                Ok(())
            } else {
                Err(Kept::NotSentByRole {
                    arn: function.arn.clone(),
                    sender: sender.to_string(),
                    role_arn: function.role_arn.clone(),
                    role_id: function.role_id.clone(),
                })
            }
        }
        Writer::EventBridge => {
            if eventbridge_senders.iter().any(|s| s == sender) {
                Ok(())
            } else {
                Err(Kept::EventBridgeUnconfirmed {
                    sender: sender.to_string(),
                })
            }
        }
    }
}

/// What became of one message; the words are the JSON output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReplayResult {
    /// Replayed, and deleted from the queue.
    #[serde(rename = "replayed")]
    Replayed,
    /// Replayed, failed again: kept, visible again after the visibility timeout.
    #[serde(rename = "failed again")]
    FailedAgain,
    /// Cannot be replayed (see `reason`): kept.
    #[serde(rename = "kept")]
    Kept,
    /// `--list`: read, left as it was.
    #[serde(rename = "listed")]
    Listed,
}

/// What became of one message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub(crate) message_id: String,
    /// The function it went (or, listed, would go) back to; `None` when kept.
    pub(crate) function: Option<Function>,
    /// What that function does with it: `push`, `reconcile`, `deployment_change`, `sweep`.
    #[serde(rename = "as")]
    pub(crate) handling: Option<Handling>,
    /// The function whose settings it ran (or would run) with, as Lambda names it.
    pub(crate) function_arn: Option<String>,
    /// Who sent the message, as SQS says (its SenderId attribute).
    pub(crate) sender: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) why_dead: Option<String>,
    /// What became of the message: only [`ReplayResult::Replayed`] left the queue.
    pub result: ReplayResult,
    pub(crate) report: Option<Value>,
    pub(crate) reason: Option<String>,
}

/// A function a dead letter names, as AWS confirms it, with its handlers built on its own
/// settings; or why replay could not confirm it.
type Confirmed = Result<Arc<Stack>, String>;

/// One function of the stack: what AWS says of it, and both handlers on its settings (the
/// queue's tag decides which one runs).
struct Stack {
    facts: FunctionFacts,
    deployer: Deployer,
    rollback: RollbackHandler,
}

/// The settings the function runs with: its own parsing of its own environment, as Lambda
/// gives it.
fn settings_of(configuration: &GetFunctionConfigurationOutput) -> Result<Config, String> {
    if let Some(error) = configuration.environment().and_then(|e| e.error()) {
        return Err(format!(
            "Lambda cannot read its environment: {}: {}",
            error.error_code().unwrap_or("?"),
            error.message().unwrap_or("?")
        ));
    }
    let empty = HashMap::new();
    let variables = configuration
        .environment()
        .and_then(|e| e.variables())
        .unwrap_or(&empty);
    let config = Config::from_lookup(|name| variables.get(name).cloned())
        .map_err(|e| format!("its settings do not read: {e}"))?;
    // The CLI's stdout is its answer, not CloudWatch.
    Ok(Config {
        emit_metrics: false,
        ..config
    })
}

/// Replays a dead-letter queue: each message back through the handler of the function the queue
/// is for, on the settings of the function it names, once AWS confirms it (see the module docs).
pub struct Replayer {
    sqs: aws_sdk_sqs::Client,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
    aws: Aws,
    /// Sender ids the operator names as EventBridge's (`--eventbridge-sender`).
    eventbridge_senders: Vec<String>,
    /// Each function's facts, read once per run.
    functions: Mutex<HashMap<String, Confirmed>>,
}

impl Replayed {
    /// A message not replayed (yet): what a message that goes no further reports.
    fn kept(message_id: &str, sender: Option<String>) -> Self {
        Replayed {
            message_id: message_id.to_string(),
            function: None,
            handling: None,
            function_arn: None,
            sender,
            event_id: None,
            why_dead: None,
            result: ReplayResult::Kept,
            report: None,
            reason: None,
        }
    }
}

/// The event handed to the handler of the function AWS confirmed, as a delivery of its own:
/// replayed with the handler's report, or failed again with its summary.
async fn handed_to(
    stack: &Stack,
    handling: Handling,
    event: Value,
    message_id: &str,
) -> (ReplayResult, Option<String>, Option<Value>) {
    let invocation = Invocation {
        deadline_ms: 0,
        // The function AWS confirmed: whose account's pushes it trusts by default.
        function_arn: Some(stack.facts.arn.clone()),
        // Each replay is a delivery of its own.
        request_id: Some(format!("replay-{message_id}-{}", crate::clock::now_ms())),
    };
    let result = match handling.function() {
        Function::Deploy => stack.deployer.handle(event, &invocation).await,
        Function::Rollback => stack.rollback.handle(event, &invocation).await,
    };
    match result {
        Ok(report) => (
            ReplayResult::Replayed,
            None,
            serde_json::to_value(&report).ok(),
        ),
        Err(failure) => (
            ReplayResult::FailedAgain,
            Some(failure.summary.clone()),
            serde_json::to_value(&failure.report).ok(),
        ),
    }
}

impl Replayer {
    /// A replayer with the caller's credentials. Settings come from the functions the dead
    /// letters name, never from the caller's environment.
    pub fn new(sdk: &aws_config::SdkConfig, eventbridge_senders: Vec<String>) -> Replayer {
        Replayer {
            sqs: aws_sdk_sqs::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            // One set of clients for every handler: they take turns, never run at once.
            aws: Aws::new(sdk),
            eventbridge_senders,
            functions: Mutex::new(HashMap::new()),
        }
    }

    /// The function the queue's dead letters were meant for (see [`queue_function`]), from its
    /// tags (sqs:ListQueueTags) and the one the operator names, if any.
    pub(crate) async fn function_of(
        &self,
        queue_url: &str,
        named: Option<Function>,
    ) -> Result<Function, String> {
        let tags = self
            .sqs
            .list_queue_tags()
            .queue_url(queue_url)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read the tags of {queue_url}, which say which function its dead letters were meant for (replay needs sqs:ListQueueTags): {}",
                    crate::aws::AwsError::from_sdk("sqs:ListQueueTags", e)
                )
            })?
            .tags
            .unwrap_or_default();
        queue_function(queue_url, tags.get(FUNCTION_TAG).map(String::as_str), named)
            .map_err(|refused| refused.to_string())
    }

    /// The queue's ARN (sqs:GetQueueAttributes), which a function's on-failure destination
    /// must be for its dead letters to be trusted.
    async fn queue_arn(&self, queue_url: &str) -> Result<String, String> {
        self.sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read the ARN of {queue_url}, which the functions' on-failure destination must be (replay needs sqs:GetQueueAttributes): {}",
                    crate::aws::AwsError::from_sdk("sqs:GetQueueAttributes", e)
                )
            })?
            .attributes
            .unwrap_or_default()
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| format!("SQS gave no QueueArn for {queue_url}"))
    }

    /// What AWS says of the function `arn` (unqualified): its configuration, its on-failure
    /// destination, its role's id; once per function per run.
    async fn confirmed(&self, arn: &str) -> Confirmed {
        if let Some(known) = self.functions.lock().unwrap().get(arn) {
            return known.clone();
        }
        let confirmed = self.read_function(arn).await.map(|facts| {
            eprintln!(
                "pushdeploy: {}: its settings: table {}, clusters {}, trusted accounts {}, dry run {}",
                facts.arn,
                facts.config.table,
                facts
                    .config
                    .clusters
                    .as_ref()
                    .map(|c| c.iter().cloned().collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "any".into()),
                facts
                    .config
                    .trusted_accounts
                    .as_ref()
                    .map(|c| c.iter().cloned().collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "its own account".into()),
                facts.config.dry_run,
            );
            Arc::new(Stack {
                deployer: Deployer::with_aws(self.aws.clone(), facts.config.clone()),
                rollback: RollbackHandler::with_aws(self.aws.clone(), facts.config.clone()),
                facts,
            })
        });
        self.functions
            .lock()
            .unwrap()
            .insert(arn.to_string(), confirmed.clone());
        confirmed
    }

    async fn read_function(&self, arn: &str) -> Result<FunctionFacts, String> {
        let configuration = self.function_configuration(arn).await?;
        let config = settings_of(&configuration)?;
        let role_arn = configuration
            .role()
            .ok_or("Lambda gave no execution role")?
            .to_string();
        let on_failure = self.on_failure_destination(arn).await?;
        let role_id = self.role_id(&role_arn).await?;
        Ok(FunctionFacts {
            arn: configuration
                .function_arn()
                .map(str::to_string)
                .unwrap_or_else(|| arn.to_string()),
            config,
            role_arn,
            role_id,
            on_failure,
        })
    }

    /// lambda:GetFunctionConfiguration: the function's environment and role.
    async fn function_configuration(
        &self,
        arn: &str,
    ) -> Result<GetFunctionConfigurationOutput, String> {
        self.lambda
            .get_function_configuration()
            .function_name(arn)
            .send()
            .await
            .map_err(|e| {
                crate::aws::AwsError::from_sdk("lambda:GetFunctionConfiguration", e).to_string()
            })
    }

    /// Where Lambda sends the events the function gave up on (lambda:GetFunctionEventInvokeConfig).
    async fn on_failure_destination(&self, arn: &str) -> Result<Option<String>, String> {
        Ok(self
            .lambda
            .get_function_event_invoke_config()
            .function_name(arn)
            .send()
            .await
            .map_err(|e| {
                crate::aws::AwsError::from_sdk("lambda:GetFunctionEventInvokeConfig", e).to_string()
            })?
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|o| o.destination())
            .map(str::to_string))
    }

    /// The unique id of the role `role_arn` (iam:GetRole), which SQS gives as the sender of
    /// its sessions' messages.
    async fn role_id(&self, role_arn: &str) -> Result<String, String> {
        // arn:aws:iam::<account>:role/<path>/<name>: GetRole takes the name alone.
        let role_name = role_arn.rsplit('/').next().unwrap_or_default();
        self.iam
            .get_role()
            .role_name(role_name)
            .send()
            .await
            .map_err(|e| crate::aws::AwsError::from_sdk("iam:GetRole", e).to_string())?
            .role()
            .map(|role| role.role_id().to_string())
            .ok_or_else(|| "IAM gave no role".to_string())
    }

    /// Reads up to `max` messages; unless `list_only`, replays each through the function the
    /// queue is for (its tag, or `named`), with the settings of the function the message names
    /// once AWS confirms it, and deletes the ones whose replay succeeded. A message that fails
    /// again, cannot be replayed, or is not trusted stays in the queue. Nothing is read when the
    /// queue's function is unknown.
    pub async fn run(
        &self,
        queue_url: &str,
        named: Option<Function>,
        max: usize,
        list_only: bool,
    ) -> Result<Vec<Replayed>, String> {
        let function = self.function_of(queue_url, named).await?;
        let queue_arn = self.queue_arn(queue_url).await?;
        let mut done: Vec<Replayed> = Vec::new();
        let mut listed = Vec::new();
        'reading: while done.len() < max {
            let messages = self.receive(queue_url, max - done.len()).await?;
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
                let outcome = self.one(&message, function, &queue_arn, list_only).await;
                if list_only {
                    listed.extend(message.receipt_handle().map(str::to_string));
                }
                if outcome.result == ReplayResult::Replayed {
                    if let Some(handle) = message.receipt_handle() {
                        self.delete(queue_url, handle, &outcome.message_id).await?;
                    }
                }
                done.push(outcome);
            }
        }
        // Listing takes nothing: every message read is visible again at once.
        self.make_visible(queue_url, listed).await;
        Ok(done)
    }

    /// Up to `count` messages (SQS gives at most 10 at once), with who sent each.
    async fn receive(&self, queue_url: &str, count: usize) -> Result<Vec<Message>, String> {
        let batch = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(count.min(10) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            // Who sent it: the one thing about a message its sender cannot choose.
            .message_system_attribute_names(MessageSystemAttributeName::SenderId)
            // Long enough for a replay; a message kept becomes visible again after it.
            .visibility_timeout(120)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read {queue_url}: {}",
                    crate::aws::AwsError::from_sdk("sqs:ReceiveMessage", e)
                )
            })?;
        Ok(batch.messages.unwrap_or_default())
    }

    /// Takes a replayed message out of the queue.
    async fn delete(&self, queue_url: &str, handle: &str, message_id: &str) -> Result<(), String> {
        self.sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "replayed {message_id} but could not delete it: {e}; a second replay is a skip"
                )
            })?;
        Ok(())
    }

    /// Best effort: a message left hidden is visible again after the visibility timeout anyway.
    async fn make_visible(&self, queue_url: &str, handles: Vec<String>) {
        for handle in handles {
            let _ = self
                .sqs
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }

    async fn one(
        &self,
        message: &Message,
        function: Function,
        queue_arn: &str,
        list_only: bool,
    ) -> Replayed {
        let message_id = message.message_id().unwrap_or("?").to_string();
        let sender = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::SenderId))
            .cloned();
        let mut replayed = Replayed::kept(&message_id, sender.clone());
        let letter = match open(
            message.body().unwrap_or_default(),
            message
                .message_attributes
                .as_ref()
                .unwrap_or(&HashMap::new()),
        ) {
            Ok(letter) => letter,
            Err(kept) => {
                replayed.reason = Some(kept.to_string());
                return replayed;
            }
        };
        replayed.event_id = letter.event["id"].as_str().map(str::to_string);
        replayed.why_dead = Some(letter.why.clone());
        // What the queue and the event say first (no AWS call), then what AWS confirms.
        let handling = match route(function, &letter) {
            Ok(handling) => handling,
            Err(kept) => {
                replayed.reason = Some(kept.to_string());
                return replayed;
            }
        };
        let stack = match self.trusted(&letter, sender.as_deref(), queue_arn).await {
            Ok(stack) => stack,
            Err(kept) => {
                replayed.reason = Some(kept.to_string());
                return replayed;
            }
        };
        replayed.function_arn = Some(stack.facts.arn.clone());
        replayed.function = Some(handling.function());
        replayed.handling = Some(handling);
        if list_only {
            replayed.result = ReplayResult::Listed;
            return replayed;
        }
        let (result, reason, report) = handed_to(&stack, handling, letter.event, &message_id).await;
        replayed.result = result;
        replayed.reason = reason.or(replayed.reason);
        replayed.report = report;
        replayed
    }

    /// The function a dead letter names, once AWS confirms that the letter is that function's
    /// own (see [`trust`]).
    async fn trusted(
        &self,
        letter: &DeadLetter,
        sender: Option<&str>,
        queue_arn: &str,
    ) -> Result<Arc<Stack>, Kept> {
        let named = letter
            .function_arn
            .as_deref()
            .ok_or(Kept::NamesNoFunction)?;
        let arn = unqualified(named).ok_or_else(|| Kept::Unverified {
            arn: named.to_string(),
            reason: "not a Lambda function ARN (arn:<partition>:lambda:<region>:<account>:function:<name>)".into(),
        })?;
        let stack = self
            .confirmed(&arn)
            .await
            .map_err(|reason| Kept::Unverified {
                arn: arn.clone(),
                reason,
            })?;
        trust(
            letter,
            sender,
            &stack.facts,
            queue_arn,
            &self.eventbridge_senders,
        )?;
        Ok(stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEPLOY_ARN: &str =
        "arn:aws:lambda:us-east-1:123456789012:function:prod-DeployFunction-AbC123xYz";
    const ROLLBACK_ARN: &str =
        "arn:aws:lambda:us-east-1:123456789012:function:prod-RollbackFunction-Q9w8E7r6";

    fn event(source: &str, detail_type: &str) -> Value {
        json!({"version": "0", "id": "e-1", "source": source, "detail-type": detail_type,
               "account": "123456789012", "region": "us-east-1", "time": "2026-11-26T12:00:00Z",
               "resources": [], "detail": {}})
    }

    fn letter(event: Value, function_arn: Option<&str>) -> DeadLetter {
        DeadLetter {
            event,
            function_arn: function_arn.map(str::to_string),
            why: "test".into(),
            writer: Writer::Lambda,
        }
    }

    const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:prod-DeployDeadLetterQueue-1";
    const ROLE_ID: &str = "AROAEXAMPLEDEPLOYROLE";

    fn facts(on_failure: Option<&str>) -> FunctionFacts {
        FunctionFacts {
            arn: DEPLOY_ARN.into(),
            config: Config::for_table("ledger"),
            role_arn: "arn:aws:iam::123456789012:role/prod-DeployFunctionRole-X".into(),
            role_id: ROLE_ID.into(),
            on_failure: on_failure.map(str::to_string),
        }
    }

    #[test]
    fn a_function_arn_is_read_without_its_qualifier() {
        for (arn, expected) in [
            (DEPLOY_ARN, Some(DEPLOY_ARN)),
            (&format!("{DEPLOY_ARN}:$LATEST"), Some(DEPLOY_ARN)),
            (&format!("{DEPLOY_ARN}:live"), Some(DEPLOY_ARN)),
            // A name alone says neither account nor region; other ARNs are not functions.
            ("prod-DeployFunction-AbC123xYz", None),
            ("arn:aws:sqs:us-east-1:123456789012:q", None),
            ("arn:aws:lambda:us-east-1::function:x", None),
            (&format!("{DEPLOY_ARN}:live:extra"), None),
            ("", None),
        ] {
            assert_eq!(unqualified(arn).as_deref(), expected, "{arn}");
        }
    }

    /// Only the function's own dead letters are trusted: its on-failure destination is this
    /// queue, and the sender is a session of its role (Lambda's record) or a sender the
    /// operator named as EventBridge (an event EventBridge could not deliver).
    #[test]
    fn a_dead_letter_is_trusted_only_when_aws_confirms_whose_it_is() {
        let push = event("aws.ecr", "ECR Image Action");
        let record = letter(push.clone(), Some(DEPLOY_ARN));
        let undelivered = DeadLetter {
            writer: Writer::EventBridge,
            ..record.clone()
        };
        let session = format!("{ROLE_ID}:prod-DeployFunction-AbC123xYz");
        let ours = facts(Some(QUEUE_ARN));
        let named = ["AIDAEVENTBRIDGEEXAMPLE".to_string()];
        assert_eq!(
            trust(&record, Some(&session), &ours, QUEUE_ARN, &[]),
            Ok(())
        );
        assert_eq!(
            trust(&undelivered, Some(&named[0]), &ours, QUEUE_ARN, &named),
            Ok(())
        );
        // The function sends its failed events elsewhere, or nowhere.
        for elsewhere in [Some("arn:aws:sqs:us-east-1:123456789012:other"), None] {
            assert_eq!(
                trust(&record, Some(&session), &facts(elsewhere), QUEUE_ARN, &[]),
                Err(Kept::NotThisQueues {
                    arn: DEPLOY_ARN.into(),
                    destination: elsewhere.map(str::to_string),
                    queue_arn: QUEUE_ARN.into()
                })
            );
        }
        // Someone else sent Lambda's record: a user, another role, the role's id without a
        // session, nobody SQS can name.
        for sender in [
            "AIDAIT2UOQQY3AUEKVGXU",
            "AROAOTHERROLEEXAMPLE:prod-DeployFunction-AbC123xYz",
            ROLE_ID,
            &format!("{ROLE_ID}X:s"),
        ] {
            assert!(
                matches!(
                    trust(&record, Some(sender), &ours, QUEUE_ARN, &named),
                    Err(Kept::NotSentByRole { .. })
                ),
                "{sender}"
            );
        }
        for sender in [None, Some("")] {
            assert_eq!(
                trust(&record, sender, &ours, QUEUE_ARN, &[]),
                Err(Kept::NoSender)
            );
        }
        // An EventBridge dead letter from a sender the operator did not name, the function's
        // role included (it writes records, never bare events).
        for sender in ["AIDAIT2UOQQY3AUEKVGXU", &session] {
            assert_eq!(
                trust(&undelivered, Some(sender), &ours, QUEUE_ARN, &named),
                Err(Kept::EventBridgeUnconfirmed {
                    sender: sender.to_string()
                })
            );
        }
    }

    #[test]
    fn a_queue_is_for_the_function_its_tag_or_the_operator_names() {
        use Function::{Deploy, Rollback};
        let q = "https://sqs.us-east-1.amazonaws.com/123456789012/q";
        assert_eq!(queue_function(q, Some("deploy"), None), Ok(Deploy));
        assert_eq!(queue_function(q, Some("rollback"), None), Ok(Rollback));
        assert_eq!(
            queue_function(q, Some("rollback"), Some(Rollback)),
            Ok(Rollback)
        );
        assert_eq!(queue_function(q, None, Some(Deploy)), Ok(Deploy));
        let untagged = queue_function(q, None, None).unwrap_err();
        assert!(matches!(untagged, QueueRefused::Untagged { .. }));
        assert!(
            untagged.to_string().contains("--function deploy"),
            "{untagged}"
        );
        let disagree = queue_function(q, Some("deploy"), Some(Rollback)).unwrap_err();
        assert_eq!(
            disagree,
            QueueRefused::Disagree {
                queue: q.into(),
                tagged: Deploy,
                named: Rollback
            }
        );
        assert!(disagree
            .to_string()
            .contains("tagged pushdeploy:function=deploy, but --function says rollback"));
        // A tag that says neither is no answer, named function or not.
        for named in [None, Some(Deploy)] {
            assert!(matches!(
                queue_function(q, Some("Deploy"), named),
                Err(QueueRefused::BadTag { .. })
            ));
        }
    }

    #[test]
    fn a_function_is_named_by_the_name_sam_gives_it() {
        let cases = [
            (DEPLOY_ARN, Some(Function::Deploy)),
            (&format!("{DEPLOY_ARN}:$LATEST"), Some(Function::Deploy)),
            (ROLLBACK_ARN, Some(Function::Rollback)),
            (&format!("{ROLLBACK_ARN}:live"), Some(Function::Rollback)),
            ("pushdeploy-RollbackFunction-1", Some(Function::Rollback)),
            // A name of the operator's choice, a truncated one, or one that says both: unknown.
            (
                "arn:aws:lambda:us-east-1:123456789012:function:deployer",
                None,
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:my-Deploy-Func",
                None,
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:DeployFunction-RollbackFunction-x",
                None,
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:prod-XDeployFunction-x",
                None,
            ),
            // Not a function ARN at all.
            (
                "arn:aws:sqs:us-east-1:123456789012:prod-DeployFunction-x",
                None,
            ),
            ("", None),
        ];
        for (arn, expected) in cases {
            assert_eq!(Function::named_in(arn), expected, "{arn}");
        }
    }

    #[test]
    fn each_dead_letter_goes_back_to_its_queues_function_as_what_that_function_takes() {
        use Function::{Deploy, Rollback};
        let push = event("aws.ecr", "ECR Image Action");
        let replication = event("aws.ecr", "ECR Replication Action");
        let ecs = event("aws.ecs", "ECS Deployment State Change");
        let schedule = event("aws.events", "Scheduled Event");
        // (queue, event, the function ARN the dead letter names, where it goes)
        type Case<'a> = (Function, &'a Value, Option<&'a str>, Result<Handling, Kept>);
        let cases: Vec<Case> = vec![
            (Deploy, &push, Some(DEPLOY_ARN), Ok(Handling::Push)),
            (Deploy, &push, None, Ok(Handling::Push)),
            (
                Deploy,
                &replication,
                Some(DEPLOY_ARN),
                Ok(Handling::Replication),
            ),
            (Deploy, &schedule, Some(DEPLOY_ARN), Ok(Handling::Reconcile)),
            // The queue decides; an ARN that says neither function does not contradict it.
            (
                Deploy,
                &schedule,
                Some("arn:aws:lambda:us-east-1:1:function:x"),
                Ok(Handling::Reconcile),
            ),
            (Rollback, &schedule, Some(ROLLBACK_ARN), Ok(Handling::Sweep)),
            (Rollback, &schedule, None, Ok(Handling::Sweep)),
            (
                Rollback,
                &ecs,
                Some(ROLLBACK_ARN),
                Ok(Handling::DeploymentChange),
            ),
            (
                Deploy,
                &ecs,
                None,
                Err(Kept::NotTaken {
                    queue: Deploy,
                    kind: EventKind::EcsDeployment,
                }),
            ),
            (
                Rollback,
                &push,
                None,
                Err(Kept::NotTaken {
                    queue: Rollback,
                    kind: EventKind::EcrPush,
                }),
            ),
            (
                Rollback,
                &replication,
                Some(ROLLBACK_ARN),
                Err(Kept::NotTaken {
                    queue: Rollback,
                    kind: EventKind::EcrReplication,
                }),
            ),
            (
                Deploy,
                &schedule,
                Some(ROLLBACK_ARN),
                Err(Kept::NamesOtherFunction {
                    queue: Deploy,
                    named: Rollback,
                    arn: ROLLBACK_ARN.into(),
                }),
            ),
            (
                Rollback,
                &ecs,
                Some(DEPLOY_ARN),
                Err(Kept::NamesOtherFunction {
                    queue: Rollback,
                    named: Deploy,
                    arn: DEPLOY_ARN.into(),
                }),
            ),
        ];
        for (queue, event, arn, expected) in cases {
            let got = route(queue, &letter(event.clone(), arn));
            assert_eq!(
                got, expected,
                "{queue} queue, {} named {arn:?}",
                event["detail-type"]
            );
            if let Ok(handling) = got {
                assert_eq!(handling.function(), queue, "never the other function");
            }
        }
        for other in [
            event("aws.ecr", "ECR Image Scan"),
            event("aws.events", "ECR Image Action"),
            json!({"detail-type": "Scheduled Event"}),
            json!("text"),
        ] {
            assert_eq!(
                route(Deploy, &letter(other.clone(), None)),
                Err(Kept::NotPushdeploys),
                "{other}"
            );
        }
    }

    /// The parse each function's handler does decides where a letter goes: an event it takes
    /// as it is, one it will ignore with its reason, one whose envelope does not parse; and
    /// the other function's parse names what a queue's function does not take.
    #[test]
    fn a_dead_letter_is_routed_by_its_functions_own_parse() {
        use Function::{Deploy, Rollback};
        let digest = format!("sha256:{}", "0".repeat(64));
        let mut push = event("aws.ecr", "ECR Image Action");
        push["detail"] = json!({"action-type": "PUSH", "result": "SUCCESS",
            "repository-name": "team/web", "image-digest": digest, "image-tag": "latest"});
        let mut replication = push.clone();
        replication["detail-type"] = json!("ECR Replication Action");
        replication["detail"]["action-type"] = json!("REPLICATE");
        replication["detail"]["source-account"] = json!("210987654321");
        replication["detail"]["source-region"] = json!("us-west-2");
        let mut change = event("aws.ecs", "ECS Deployment State Change");
        change["resources"] = json!(["arn:aws:ecs:us-east-1:123456789012:service/prod/web"]);
        change["detail"] = json!({"eventName": "SERVICE_DEPLOYMENT_FAILED", "deploymentId": "d"});
        let mut no_envelope = push.clone();
        no_envelope["time"] = json!("yesterday");
        let mut ignored_push = push.clone();
        ignored_push["detail"]["action-type"] = json!("DELETE");
        let cases = [
            (Deploy, &push, Ok(Handling::Push)),
            (Deploy, &replication, Ok(Handling::Replication)),
            (Deploy, &ignored_push, Ok(Handling::Push)),
            (Deploy, &no_envelope, Ok(Handling::Push)),
            (Rollback, &change, Ok(Handling::DeploymentChange)),
            (
                Rollback,
                &replication,
                Err(Kept::NotTaken {
                    queue: Rollback,
                    kind: EventKind::EcrReplication,
                }),
            ),
            (
                Rollback,
                &no_envelope,
                Err(Kept::NotTaken {
                    queue: Rollback,
                    kind: EventKind::EcrPush,
                }),
            ),
            (
                Deploy,
                &change,
                Err(Kept::NotTaken {
                    queue: Deploy,
                    kind: EventKind::EcsDeployment,
                }),
            ),
        ];
        for (queue, event, expected) in cases {
            assert_eq!(
                route(queue, &letter(event.clone(), None)),
                expected,
                "{event}"
            );
        }
    }

    #[test]
    fn the_reasons_a_message_is_kept_are_sentences() {
        let named = Kept::NamesOtherFunction {
            queue: Function::Deploy,
            named: Function::Rollback,
            arn: ROLLBACK_ARN.into(),
        };
        assert_eq!(
            named.to_string(),
            format!("the dead letter names {ROLLBACK_ARN}, the rollback function, but sits in the queue of the deploy function: replay sends it to neither (replay it by hand if it is meant for the rollback function)")
        );
        let not_taken = Kept::NotTaken {
            queue: Function::Deploy,
            kind: EventKind::EcsDeployment,
        };
        assert_eq!(
            not_taken.to_string(),
            "an ECS deployment event in the queue of the deploy function, which does not take it: replay never sends a dead letter to a function it was not meant for"
        );
        let role = Kept::NotSentByRole {
            arn: DEPLOY_ARN.into(),
            sender: "AIDAIT2UOQQY3AUEKVGXU".into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            role_id: ROLE_ID.into(),
        };
        assert_eq!(
            role.to_string(),
            format!("untrusted: Lambda's on-failure record of {DEPLOY_ARN}, but sent by AIDAIT2UOQQY3AUEKVGXU, not by a session of that function's role arn:aws:iam::123456789012:role/r (id {ROLE_ID}), with which Lambda writes its records")
        );
        let elsewhere = Kept::NotThisQueues {
            arn: DEPLOY_ARN.into(),
            destination: None,
            queue_arn: QUEUE_ARN.into(),
        };
        assert_eq!(
            elsewhere.to_string(),
            format!("untrusted: {DEPLOY_ARN} sends its failed events to no queue, not to this queue ({QUEUE_ARN}): the dead letter is not one of its own")
        );
        let eventbridge = Kept::EventBridgeUnconfirmed {
            sender: "AIDAEXAMPLE".into(),
        }
        .to_string();
        assert!(
            eventbridge.starts_with("untrusted until you say otherwise")
                && eventbridge.ends_with("`--eventbridge-sender AIDAEXAMPLE` replays it"),
            "{eventbridge}"
        );
        for kept in [Kept::NamesNoFunction, Kept::NoSender] {
            assert!(kept.to_string().starts_with("untrusted: "), "{kept}");
        }
    }

    #[test]
    fn both_kinds_of_dead_letter_open() {
        let push = event("aws.ecr", "ECR Image Action");
        let record = json!({
            "requestContext": {"functionArn": format!("{DEPLOY_ARN}:$LATEST"),
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": push,
            "responsePayload": {"errorType": "pushdeploy.Retryable", "errorMessage": "1 must be retried"}
        });
        let opened = open(&record.to_string(), &HashMap::new()).unwrap();
        assert_eq!(opened.writer, Writer::Lambda);
        assert_eq!(opened.event, push);
        assert_eq!(
            opened.function_arn.as_deref(),
            Some(&*format!("{DEPLOY_ARN}:$LATEST"))
        );
        assert_eq!(
            opened.why,
            "Lambda gave up (RetriesExhausted after 3 attempts): pushdeploy.Retryable: 1 must be retried"
        );

        let text = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .unwrap()
        };
        let attributes = HashMap::from([
            ("TARGET_ARN".to_string(), text(ROLLBACK_ARN)),
            (
                "ERROR_CODE".to_string(),
                text("Lambda.TooManyRequestsException"),
            ),
            ("ERROR_MESSAGE".to_string(), text("Rate exceeded")),
        ]);
        let schedule = event("aws.events", "Scheduled Event");
        let opened = open(&schedule.to_string(), &attributes).unwrap();
        assert_eq!(opened.writer, Writer::EventBridge);
        assert_eq!(opened.event, schedule);
        assert_eq!(opened.function_arn.as_deref(), Some(ROLLBACK_ARN));
        assert_eq!(
            opened.why,
            "EventBridge could not deliver it: Lambda.TooManyRequestsException: Rate exceeded"
        );

        assert!(matches!(
            open("not JSON", &HashMap::new()),
            Err(Kept::NotJson(_))
        ));
    }

    #[test]
    fn the_json_output_keeps_its_words() {
        let words: Vec<Value> = [
            ReplayResult::Replayed,
            ReplayResult::FailedAgain,
            ReplayResult::Kept,
            ReplayResult::Listed,
        ]
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
        assert_eq!(
            words,
            [
                json!("replayed"),
                json!("failed again"),
                json!("kept"),
                json!("listed")
            ]
        );
        let line = serde_json::to_value(Replayed {
            message_id: "m-1".into(),
            function: Some(Function::Deploy),
            handling: Some(Handling::Reconcile),
            function_arn: Some(DEPLOY_ARN.into()),
            sender: Some("AROAEXAMPLE:fn".into()),
            event_id: Some("e-1".into()),
            why_dead: None,
            result: ReplayResult::Listed,
            report: None,
            reason: None,
        })
        .unwrap();
        assert_eq!(line["function"], "deploy");
        assert_eq!(line["as"], "reconcile");
        assert_eq!(line["result"], "listed");
        assert_eq!(line["function_arn"], DEPLOY_ARN);
        assert_eq!(line["sender"], "AROAEXAMPLE:fn");
        assert_eq!(
            serde_json::to_value(Handling::DeploymentChange).unwrap(),
            "deployment_change"
        );
    }
}
