//! The gate's CloudWatch alarm checks: named alarms must be OK, and have been OK for a while,
//! at every stage the hook runs at. The state and the time it last changed are CloudWatch's
//! (DescribeAlarms: `StateValue`, `StateUpdatedTimestamp`, "The time stamp of the last update
//! to the value of either the StateValue or EvaluationState parameters"), and now is AWS's
//! clock as its answer tells it. Only the gate links the CloudWatch client.

use crate::aws::AwsError;
use crate::clock::AwsClock;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The service tag that names the alarms: `web-5xx web-p99 5m` (names, then how long they must
/// have been OK; omitted, OK now is enough). Names with spaces go in `PUSHDEPLOY_RULES`.
pub const TAG_ALARMS: &str = "pushdeploy:alarms";

/// DescribeAlarms takes at most 100 names ("AlarmNames ... Maximum number of 100 items").
const NAMES_AT_MOST: usize = 100;

/// Rounds an alarm may sit in INSUFFICIENT_DATA before the gate gives up on it (FAILED): at
/// the gate's callback delay, about five minutes.
pub(crate) const INSUFFICIENT_ROUNDS_AT_MOST: u32 = 30;

/// Named alarms that must be OK, for at least `ok_for`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlarmCheck {
    pub(crate) names: Vec<String>,
    pub(crate) ok_for: Duration,
}

/// `web-5xx web-p99 5m`: names, then an optional hold time (`90s`, `5m`, `1h`).
pub(crate) fn parse_alarms(text: &str) -> Result<AlarmCheck, String> {
    let mut names: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let ok_for = match names.last().and_then(|w| hold_time(w)) {
        Some(hold) => {
            names.pop();
            hold
        }
        None => Duration::ZERO,
    };
    if names.is_empty() {
        return Err("no alarm named".into());
    }
    if names.len() > NAMES_AT_MOST {
        return Err(format!("{} alarms; at most {NAMES_AT_MOST}", names.len()));
    }
    Ok(AlarmCheck { names, ok_for })
}

fn hold_time(word: &str) -> Option<Duration> {
    let (number, unit) = word.split_at(word.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

/// One alarm as CloudWatch described it: the evidence a verdict quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AlarmSeen {
    pub(crate) name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub(crate) state: String,
    /// Since when (RFC 3339), as CloudWatch says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl AlarmSeen {
    fn evidence(&self) -> String {
        let since = self.since.as_deref().unwrap_or("an unknown time");
        match &self.reason {
            Some(reason) => format!("{} {} since {since} ({reason})", self.name, self.state),
            None => format!("{} {} since {since}", self.name, self.state),
        }
    }
}

/// What the alarms say this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AlarmVerdict {
    /// Every alarm OK for long enough.
    Pass(String),
    /// An alarm is ALARM, CloudWatch has none of that name, or one lacked data too long.
    Fail(String),
    /// Not yet: OK too recently, or waiting for data.
    Again(String),
}

/// The verdict on `check` from what CloudWatch showed (`seen`, any order) at `now`;
/// `insufficient_rounds` counts the rounds so far in which an alarm lacked data.
pub(crate) fn judge(
    check: &AlarmCheck,
    seen: &[AlarmSeen],
    now: DateTime<Utc>,
    insufficient_rounds: &mut u32,
) -> AlarmVerdict {
    let mut owed = Vec::new();
    let mut waiting = Vec::new();
    for name in &check.names {
        let Some(alarm) = seen.iter().find(|a| &a.name == name) else {
            return AlarmVerdict::Fail(format!("CloudWatch has no alarm named {name}"));
        };
        match alarm.state.as_str() {
            "OK" => {
                let held = ok_since(alarm).map(|t| (now - t).to_std().unwrap_or_default());
                let held = held.unwrap_or_default();
                if held < check.ok_for {
                    owed.push(format!(
                        "{name} OK for {} s of {}",
                        held.as_secs(),
                        check.ok_for.as_secs()
                    ));
                }
            }
            "INSUFFICIENT_DATA" => waiting.push(alarm.evidence()),
            _ => return AlarmVerdict::Fail(format!("alarm {}", alarm.evidence())),
        }
    }
    if !waiting.is_empty() {
        *insufficient_rounds += 1;
        if *insufficient_rounds >= INSUFFICIENT_ROUNDS_AT_MOST {
            return AlarmVerdict::Fail(format!(
                "alarms without data for {} rounds: {}",
                insufficient_rounds,
                waiting.join("; ")
            ));
        }
        owed.extend(waiting);
    } else {
        *insufficient_rounds = 0;
    }
    let all = seen
        .iter()
        .map(AlarmSeen::evidence)
        .collect::<Vec<_>>()
        .join("; ");
    if owed.is_empty() {
        AlarmVerdict::Pass(format!("every alarm OK ({all})"))
    } else {
        AlarmVerdict::Again(format!("alarms not OK long enough: {}", owed.join(", ")))
    }
}

fn ok_since(alarm: &AlarmSeen) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(alarm.since.as_deref()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// CloudWatch reads, on AWS's clock.
#[derive(Clone)]
pub(crate) struct Alarms {
    cloudwatch: aws_sdk_cloudwatch::Client,
    clock: AwsClock,
}

impl Alarms {
    /// A CloudWatch client that keeps `clock` on AWS's time, as the other clients do.
    pub(crate) fn new(sdk: &aws_config::SdkConfig, clock: AwsClock) -> Alarms {
        let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .interceptor(clock.clone())
            .build();
        Alarms {
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(config),
            clock,
        }
    }

    /// The named alarms as CloudWatch describes them (names it does not know are absent), and
    /// AWS's time at the answer.
    pub(crate) async fn states_of(
        &self,
        names: &[String],
    ) -> Result<(Vec<AlarmSeen>, DateTime<Utc>), AwsError> {
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("cloudwatch:DescribeAlarms", e))?;
            seen.extend(out.metric_alarms().iter().map(|a| {
                alarm_seen(
                    a.alarm_name(),
                    a.state_value().map(|s| s.as_str()),
                    a.state_updated_timestamp(),
                    a.state_reason(),
                )
            }));
            seen.extend(out.composite_alarms().iter().map(|a| {
                alarm_seen(
                    a.alarm_name(),
                    a.state_value().map(|s| s.as_str()),
                    a.state_updated_timestamp(),
                    a.state_reason(),
                )
            }));
            token = out.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok((seen, self.clock.now()));
            }
        }
    }
}

/// A metric or a composite alarm, as the gate keeps it.
fn alarm_seen(
    name: Option<&str>,
    state: Option<&str>,
    since: Option<&aws_smithy_types::DateTime>,
    reason: Option<&str>,
) -> AlarmSeen {
    AlarmSeen {
        name: name.unwrap_or_default().to_string(),
        state: state.unwrap_or_default().to_string(),
        since: since.and_then(smithy_time),
        reason: reason.map(str::to_string),
    }
}

fn smithy_time(t: &aws_smithy_types::DateTime) -> Option<String> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos()).map(|t| crate::event::timestamp_text(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str, state: &str, since: &str) -> AlarmSeen {
        AlarmSeen {
            name: name.into(),
            state: state.into(),
            since: Some(since.into()),
            reason: Some("Threshold Crossed".into()),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn names_then_an_optional_hold_time() {
        assert_eq!(
            parse_alarms("web-5xx web-p99 5m"),
            Ok(AlarmCheck {
                names: vec!["web-5xx".into(), "web-p99".into()],
                ok_for: Duration::from_secs(300)
            })
        );
        assert_eq!(parse_alarms("web-5xx").unwrap().ok_for, Duration::ZERO);
        assert_eq!(
            parse_alarms("a 90s").unwrap().ok_for,
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_alarms("a 1h").unwrap().ok_for,
            Duration::from_secs(3600)
        );
        assert!(parse_alarms("5m").is_err());
        assert!(parse_alarms("  ").is_err());
    }

    #[test]
    fn ok_long_enough_passes_ok_too_recently_waits() {
        let check = parse_alarms("web-5xx 5m").unwrap();
        let mut rounds = 0;
        let alarms = [seen("web-5xx", "OK", "2026-12-06T10:00:00Z")];
        assert!(matches!(
            judge(&check, &alarms, at("2026-12-06T10:04:00Z"), &mut rounds),
            AlarmVerdict::Again(why) if why.contains("web-5xx OK for 240 s of 300")
        ));
        assert!(matches!(
            judge(&check, &alarms, at("2026-12-06T10:05:00Z"), &mut rounds),
            AlarmVerdict::Pass(why) if why.contains("web-5xx OK since 2026-12-06T10:00:00Z")
        ));
    }

    #[test]
    fn an_alarm_in_alarm_or_missing_fails_with_the_evidence() {
        let check = parse_alarms("web-5xx web-p99").unwrap();
        let mut rounds = 0;
        let now = at("2026-12-06T10:00:00Z");
        let firing = [
            seen("web-5xx", "OK", "2026-12-06T09:00:00Z"),
            seen("web-p99", "ALARM", "2026-12-06T09:59:00Z"),
        ];
        assert!(matches!(
            judge(&check, &firing, now, &mut rounds),
            AlarmVerdict::Fail(why) if why == "alarm web-p99 ALARM since 2026-12-06T09:59:00Z (Threshold Crossed)"
        ));
        let missing = [seen("web-5xx", "OK", "2026-12-06T09:00:00Z")];
        assert!(matches!(
            judge(&check, &missing, now, &mut rounds),
            AlarmVerdict::Fail(why) if why == "CloudWatch has no alarm named web-p99"
        ));
    }

    #[test]
    fn no_data_waits_then_fails() {
        let check = parse_alarms("web-5xx").unwrap();
        let mut rounds = 0;
        let now = at("2026-12-06T10:00:00Z");
        let quiet = [seen("web-5xx", "INSUFFICIENT_DATA", "2026-12-06T09:00:00Z")];
        for _ in 1..INSUFFICIENT_ROUNDS_AT_MOST {
            assert!(matches!(
                judge(&check, &quiet, now, &mut rounds),
                AlarmVerdict::Again(_)
            ));
        }
        assert!(matches!(
            judge(&check, &quiet, now, &mut rounds),
            AlarmVerdict::Fail(why) if why.contains("without data for 30 rounds")
        ));
    }
}
