//! A moto server of the test's own, on a free loopback port, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WORLD_SEED: &str = "1";

pub struct Moto {
    child: Child,
    pub address: SocketAddr,
}

/// The Python of the project's virtualenv (made by `make venv`), where moto is installed.
pub fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// moto's server with the deployment-aware ECS world in front of its ECS (see
/// `moto_serial.py` and `ecs_world.py`).
fn moto_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_serial.py")
}

impl Moto {
    pub fn start() -> Moto {
        let server = venv_python();
        assert!(
            server.exists(),
            "{} is missing: run `make venv` (or `make test`, which makes it)",
            server.display()
        );
        // A port freed by the OS can be taken by someone else before moto binds it: try again then.
        let mut last_words = Vec::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let mut child = Command::new(&server)
                .arg(moto_script())
                // The world's seed: each test's world draws the same deployment ids, run after run.
                .args(["127.0.0.1", &port.to_string(), WORLD_SEED])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
            // Werkzeug says " * Running on http://127.0.0.1:PORT" once it listens: wait for that line
            // (or the end of its output) with a deadline, then keep draining so moto never blocks.
            let (lines_tx, lines_rx) = mpsc::channel();
            let stderr = child.stderr.take().expect("piped stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = lines_tx.send(line);
                }
            });
            let ready = format!("Running on http://127.0.0.1:{port}");
            last_words.clear();
            while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(60)) {
                if line.contains(&ready) {
                    std::thread::spawn(move || lines_rx.iter().for_each(drop));
                    return Moto {
                        child,
                        address: ([127, 0, 0, 1], port).into(),
                    };
                }
                last_words.push(line);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "moto_server did not start; it said:\n{}",
            last_words.join("\n")
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
