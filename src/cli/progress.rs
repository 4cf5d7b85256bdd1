//! A one-line progress display on stderr for long runs, shown only when stderr is a
//! terminal, redrawn a few times a second from the pass's shared counters.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logward::scan::Progress;

pub struct ProgressLine {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts drawing when stderr is a terminal and `enabled`; otherwise does nothing.
    pub fn start(
        progress: Arc<Progress>,
        total_bytes: u64,
        total_jobs: u64,
        enabled: bool,
    ) -> ProgressLine {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return ProgressLine { stop, handle: None };
        }
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut drawn = false;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if started.elapsed() < Duration::from_millis(500) {
                    continue;
                }
                let bytes = progress.bytes.load(Ordering::Relaxed);
                let files = progress.files_done.load(Ordering::Relaxed);
                let mb = bytes as f64 / 1e6;
                let rate = mb / started.elapsed().as_secs_f64();
                let total = if total_bytes > 0 {
                    format!(" of ~{:.0} MB on disk", total_bytes as f64 / 1e6)
                } else {
                    String::new()
                };
                let _ = write!(
                    std::io::stderr(),
                    "\r\x1b[2Klogward: {mb:.0} MB read{total}, {files}/{total_jobs} parts done, {rate:.0} MB/s"
                );
                drawn = true;
            }
            if drawn {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
        });
        ProgressLine {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
