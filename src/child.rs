//! Starting child processes: every process logward starts (`nft`, an action's shell; in
//! tests `zcat`, `sleep`) goes through [`spawn_child`]. It owns only the start, for one
//! reason: between `fork` and `exec` a child holds copies of every descriptor of the
//! process, so in tests, where many threads share one process, a rewrite's open-file check
//! (`rewrite::safety`) must not run meanwhile, or it finds its own file open in the child.
//! [`wait_for`] waits for one with a time limit. What runs, and what is done with its
//! output, is the callers' business.

/// Held for writing while a test starts a child process, and for reading by an open-file
/// check (see [`no_spawn_meanwhile`]).
#[cfg(test)]
static SPAWNING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Starts a child process. In tests no open-file check runs meanwhile: when this returns the
/// child has replaced itself by the program, and holds only what it was given.
pub(crate) fn spawn_child(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    #[cfg(test)]
    let _spawning = SPAWNING.write().unwrap_or_else(|p| p.into_inner());
    cmd.spawn()
}

/// Keeps [`spawn_child`] from starting a child while the guard lives: for a check that
/// must see only the descriptors the test process itself holds.
#[cfg(test)]
pub(crate) fn no_spawn_meanwhile() -> std::sync::RwLockReadGuard<'static, ()> {
    SPAWNING.read().unwrap_or_else(|p| p.into_inner())
}

/// Waits for `child` at most `timeout`; kills it after. `None` when it was killed.
pub(crate) fn wait_for(
    mut child: std::process::Child,
    timeout: std::time::Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
