//! The operator's CLI. `pushdeploy replay` runs what landed in a dead-letter queue through the
//! functions' own handlers, with the caller's credentials and the functions' settings
//! (PUSHDEPLOY_TABLE, ...), so the ledger makes a replay act on each service at most once.

use clap::{Parser, Subcommand};
use pushdeploy::config::Config;
use pushdeploy::replay::Replayer;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pushdeploy",
    version,
    about = "Operate pushdeploy: replay dead letters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a dead-letter queue (stack outputs DeployDeadLetterQueueUrl and
    /// RollbackDeadLetterQueueUrl): one JSON line per message; replayed messages are deleted,
    /// the rest stay.
    Replay {
        /// The queue's URL.
        #[arg(long)]
        queue_url: String,
        /// Read at most this many messages.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// Only list what is there and why; replay and delete nothing.
        #[arg(long)]
        list: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Replay {
        queue_url,
        max,
        list,
    } = cli.command;
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pushdeploy: {e}");
            return ExitCode::from(2);
        }
    };
    let sdk = pushdeploy::aws::load_sdk_config().await;
    let replayed = match Replayer::new(&sdk, config).run(&queue_url, max, list).await {
        Ok(replayed) => replayed,
        Err(e) => {
            eprintln!("pushdeploy: {e}");
            return ExitCode::from(2);
        }
    };
    for message in &replayed {
        println!("{}", serde_json::to_string(message).unwrap_or_default());
    }
    let count = |result: &str| replayed.iter().filter(|m| m.result == result).count();
    eprintln!(
        "pushdeploy: {} message(s): {} replayed and deleted, {} failed again, {} kept (not replayable), {} listed",
        replayed.len(),
        count("replayed"),
        count("failed again"),
        count("kept"),
        count("listed")
    );
    if count("failed again") > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
