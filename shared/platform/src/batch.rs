//! Calls that arrive together, handled together. Each call queues its item and waits for
//! its own answer; a fixed number of workers each take whatever is queued (up to a
//! maximum) as one batch. A lone call is handled at once as a batch of one; under load,
//! batches grow while the earlier ones run. One statement or transaction per batch then
//! saves Postgres the per-call start-up, round trips and commits.
//!
//! Written here rather than taken from a data-loader crate: those collect a batch over a
//! fixed delay, which every call would pay even when nothing else is waiting.
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

type Waiting<T, R> = (T, oneshot::Sender<Result<R, Arc<anyhow::Error>>>);

/// The queue in front of the workers; cheap to clone.
pub struct Batcher<T, R> {
    queue: mpsc::Sender<Waiting<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts `workers` workers on the current runtime, each handing up to `max_batch`
    /// items at a time to `handle`, which answers each item, in order. A failed batch
    /// fails every call in it, and so does a batch answered with more or fewer answers
    /// than it had items (no call gets another's answer). The workers stop once every clone is dropped and the queue
    /// is drained: calls in flight are still handled and answered.
    pub fn start<F, Fut>(workers: usize, max_batch: usize, handle: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<R>>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel(max_batch * workers * 4);
        let (waiting, handle) = (Arc::new(Mutex::new(waiting)), Arc::new(handle));
        for _ in 0..workers {
            tokio::spawn(work(waiting.clone(), max_batch, handle.clone()));
        }
        Self { queue }
    }

    /// The answer to `item`, once the batch holding it is handled.
    pub async fn call(&self, item: T) -> anyhow::Result<R> {
        let (reply, answer) = oneshot::channel();
        let stopped = || anyhow::anyhow!("the batch workers stopped");
        self.queue
            .send((item, reply))
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }
}

async fn work<T, R, F, Fut>(
    waiting: Arc<Mutex<mpsc::Receiver<Waiting<T, R>>>>,
    max_batch: usize,
    handle: Arc<F>,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<R>>>,
{
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        if waiting.lock().await.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let (items, replies): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
        let asked = items.len();
        match handle(items).await {
            Ok(answers) if answers.len() != asked => {
                let e = Arc::new(anyhow::anyhow!(
                    "the batch handler answered {} of {asked} items",
                    answers.len()
                ));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A caller that went away needs no answer.
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn each_call_gets_its_own_answer_and_calls_waiting_together_share_a_batch() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (gate, opened) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(AtomicUsize::new(0)),
        );
        let batcher = Batcher::start(1, 8, {
            let (batches, gate, opened) = (batches.clone(), gate.clone(), opened.clone());
            move |items: Vec<u32>| {
                let (batches, gate, opened) = (batches.clone(), gate.clone(), opened.clone());
                async move {
                    // The first batch waits until the others have queued behind it.
                    if opened.fetch_add(1, Ordering::SeqCst) == 0 {
                        gate.notified().await;
                    }
                    batches.lock().await.push(items.len());
                    Ok(items.into_iter().map(|i| i * 10).collect())
                }
            }
        });
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call(1).await.unwrap() }
        });
        while opened.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=6)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.call(i).await.unwrap() })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_one();

        assert_eq!(first.await.unwrap(), 10);
        for (i, call) in (2..=6).zip(rest) {
            assert_eq!(call.await.unwrap(), i * 10);
        }
        assert_eq!(
            *batches.lock().await,
            vec![1, 5],
            "a lone call, then one batch"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_call_in_it() {
        let batcher: Batcher<u32, u32> =
            Batcher::start(1, 8, |_| async { Err(anyhow::anyhow!("database gone")) });
        let error = batcher.call(1).await.unwrap_err();
        assert!(error.to_string().contains("database gone"), "{error}");
    }

    #[tokio::test]
    async fn a_handler_answering_too_few_fails_the_calls_instead_of_misanswering_them() {
        let batcher = Batcher::start(1, 8, |items: Vec<u32>| async move {
            Ok(items.into_iter().skip(1).collect::<Vec<_>>())
        });
        let error = batcher.call(7).await.unwrap_err();
        assert_eq!(error.to_string(), "the batch handler answered 0 of 1 items");
    }
}
