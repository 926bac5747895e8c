//! Settings, read once at cold start. A bad setting is an init error naming the variable.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;

pub(crate) const TABLE_VAR: &str = "PUSHDEPLOY_TABLE";
pub(crate) const CLUSTERS_VAR: &str = "PUSHDEPLOY_CLUSTERS";
pub(crate) const RULES_VAR: &str = "PUSHDEPLOY_RULES";
pub(crate) const DEPLOY_TIMEOUT_VAR: &str = "PUSHDEPLOY_DEPLOY_TIMEOUT";
pub(crate) const TRUSTED_ACCOUNTS_VAR: &str = "PUSHDEPLOY_TRUSTED_ACCOUNTS";
pub(crate) const DRY_RUN_VAR: &str = "PUSHDEPLOY_DRY_RUN";
pub(crate) const METRICS_NAMESPACE_VAR: &str = "PUSHDEPLOY_METRICS_NAMESPACE";
pub(crate) const NOTIFY_TOPIC_VAR: &str = "PUSHDEPLOY_NOTIFY_TOPIC_ARN";
pub(crate) const DEFAULT_METRICS_NAMESPACE: &str = "pushdeploy";
pub(crate) const CONCURRENCY_VAR: &str = "PUSHDEPLOY_CONCURRENCY";
pub(crate) const WARM_UP_VAR: &str = "PUSHDEPLOY_WARM_UP";
/// How many services one push deploys at once, unless set: the most the setting allows. The
/// pacer (`pace.rs`) holds ECS's rates whatever this is, so it only decides how many waves a
/// fan-out takes: against the bench's model, 50 services took 2.63x the bound at 8, 1.56x at 32
/// and 1.13x at 64 (`make bench`). Each service in flight may open connections of its own, whose
/// TLS handshakes the model does not charge: about 0.2 ms of CPU each here (`openssl speed`:
/// ECDH P-256 0.055 ms, RSA-2048 verify 0.017 ms), so at most about 100 of them, 20 ms, or 140 ms
/// at the template's 256 MB (a seventh of a vCPU): less than the 160 ms that 64 saves over 32.
pub(crate) const DEFAULT_CONCURRENCY: usize = 64;
/// ECS retries a broken deployment forever without a circuit breaker: this long, then it is failed.
pub(crate) const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The settings both functions and the CLI run with, read from the `PUSHDEPLOY_*` variables (for
/// a replay, the named function's own); only the table is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The DynamoDB deployment ledger (`PUSHDEPLOY_TABLE`).
    pub table: String,
    /// When set, only services in these clusters (by name) are deployed
    /// (`PUSHDEPLOY_CLUSTERS`: names or ARNs, comma-separated).
    pub clusters: Option<BTreeSet<String>>,
    /// Central follow rules, in addition to service tags (`PUSHDEPLOY_RULES`, a JSON array).
    pub rules: Vec<Rule>,
    /// A deployment not COMPLETED this long after UpdateService is treated as failed
    /// (`PUSHDEPLOY_DEPLOY_TIMEOUT`, in seconds; 30 minutes unless set).
    pub deploy_timeout: Duration,
    /// Accounts whose pushes deploy; `None`: the function's own account only
    /// (`PUSHDEPLOY_TRUSTED_ACCOUNTS`, comma-separated).
    pub trusted_accounts: Option<BTreeSet<String>>,
    /// Decide and log, change nothing (ECS, the ledger's deployment state, SNS); from
    /// `PUSHDEPLOY_DRY_RUN`.
    pub dry_run: bool,
    /// The CloudWatch namespace of the EMF metrics (`PUSHDEPLOY_METRICS_NAMESPACE`; `pushdeploy`
    /// unless set).
    pub metrics_namespace: String,
    /// Where deployment notifications go; `None`: nowhere (`PUSHDEPLOY_NOTIFY_TOPIC_ARN`).
    pub notify_topic_arn: Option<String>,
    /// How many services one push deploys at once (`PUSHDEPLOY_CONCURRENCY`; 64 unless set).
    pub concurrency: usize,
    /// Open the deploy function's connections during init (`PUSHDEPLOY_WARM_UP`; on unless
    /// set).
    pub warm_up: bool,
    /// Write EMF metric lines to stdout. Not a setting: on in the functions, off in the CLI,
    /// whose stdout is its answer and is not CloudWatch.
    pub emit_metrics: bool,
}

/// One entry of `PUSHDEPLOY_RULES`: service `cluster`/`service` follows `repository`:`tag`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub(crate) repository: String,
    pub(crate) tag: String,
    /// Cluster name or ARN.
    pub(crate) cluster: String,
    /// Service name or ARN.
    pub(crate) service: String,
    #[serde(default)]
    pub(crate) container: Option<String>,
    /// The gate's HTTP smoke checks for the service, in the `pushdeploy:smoke` tag's syntax.
    #[serde(default)]
    pub(crate) smoke: Option<String>,
    /// The test listener's base URL for those checks, as the `pushdeploy:smoke-url` tag.
    #[serde(default)]
    pub(crate) smoke_url: Option<String>,
    /// The gate's alarm checks for the service, in the `pushdeploy:alarms` tag's syntax.
    #[serde(default)]
    pub(crate) alarms: Option<String>,
}

/// The first setting that does not read, named by its variable: a function fails its init and
/// the CLI exits. No retry helps; only correcting the setting does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `PUSHDEPLOY_TABLE` is unset or blank: it is the one setting without a default.
    #[error("{TABLE_VAR} is not set: it must name the DynamoDB deployment ledger table")]
    MissingTable,
    /// `PUSHDEPLOY_RULES` does not parse (an unknown field included); holds the JSON error.
    #[error("{RULES_VAR} is not a JSON array of {{\"repository\",\"tag\",\"cluster\",\"service\",\"container\"?,\"smoke\"?,\"smoke_url\"?,\"alarms\"?}}: {0}")]
    BadRules(String),
    /// An entry of `PUSHDEPLOY_TRUSTED_ACCOUNTS` is not 12 digits; holds that entry.
    #[error("{TRUSTED_ACCOUNTS_VAR} holds {0:?}, which is not a 12-digit AWS account id")]
    BadAccount(String),
    /// `PUSHDEPLOY_DEPLOY_TIMEOUT` does not parse, or is under a minute; holds its value.
    #[error("{DEPLOY_TIMEOUT_VAR} is {0:?}: it must be a whole number of seconds, at least 60")]
    BadTimeout(String),
    /// A `PUSHDEPLOY_RULES` entry leaves `repository`, `tag`, `cluster` or `service` blank.
    #[error("{RULES_VAR} entry {index} has an empty {field}")]
    EmptyRuleField {
        /// The entry's position in the array, from 0.
        index: usize,
        /// The blank field's name.
        field: &'static str,
    },
    /// A `PUSHDEPLOY_RULES` entry's `tag` is not a tag policy; holds the entry's position and
    /// what is wrong with it.
    #[error("{RULES_VAR} entry {0}: tag {1}")]
    BadRulePolicy(usize, String),
    /// `PUSHDEPLOY_DRY_RUN` is none of true/false, yes/no, 1/0, on/off; holds its value.
    #[error("{DRY_RUN_VAR} is {0:?}: it must be true or false")]
    BadDryRun(String),
    /// `PUSHDEPLOY_METRICS_NAMESPACE` breaks CloudWatch's rule for namespaces (length,
    /// characters, or the reserved `AWS/`); holds its value.
    #[error("{METRICS_NAMESPACE_VAR} is {0:?}: a CloudWatch namespace is 1 to 255 of letters, digits and . - _ / # : (and not starting with AWS/)")]
    BadNamespace(String),
    /// `PUSHDEPLOY_WARM_UP` is none of the words `PUSHDEPLOY_DRY_RUN` takes; holds its value.
    #[error("{WARM_UP_VAR} is {0:?}: it must be true or false")]
    BadWarmUp(String),
    /// `PUSHDEPLOY_CONCURRENCY` does not parse, or is outside 1..=64; holds its value.
    #[error("{CONCURRENCY_VAR} is {0:?}: it must be a whole number from 1 to 64")]
    BadConcurrency(String),
    /// `PUSHDEPLOY_NOTIFY_TOPIC_ARN` is not shaped like an SNS topic ARN (whether the topic
    /// exists, the first publish says); holds its value.
    #[error("{NOTIFY_TOPIC_VAR} is {0:?}, which is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")]
    BadTopic(String),
}

impl Config {
    /// The settings from this process's environment: blank counts as unset, and the first bad
    /// setting is the error, named after its variable.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (a variable's value, if set): blank counts as unset,
    /// and the first bad setting is the error, named after its variable.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let set = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // Fields are evaluated in the order written: which bad setting is reported first
        // depends on it.
        Ok(Config {
            table: set(TABLE_VAR).ok_or(ConfigError::MissingTable)?,
            clusters: set(CLUSTERS_VAR).map(|list| cluster_names(&list)),
            rules: set(RULES_VAR)
                .map(|json| parse_rules(&json))
                .transpose()?
                .unwrap_or_default(),
            deploy_timeout: set(DEPLOY_TIMEOUT_VAR)
                .map(deploy_timeout)
                .transpose()?
                .unwrap_or(DEFAULT_DEPLOY_TIMEOUT),
            trusted_accounts: set(TRUSTED_ACCOUNTS_VAR)
                .map(|list| trusted_accounts(&list))
                .transpose()?,
            dry_run: set(DRY_RUN_VAR)
                .map(|raw| parse_bool(&raw).ok_or(ConfigError::BadDryRun(raw)))
                .transpose()?
                .unwrap_or(false),
            metrics_namespace: set(METRICS_NAMESPACE_VAR)
                .map(metrics_namespace)
                .transpose()?
                .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_string()),
            notify_topic_arn: set(NOTIFY_TOPIC_VAR).map(notify_topic).transpose()?,
            concurrency: set(CONCURRENCY_VAR)
                .map(concurrency)
                .transpose()?
                .unwrap_or(DEFAULT_CONCURRENCY),
            warm_up: set(WARM_UP_VAR)
                .map(|raw| parse_bool(&raw).ok_or(ConfigError::BadWarmUp(raw)))
                .transpose()?
                .unwrap_or(true),
            emit_metrics: true,
        })
    }

    /// Where the EMF metrics go; `None` when they are off.
    pub(crate) fn emf_namespace(&self) -> Option<&str> {
        self.emit_metrics.then_some(self.metrics_namespace.as_str())
    }

    /// Where notifications go; `None` when there is no topic or this is a dry run.
    pub(crate) fn notify_topic(&self) -> Option<String> {
        self.notify_topic_arn.clone().filter(|_| !self.dry_run)
    }

    /// Defaults for everything but the ledger table.
    pub fn for_table(table: impl Into<String>) -> Config {
        Config {
            table: table.into(),
            clusters: None,
            rules: Vec::new(),
            deploy_timeout: DEFAULT_DEPLOY_TIMEOUT,
            trusted_accounts: None,
            dry_run: false,
            metrics_namespace: DEFAULT_METRICS_NAMESPACE.to_string(),
            notify_topic_arn: None,
            concurrency: DEFAULT_CONCURRENCY,
            warm_up: true,
            emit_metrics: true,
        }
    }
}

/// Cluster names from a comma-separated list of names or ARNs; empty entries are ignored.
fn cluster_names(list: &str) -> BTreeSet<String> {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| resource_name(c).to_string())
        .collect()
}

fn deploy_timeout(raw: String) -> Result<Duration, ConfigError> {
    match raw.parse::<u64>() {
        Ok(seconds) if seconds >= 60 => Ok(Duration::from_secs(seconds)),
        _ => Err(ConfigError::BadTimeout(raw)),
    }
}

/// Account ids from a comma-separated list; the first one that is not 12 digits is the error.
fn trusted_accounts(list: &str) -> Result<BTreeSet<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) {
                Ok(a.to_string())
            } else {
                Err(ConfigError::BadAccount(a.to_string()))
            }
        })
        .collect()
}

fn metrics_namespace(ns: String) -> Result<String, ConfigError> {
    if valid_namespace(&ns) {
        Ok(ns)
    } else {
        Err(ConfigError::BadNamespace(ns))
    }
}

/// Only the shape of an SNS topic ARN: whether the topic exists is for the first publish to say.
fn notify_topic(arn: String) -> Result<String, ConfigError> {
    if arn.starts_with("arn:")
        && arn.split(':').nth(2) == Some("sns")
        && arn.split(':').count() == 6
    {
        Ok(arn)
    } else {
        Err(ConfigError::BadTopic(arn))
    }
}

fn concurrency(raw: String) -> Result<usize, ConfigError> {
    match raw.parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(ConfigError::BadConcurrency(raw)),
    }
}

/// `true`/`false` as people write them in tags and settings.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// CloudWatch's rule for namespaces (PutMetricData `Namespace`): 1-255 characters of
/// `[0-9A-Za-z.\-_/#:]`, and `AWS/` is reserved.
fn valid_namespace(ns: &str) -> bool {
    (1..=255).contains(&ns.len())
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#:".contains(&b))
        && !ns.starts_with("AWS/")
}

fn parse_rules(json: &str) -> Result<Vec<Rule>, ConfigError> {
    let rules: Vec<Rule> =
        serde_json::from_str(json).map_err(|e| ConfigError::BadRules(e.to_string()))?;
    for (index, rule) in rules.iter().enumerate() {
        for (field, value) in [
            ("repository", &rule.repository),
            ("tag", &rule.tag),
            ("cluster", &rule.cluster),
            ("service", &rule.service),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::EmptyRuleField { index, field });
            }
        }
        if let Err(bad) = crate::policy::TagPolicy::parse(&rule.tag) {
            return Err(ConfigError::BadRulePolicy(index, bad.to_string()));
        }
    }
    Ok(rules)
}

/// The last path segment of an ECS ARN (`…:cluster/prod` -> `prod`), or the name itself.
pub(crate) fn resource_name(name_or_arn: &str) -> &str {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.rsplit('/').next().unwrap_or(name_or_arn)
    } else {
        name_or_arn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn reads_table_clusters_and_rules() {
        let c = config(&[
            (TABLE_VAR, "ledger"),
            (CLUSTERS_VAR, " prod, arn:aws:ecs:us-east-1:123456789012:cluster/staging ,"),
            (RULES_VAR, r#"[{"repository":"web","tag":"latest","cluster":"prod","service":"web","container":"app"}]"#),
        ])
        .unwrap();
        assert_eq!(c.table, "ledger");
        assert_eq!(
            c.clusters.unwrap().into_iter().collect::<Vec<_>>(),
            ["prod", "staging"]
        );
        assert_eq!(c.rules[0].container.as_deref(), Some("app"));
        assert_eq!(c.deploy_timeout, DEFAULT_DEPLOY_TIMEOUT);
        assert!(!c.dry_run);
        assert_eq!(c.metrics_namespace, "pushdeploy");
        assert_eq!(c.notify_topic_arn, None);
        let c = config(&[
            (TABLE_VAR, "t"),
            (DEPLOY_TIMEOUT_VAR, "600"),
            (DRY_RUN_VAR, "TRUE"),
            (METRICS_NAMESPACE_VAR, "Acme/Deploys"),
            (
                NOTIFY_TOPIC_VAR,
                "arn:aws:sns:us-east-1:123456789012:deploys",
            ),
        ])
        .unwrap();
        assert_eq!(c.deploy_timeout, Duration::from_secs(600));
        assert!(c.dry_run);
        assert_eq!(c.metrics_namespace, "Acme/Deploys");
        assert_eq!(
            c.notify_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:deploys")
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        assert_eq!(config(&[]), Err(ConfigError::MissingTable));
        assert_eq!(
            config(&[(TABLE_VAR, "t"), (TRUSTED_ACCOUNTS_VAR, "123456789012,42")]),
            Err(ConfigError::BadAccount("42".into()))
        );
        for bad in ["30m", "59", "-1"] {
            assert_eq!(
                config(&[(TABLE_VAR, "t"), (DEPLOY_TIMEOUT_VAR, bad)]),
                Err(ConfigError::BadTimeout(bad.into()))
            );
        }
        let err = config(&[
            (TABLE_VAR, "t"),
            (
                RULES_VAR,
                r#"[{"repository":"web","tag":"semver:mnior","cluster":"c","service":"s"}]"#,
            ),
        ])
        .unwrap_err();
        assert_eq!(err.to_string(), "PUSHDEPLOY_RULES entry 0: tag \"semver:mnior\" is not a tag policy: use an exact tag, prefix:<start of tag>, semver:major, semver:minor, semver:patch, or any");
        for bad in ["0", "65", "eight"] {
            assert_eq!(
                config(&[(TABLE_VAR, "t"), (CONCURRENCY_VAR, bad)]),
                Err(ConfigError::BadConcurrency(bad.into()))
            );
        }
        assert_eq!(
            config(&[(TABLE_VAR, "t"), (DRY_RUN_VAR, "maybe")]),
            Err(ConfigError::BadDryRun("maybe".into()))
        );
        assert_eq!(
            config(&[(TABLE_VAR, "t"), (METRICS_NAMESPACE_VAR, "AWS/ECS")]),
            Err(ConfigError::BadNamespace("AWS/ECS".into()))
        );
        assert_eq!(
            config(&[(TABLE_VAR, "t"), (NOTIFY_TOPIC_VAR, "deployments")]),
            Err(ConfigError::BadTopic("deployments".into()))
        );
        let err = config(&[(TABLE_VAR, "t"), (RULES_VAR, r#"{"repository":"web"}"#)]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("PUSHDEPLOY_RULES is not a JSON array"),
            "{err}"
        );
        let err = config(&[(TABLE_VAR, "t"), (RULES_VAR, r#"[{"repository":"web","tag":"latest","cluster":"c","service":"s","contianer":"x"}]"#)]).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `contianer`"),
            "{err}"
        );
        assert_eq!(
            config(&[
                (TABLE_VAR, "t"),
                (
                    RULES_VAR,
                    r#"[{"repository":"web","tag":"","cluster":"c","service":"s"}]"#
                )
            ]),
            Err(ConfigError::EmptyRuleField {
                index: 0,
                field: "tag"
            })
        );
    }
}
