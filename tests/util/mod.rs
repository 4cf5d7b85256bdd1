//! A small harness for integration tests: runs the real `logward` binary in a fresh
//! temporary directory and captures its exit code, stdout and stderr.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn write_gz(&self, name: &str, data: &[u8]) -> PathBuf {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(data).unwrap();
        self.write(name, &enc.finish().unwrap())
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_logward"));
        cmd.current_dir(self.path());
        // Keep every run away from the user's and the system's state and configuration.
        cmd.env("LOGWARD_CONFIG", "");
        cmd.env("LOGWARD_STORE", self.join("state/logward.db"));
        // The audit key lives apart from the state directory, as it must.
        cmd.env("LOGWARD_AUDIT_KEY", self.join("keys/audit.key"));
        cmd.env("XDG_STATE_HOME", self.join("xdg-state"));
        cmd.env("HOME", self.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, None)
    }

    /// Runs with a deadline: a run still going after `secs` is killed and the test fails,
    /// so a hang shows as a failure instead of a stuck test run.
    pub fn run_within(&self, secs: u64, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        run_with_deadline(cmd, secs)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("logward runs");
        if let Some(data) = stdin {
            child.stdin.take().unwrap().write_all(data).unwrap();
        }
        let out: Output = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Held by the tests that read or change this machine's own `/var/lib/logward` (the README
/// quick start checks it is left alone; the package test installs and purges it), so that
/// they never run at the same time.
pub static SYSTEM_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`SYSTEM_STATE`], also after a test that held it failed.
pub fn lock_system_state() -> std::sync::MutexGuard<'static, ()> {
    SYSTEM_STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared corpus of third-party logs beside the project. Tests that read it are
/// `#[ignore = "needs ../shared/corpus"]`, so a clone without it shows them as ignored;
/// run with `--include-ignored` and no corpus, they fail here and say why.
pub fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        p.is_dir(),
        "{} is absent: these tests need the shared corpus beside the project",
        p.display()
    );
    p
}

/// A combined-format line for tests.
pub fn combined(ip: &str, time: &str, request: &str, status: u16, ua: &str) -> String {
    format!("{ip} - - [{time}] \"{request}\" {status} 512 \"-\" \"{ua}\"\n")
}

/// Runs `cmd` (stdout and stderr piped), killing it and failing the test after `secs`.
pub fn run_with_deadline(mut cmd: Command, secs: u64) -> Run {
    let mut child = cmd.spawn().expect("the command runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still ran after {secs} s (killed)\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The log the seeded generator writes for `cfg`.
pub fn generated(cfg: &logward::generate::GenConfig) -> Vec<u8> {
    let mut out = Vec::new();
    let truth = logward::generate::generate(cfg, &mut out).expect("the generator runs");
    assert!(!cfg.attacks || !truth.attackers.is_empty());
    out
}

/// A day of generated traffic ending `days_ago` days before now (0: the last 24 hours),
/// with the labelled attacks when `attacks`.
pub fn recent_day(seed: u64, days_ago: i64, lines: u64, attacks: bool) -> Vec<u8> {
    generated(&logward::generate::GenConfig {
        seed,
        lines,
        start: unix_now() - (days_ago + 1) * 86_400 + 600,
        span_secs: 86_400 - 1200,
        attacks,
        ..logward::generate::GenConfig::default()
    })
}

/// A file's content, decompressed when it is gzip.
pub fn read_plain(p: &Path) -> Vec<u8> {
    let raw = std::fs::read(p).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

/// Unix seconds as the access log writes them, in UTC.
pub fn clf(t: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = logward::timefmt::civil_from_days(days);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
