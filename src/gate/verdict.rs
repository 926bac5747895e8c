//! What the gate answers, over plain data: the checks, the progress ECS handed back, and this
//! invocation's probes.

use super::alarms::{AlarmSeen, AlarmVerdict};
use super::checks::SmokeCheck;
use serde::{Deserialize, Serialize};

/// One HTTP try of one smoke check: the evidence a verdict quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Probe {
    pub(crate) path: String,
    /// The HTTP status, when an answer came.
    pub(crate) status: Option<u16>,
    pub(crate) latency_ms: u64,
    /// Why no answer came (connection refused, timed out, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Probe {
    /// Why the probe fails `check`, if it does.
    pub(crate) fn failure(&self, check: &SmokeCheck) -> Option<String> {
        let budget = check.budget.as_millis();
        match (self.status, &self.error) {
            (_, Some(error)) => Some(format!(
                "GET {} got no answer ({error}) after {} ms",
                self.path, self.latency_ms
            )),
            (Some(status), None) if status != check.status => Some(format!(
                "GET {} answered {status}, not {} ({} ms)",
                self.path, check.status, self.latency_ms
            )),
            (Some(_), None) if u128::from(self.latency_ms) > budget => Some(format!(
                "GET {} took {} ms, over its {budget} ms budget",
                self.path, self.latency_ms
            )),
            (None, None) => Some(format!("GET {} got no status", self.path)),
            _ => None,
        }
    }

    /// The probe in a few words: `GET /healthz 200 in 12 ms`.
    pub(crate) fn evidence(&self) -> String {
        match (self.status, &self.error) {
            (_, Some(e)) => format!(
                "GET {} no answer ({e}) after {} ms",
                self.path, self.latency_ms
            ),
            (Some(s), None) => format!("GET {} {s} in {} ms", self.path, self.latency_ms),
            (None, None) => format!("GET {} no status", self.path),
        }
    }
}

/// The gate's progress within one hook, kept in `hookDetails` between invocations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Consecutive successes so far, one per smoke check, in the checks' order.
    #[serde(default)]
    pub(crate) streaks: Vec<u32>,
    /// Invocations so far that tried the checks.
    #[serde(default)]
    pub(crate) rounds: u32,
    /// Invocations so far that could not try them (an AWS call failed).
    #[serde(default)]
    pub(crate) errors: u32,
    /// The latest round's probes: the evidence.
    #[serde(default)]
    pub(crate) last: Vec<Probe>,
    /// Rounds in a row in which an alarm had no data.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) insufficient_rounds: u32,
    /// The alarms as CloudWatch showed them in the latest round: the evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) alarms: Vec<AlarmSeen>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The gate's answer, before it is put in ECS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every check passed as often as it must.
    Pass(String),
    /// A check failed; why, with the evidence.
    Fail(String),
    /// Not yet: ask ECS to call again. Why, with the streaks so far.
    Again(String),
}

/// The verdict after this round's `probes` (one per check, in the checks' order), with
/// `progress` moved on. A probe that fails fails the gate at once: a green revision that
/// answers wrongly once is not shifted production traffic.
pub(crate) fn after_round(
    checks: &[SmokeCheck],
    progress: &mut Progress,
    probes: Vec<Probe>,
) -> Verdict {
    if progress.streaks.len() != checks.len() {
        // The checks changed since the last round (a tag edited mid-hook): start over.
        progress.streaks = vec![0; checks.len()];
    }
    progress.rounds += 1;
    let failures: Vec<String> = checks
        .iter()
        .zip(&probes)
        .filter_map(|(check, probe)| probe.failure(check))
        .collect();
    let evidence = probes
        .iter()
        .map(Probe::evidence)
        .collect::<Vec<_>>()
        .join("; ");
    progress.last = probes;
    if !failures.is_empty() {
        return Verdict::Fail(format!(
            "smoke check failed in round {}: {}",
            progress.rounds,
            failures.join("; ")
        ));
    }
    for streak in &mut progress.streaks {
        *streak += 1;
    }
    let owed: Vec<String> = checks
        .iter()
        .zip(&progress.streaks)
        .filter(|(check, streak)| **streak < check.successes)
        .map(|(check, streak)| format!("{} {streak} of {}", check.path, check.successes))
        .collect();
    if owed.is_empty() {
        Verdict::Pass(format!("every smoke check passed ({evidence})"))
    } else {
        Verdict::Again(format!(
            "passing so far ({evidence}); still owed: {}",
            owed.join(", ")
        ))
    }
}

/// The verdict of a round that ran the smoke checks (`smoke`, at their stage), the alarm checks
/// (`alarms`), both or neither: any failure fails it; it passes when everything that ran passed.
pub(crate) fn combine(
    stage: &str,
    smoke: Option<Verdict>,
    alarms: Option<AlarmVerdict>,
) -> Verdict {
    let alarms = alarms.map(|a| match a {
        AlarmVerdict::Pass(why) => Verdict::Pass(why),
        AlarmVerdict::Fail(why) => Verdict::Fail(why),
        AlarmVerdict::Again(why) => Verdict::Again(why),
    });
    let ran: Vec<Verdict> = [smoke, alarms].into_iter().flatten().collect();
    if ran.is_empty() {
        return Verdict::Pass(format!(
            "no check of the gate's runs at {stage}: its smoke checks run at {}",
            super::SMOKE_STAGE
        ));
    }
    let said = |keep: fn(&Verdict) -> Option<&String>| {
        ran.iter().filter_map(keep).cloned().collect::<Vec<_>>()
    };
    let failed = said(|v| match v {
        Verdict::Fail(why) => Some(why),
        _ => None,
    });
    if !failed.is_empty() {
        return Verdict::Fail(failed.join("; "));
    }
    let waiting = said(|v| match v {
        Verdict::Again(why) => Some(why),
        _ => None,
    });
    if !waiting.is_empty() {
        return Verdict::Again(waiting.join("; "));
    }
    Verdict::Pass(
        said(|v| match v {
            Verdict::Pass(why) => Some(why),
            _ => None,
        })
        .join("; "),
    )
}

/// How many invocations in a row may fail to reach AWS before the gate gives up (FAILED): a
/// gate that cannot check does not let the deployment through.
pub(crate) const ERRORS_AT_MOST: u32 = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check(successes: u32) -> SmokeCheck {
        SmokeCheck {
            path: "/healthz".into(),
            status: 200,
            budget: Duration::from_millis(500),
            successes,
        }
    }

    fn probe(status: Option<u16>, latency_ms: u64) -> Probe {
        Probe {
            path: "/healthz".into(),
            status,
            latency_ms,
            error: status.is_none().then(|| "connection refused".into()),
        }
    }

    #[test]
    fn three_rounds_again_then_pass() {
        let checks = [check(4)];
        let mut progress = Progress::default();
        for round in 1..=3 {
            let verdict = after_round(&checks, &mut progress, vec![probe(Some(200), 12)]);
            assert!(
                matches!(verdict, Verdict::Again(ref why) if why.contains(&format!("{round} of 4"))),
                "{verdict:?}"
            );
        }
        let verdict = after_round(&checks, &mut progress, vec![probe(Some(200), 12)]);
        assert_eq!(
            verdict,
            Verdict::Pass("every smoke check passed (GET /healthz 200 in 12 ms)".into())
        );
        assert_eq!((progress.rounds, progress.streaks.clone()), (4, vec![4]));
    }

    #[test]
    fn a_wrong_status_a_slow_answer_or_none_fails_with_the_evidence() {
        for (probe, says) in [
            (probe(Some(500), 8), "answered 500, not 200"),
            (probe(Some(200), 900), "took 900 ms, over its 500 ms budget"),
            (probe(None, 3), "no answer (connection refused)"),
        ] {
            let mut progress = Progress {
                streaks: vec![2],
                rounds: 2,
                ..Progress::default()
            };
            match after_round(&[check(3)], &mut progress, vec![probe.clone()]) {
                Verdict::Fail(why) => {
                    assert!(why.contains(says) && why.contains("round 3"), "{why}")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(progress.last, vec![probe]);
        }
    }

    #[test]
    fn changed_checks_start_over() {
        let mut progress = Progress {
            streaks: vec![5, 5],
            rounds: 5,
            ..Progress::default()
        };
        let verdict = after_round(&[check(2)], &mut progress, vec![probe(Some(200), 1)]);
        assert!(matches!(verdict, Verdict::Again(_)));
        assert_eq!(progress.streaks, vec![1]);
    }

    #[test]
    fn any_failure_fails_a_round_and_it_passes_when_all_that_ran_passed() {
        let pass = || Some(Verdict::Pass("smoke ok".into()));
        let alarm = |v: AlarmVerdict| Some(v);
        assert!(matches!(
            combine("POST_TEST_TRAFFIC_SHIFT", pass(), alarm(AlarmVerdict::Fail("alarm web-5xx ALARM".into()))),
            Verdict::Fail(why) if why == "alarm web-5xx ALARM"
        ));
        assert!(matches!(
            combine("POST_TEST_TRAFFIC_SHIFT", pass(), alarm(AlarmVerdict::Again("web-5xx OK for 3 s of 60".into()))),
            Verdict::Again(why) if why.contains("OK for 3 s")
        ));
        assert!(matches!(
            combine("POST_TEST_TRAFFIC_SHIFT", pass(), alarm(AlarmVerdict::Pass("every alarm OK".into()))),
            Verdict::Pass(why) if why == "smoke ok; every alarm OK"
        ));
        assert!(matches!(
            combine("POST_PRODUCTION_TRAFFIC_SHIFT", None, None),
            Verdict::Pass(why) if why.starts_with("no check of the gate's runs at POST_PRODUCTION_TRAFFIC_SHIFT")
        ));
    }
}
