//! The rollback function's clock: what the sweep measures `PUSHDEPLOY_DEPLOY_TIMEOUT` from, and
//! what a `Scheduled Event`'s own `time` is held against. Never the event's word for it: anyone
//! allowed `lambda:InvokeFunction` can invoke the function with any payload, and a sweep that
//! took its cutoff from a `time` in the year 2999 failed every deployment still in flight.

use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Names a file holding seconds to add to the system clock, read at every look. For tests
/// that run the binaries against an emulator whose clock they move (the ECS world's): honoured
/// only together with `AWS_ENDPOINT_URL`, and never set by the stack. It gives no one anything:
/// whoever can change the function's environment can point `AWS_ENDPOINT_URL` elsewhere too.
pub const TEST_OFFSET_FILE: &str = "PUSHDEPLOY_TEST_CLOCK_OFFSET_FILE";

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Offset,
}

#[derive(Debug, Clone, Default)]
enum Offset {
    #[default]
    None,
    /// Milliseconds, moved by the test that holds the other end.
    Shared(Arc<AtomicI64>),
    /// Seconds, in the file [`TEST_OFFSET_FILE`] names.
    File(PathBuf),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock, shifted by the offset file only where a test asks for it (see
    /// [`TEST_OFFSET_FILE`]).
    pub fn from_env() -> Clock {
        let emulated = std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty());
        match std::env::var_os(TEST_OFFSET_FILE) {
            Some(path) if emulated && !path.is_empty() => Clock {
                offset: Offset::File(PathBuf::from(path)),
            },
            _ => Clock::system(),
        }
    }

    /// The system clock plus `offset_ms`, which the caller moves (an in-process test following
    /// the ECS world's clock).
    pub fn shifted(offset_ms: Arc<AtomicI64>) -> Clock {
        Clock {
            offset: Offset::Shared(offset_ms),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let ms = match &self.offset {
            Offset::None => 0,
            Offset::Shared(ms) => ms.load(Ordering::SeqCst),
            Offset::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .map_or(0, |seconds| (seconds * 1000.0) as i64),
        };
        Utc::now() + chrono::Duration::milliseconds(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_offset_moves_the_clock() {
        let offset = Arc::new(AtomicI64::new(0));
        let clock = Clock::shifted(offset.clone());
        let before = clock.now();
        offset.store(3_600_000, Ordering::SeqCst);
        let after = clock.now();
        assert!(
            after - before >= chrono::Duration::minutes(59),
            "{before} {after}"
        );
        assert!((Clock::system().now() - Utc::now()).num_seconds().abs() < 5);
    }

    #[test]
    fn an_offset_file_is_read_at_every_look() {
        let dir = std::env::temp_dir().join(format!("pushdeploy-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("offset");
        let clock = Clock {
            offset: Offset::File(path.clone()),
        };
        // No file yet: the system clock.
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
        std::fs::write(&path, "1800\n").unwrap();
        let ahead = (clock.now() - Utc::now()).num_seconds();
        assert!((1795..=1805).contains(&ahead), "{ahead}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
