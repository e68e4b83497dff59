//! Threads with a single-threaded tokio runtime of their own: the shards of
//! `serve` and the embedded acquirer simulator. Work on such a thread never
//! wakes another thread's tasks (tokio's work-stealing runtime cost about
//! three times the CPU per request here).

use std::future::Future;

use tokio::sync::oneshot;

/// Runs the future `task` makes on a new thread named `name`, with its own
/// single-threaded runtime (built here, so a failure is reported to the
/// caller). The receiver resolves once the future has finished and the
/// runtime, with every task still on it, is gone.
pub(crate) fn spawn_runtime_thread<F, Fut>(
    name: String,
    task: F,
) -> std::io::Result<oneshot::Receiver<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new().name(name).spawn(move || {
        rt.block_on(task());
        drop(rt);
        let _ = done_tx.send(());
    })?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_its_own_thread_and_says_when_done() {
        let caller = std::thread::current().id();
        let (tx, rx) = oneshot::channel();
        let done = spawn_runtime_thread("acqswitch-test".into(), move || async move {
            // A task of this runtime, spawned and awaited on it.
            let t = tokio::spawn(async { std::thread::current().name().map(str::to_owned) });
            let _ = tx.send((std::thread::current().id(), t.await.ok().flatten()));
        })
        .unwrap();
        let (id, name) = rx.await.unwrap();
        assert_ne!(id, caller);
        assert_eq!(name.as_deref(), Some("acqswitch-test"));
        done.await.unwrap();
    }
}
