//! The operator's CLI: deployment history, what is in flight, the pause switch, and dead-letter
//! replay. It runs with the caller's credentials and the functions' settings (PUSHDEPLOY_TABLE,
//! ...); the work is in `pushdeploy::ops` and `pushdeploy::replay`.

use aws_config::SdkConfig;
use clap::{Parser, Subcommand};
use pushdeploy::approve::{answer_paused, lift_quarantine, Answer};
use pushdeploy::config::Config;
use pushdeploy::ledger::Ledger;
use pushdeploy::ops;
use pushdeploy::replay::{Function, ReplayResult, Replayer};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pushdeploy",
    version,
    about = "Operate pushdeploy: history, status, pause/resume, replay dead letters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A service's deployments and rollbacks, newest first: when, what, outcome, tag, digest,
    /// revision.
    History {
        /// Service name (any cluster) or ARN.
        #[arg(long)]
        service: String,
        /// Only the service in this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// At most this many records per service.
        #[arg(long, default_value_t = 20)]
        limit: i32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deployments ECS is rolling out now (started by pushdeploy, not yet COMPLETED or FAILED).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Freeze a service: tag it pushdeploy:paused=true, so that pushes skip it ("paused").
    Pause {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        service: String,
    },
    /// Lift a pause: remove the service's pushdeploy:paused tag.
    Resume {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        service: String,
    },
    /// Approve a BLUE_GREEN, LINEAR or CANARY deployment paused at a pause hook: ECS
    /// continues it (ContinueServiceDeployment, CONTINUE). The ledger records who and when.
    Approve {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        service: String,
    },
    /// Reject such a paused deployment: ECS rolls it back (ContinueServiceDeployment,
    /// ROLLBACK). The ledger records who and when.
    Reject {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        service: String,
    },
    /// Lift a digest's quarantine for a service, so that a push of it deploys again (after a
    /// gate that failed closed, say). The ledger records who lifted it, when, and why it was
    /// quarantined.
    Unquarantine {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        service: String,
        /// The image digest, `sha256:...`.
        #[arg(long)]
        digest: String,
    },
    /// Replay a dead-letter queue (stack outputs DeployDeadLetterQueueUrl and
    /// RollbackDeadLetterQueueUrl) through the function it is for (the queue's
    /// pushdeploy:function tag), with the settings of the function each dead letter names, read
    /// from AWS (not from PUSHDEPLOY_* in your shell): one JSON line per message; replayed
    /// messages are deleted, the rest stay. A message AWS does not confirm as that function's
    /// own (its on-failure destination is this queue, its sender the function's role) is kept
    /// as untrusted.
    Replay {
        /// The queue's URL.
        #[arg(long)]
        queue_url: String,
        /// The function the queue's dead letters were meant for, for a queue without a
        /// pushdeploy:function tag (a stack from before the tag); must agree with the tag.
        #[arg(long, value_enum)]
        function: Option<Function>,
        /// Read at most this many messages.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// Only list what is there and why; replay and delete nothing.
        #[arg(long)]
        list: bool,
        /// The SenderId (as `--list` shows it) of EventBridge's dead letters in this queue.
        /// AWS does not document it, so events EventBridge could not deliver are kept until
        /// you name it; only where the stack's queue policy admits nobody but the functions'
        /// roles and EventBridge is every other sender EventBridge.
        #[arg(long = "eventbridge-sender", value_name = "SENDER_ID")]
        eventbridge_senders: Vec<String>,
    },
}

fn print(records: &[pushdeploy::ledger::DeploymentRecord], json: bool, none: &str) {
    if json {
        for record in records {
            println!("{}", ops::json(record));
        }
    } else if records.is_empty() {
        println!("{none}");
    } else {
        println!("{}", ops::table(records));
    }
}

/// Errors are printed as one sentence each; with RUST_LOG=debug (or trace) the log lines,
/// the SDK's whole error chain among them, go to stderr too. The AWS SDK itself stays at INFO
/// (see `pushdeploy::logging`).
fn debug_logging() {
    use lambda_runtime::tracing::subscriber::{self, filter::EnvFilter, filter::LevelFilter};
    let requested = std::env::var("RUST_LOG").ok();
    let level = requested
        .as_deref()
        .and_then(|l| l.trim().parse::<LevelFilter>().ok());
    if level.is_some_and(|level| level >= LevelFilter::DEBUG) {
        subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .with_env_filter(EnvFilter::new(pushdeploy::logging::directives(
                requested.as_deref(),
            )))
            .init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    debug_logging();
    let sdk = pushdeploy::aws::load_sdk_config().await;
    // Said before any call, rather than as each client's endpoint error.
    if sdk.region().is_none() {
        eprintln!("pushdeploy: {}", pushdeploy::aws::Problem::NoRegion);
        return ExitCode::from(2);
    }
    let done = match cli.command {
        Command::History {
            service,
            cluster,
            limit,
            json,
        } => history(&sdk, &service, cluster.as_deref(), limit, json).await,
        Command::Status { json } => status(&sdk, json).await,
        Command::Pause { cluster, service } => set_paused(&sdk, &cluster, &service, true).await,
        Command::Resume { cluster, service } => set_paused(&sdk, &cluster, &service, false).await,
        Command::Approve { cluster, service } => {
            answer(&sdk, &cluster, &service, Answer::Approve).await
        }
        Command::Reject { cluster, service } => {
            answer(&sdk, &cluster, &service, Answer::Reject).await
        }
        Command::Unquarantine {
            cluster,
            service,
            digest,
        } => unquarantine(&sdk, &cluster, &service, &digest).await,
        Command::Replay {
            queue_url,
            function,
            max,
            list,
            eventbridge_senders,
        } => {
            // Not the shell's PUSHDEPLOY_* settings: replay reads each function's own from AWS.
            let replayer = Replayer::new(&sdk, eventbridge_senders);
            return replay(&replayer, &queue_url, function, max, list).await;
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushdeploy: {e}");
            ExitCode::from(2)
        }
    }
}

/// What a subcommand could not do, said in one sentence.
type Failure = Box<dyn std::error::Error>;

/// The ledger named by the shell's settings: history and status need the table, so a bad
/// setting is their error.
fn ledger(sdk: &SdkConfig) -> Result<Ledger, Failure> {
    let config = Config::from_env()?;
    Ok(Ledger::new(
        aws_sdk_dynamodb::Client::new(sdk),
        config.table,
    ))
}

async fn history(
    sdk: &SdkConfig,
    service: &str,
    cluster: Option<&str>,
    limit: i32,
    json: bool,
) -> Result<(), Failure> {
    let records = ops::history(&ledger(sdk)?, service, cluster, limit).await?;
    print(&records, json, "");
    Ok(())
}

async fn status(sdk: &SdkConfig, json: bool) -> Result<(), Failure> {
    let records = ledger(sdk)?.in_flight().await?;
    print(&records, json, "nothing in flight");
    Ok(())
}

async fn set_paused(
    sdk: &SdkConfig,
    cluster: &str,
    service: &str,
    pause: bool,
) -> Result<(), Failure> {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let arn = ops::set_paused(&ecs, cluster, service, pause).await?;
    if pause {
        println!("paused {arn}: pushes skip it until `pushdeploy resume --cluster {cluster} --service {service}`");
    } else {
        println!("resumed {arn}: the next push deploys it");
    }
    Ok(())
}

async fn answer(
    sdk: &SdkConfig,
    cluster: &str,
    service: &str,
    answer: Answer,
) -> Result<(), Failure> {
    let aws = pushdeploy::aws::Aws::new(sdk);
    let sts = aws_sdk_sts::Client::new(sdk);
    let done = answer_paused(&aws, &sts, &ledger(sdk)?, cluster, service, answer).await?;
    let next = match answer {
        Answer::Approve => "ECS continues it",
        Answer::Reject => "ECS rolls it back",
    };
    println!(
        "{} {} at {} by {} ({}): {next}",
        answer.as_str(),
        done.service_deployment_arn,
        done.stage.as_deref().unwrap_or("its pause hook"),
        done.by,
        done.at
    );
    if let Some(why) = done.unrecorded {
        return Err(format!(
            "{} it, but the ledger could not record it: {why}",
            answer.as_str()
        )
        .into());
    }
    Ok(())
}

async fn unquarantine(
    sdk: &SdkConfig,
    cluster: &str,
    service: &str,
    digest: &str,
) -> Result<(), Failure> {
    let aws = pushdeploy::aws::Aws::new(sdk);
    let sts = aws_sdk_sts::Client::new(sdk);
    match lift_quarantine(&aws, &sts, &ledger(sdk)?, cluster, service, digest).await? {
        None => Err(format!("ECS has no service {service:?} in cluster {cluster:?}").into()),
        Some((arn, None)) => Err(format!("{digest} is not quarantined for {arn}").into()),
        Some((arn, Some(reason))) => {
            println!("lifted the quarantine of {digest} for {arn} (it said: {reason}); its next push deploys");
            Ok(())
        }
    }
}

async fn replay(
    replayer: &Replayer,
    queue_url: &str,
    function: Option<Function>,
    max: usize,
    list: bool,
) -> ExitCode {
    let replayed = match replayer.run(queue_url, function, max, list).await {
        Ok(replayed) => replayed,
        Err(e) => {
            eprintln!("pushdeploy: {e}");
            return ExitCode::from(2);
        }
    };
    for message in &replayed {
        println!("{}", serde_json::to_string(message).unwrap_or_default());
    }
    let count = |result| replayed.iter().filter(|m| m.result == result).count();
    eprintln!(
        "pushdeploy: {} message(s): {} replayed and deleted, {} failed again, {} kept (not replayable or untrusted), {} listed",
        replayed.len(),
        count(ReplayResult::Replayed),
        count(ReplayResult::FailedAgain),
        count(ReplayResult::Kept),
        count(ReplayResult::Listed)
    );
    if count(ReplayResult::FailedAgain) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
