//! Seeded fault injection around the ports, for soak tests: [`FaultyTable`] and
//! [`FaultyQueue`] wrap an adapter and fail a configurable fraction of its operations with
//! the errors the real adapters return for a transient failure.
//!
//! A fault strikes either *before* the wrapped call (nothing happened: `Throttled` or
//! `Unavailable` from the table, `Unavailable` from a queue) or *after* it (the call
//! happened, its answer was lost: `Unavailable`) — the second is the hard case for
//! exactly-once, a write that succeeded while its caller was told it failed. A batch send
//! can also fail partially: some entries are sent, the others reported in
//! `PartialBatch`, as SQS does.
//!
//! Decisions come from one seeded sequence per [`Faults`] (SplitMix64 over a draw
//! counter): the n-th guarded operation fails or not regardless of timing, so a
//! sequential caller sees the same faults for the same seed; concurrent callers see the
//! same fault rate and pattern, in their own interleaving. The rate can be changed at
//! run time (to 0 to end a storm), and a fault can be scripted ([`Faults::arm`]) for a test
//! that needs one at a given operation.
//!
//! Also the drivers of a soak: [`ScaledClock`] (time that runs fast once the storm is
//! over) and [`Redelivery`] (senders that redeliver until acknowledged, as providers do).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::ports::queue::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
use crate::ports::table::{
    Condition, Item, Key, Page, PutOutcome, Query, Table, TableError, TransactOp, Update,
};

const PPM: u64 = 1_000_000;

/// When an injected fault strikes, relative to the wrapped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The call is not made.
    Before,
    /// The call is made; its answer is replaced by an error.
    After,
}

/// One decision: which moment, and bits that pick the error's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub moment: Moment,
    bits: u64,
}

impl Fault {
    /// A before-fault of the table reports throttling for half the draws.
    fn throttled(self) -> bool {
        self.bits & 1 == 1
    }

    /// A batch fault is partial (some entries sent) for half the draws.
    fn partial(self) -> bool {
        self.bits & 2 == 2
    }

    /// Which entries of a batch of `len` are sent by a partial fault (never all of them).
    fn kept(self, len: usize) -> Vec<bool> {
        let mut kept: Vec<bool> = (0..len).map(|i| (self.bits >> (8 + i)) & 1 == 1).collect();
        if !kept.contains(&false)
            && let Some(last) = kept.last_mut()
        {
            *last = false;
        }
        kept
    }
}

/// What a [`Faults`] has injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Operations that went through the wrappers.
    pub calls: u64,
    /// Faults before the call (nothing happened).
    pub before: u64,
    /// Faults after the call (it happened; its answer was lost), partial batches included.
    pub after: u64,
}

impl FaultCounts {
    pub fn injected(&self) -> u64 {
        self.before + self.after
    }
}

/// The seeded source of faults, shared by every wrapper of one run.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    rate_ppm: AtomicU32,
    draws: AtomicU64,
    calls: AtomicU64,
    before: AtomicU64,
    after: AtomicU64,
    /// A scripted fault: after this many more operations, this many fail at this moment.
    armed: std::sync::Mutex<Option<(u64, u64, Moment)>>,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn to_ppm(rate: f64) -> u32 {
    // Clamped to [0, 1] first, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ppm = (rate.clamp(0.0, 1.0) * PPM as f64).round() as u32;
    ppm
}

impl Faults {
    /// Fails `rate` (0.0..=1.0) of the guarded operations, decided by `seed`.
    pub fn new(seed: u64, rate: f64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            rate_ppm: AtomicU32::new(to_ppm(rate)),
            draws: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            before: AtomicU64::new(0),
            after: AtomicU64::new(0),
            armed: std::sync::Mutex::new(None),
        })
    }

    /// Scripts a fault whatever the rate: the `times` operations that follow the next
    /// `skip` ones fail at `moment` (a before-fault as `Unavailable`, a whole batch).
    pub fn arm(&self, skip: u64, times: u64, moment: Moment) {
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some((skip, times, moment));
    }

    fn scripted(&self) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let (skip, times, moment) = (*armed)?;
        *armed = match (skip, times) {
            (0, 0 | 1) => None,
            (0, _) => Some((0, times - 1, moment)),
            _ => Some((skip - 1, times, moment)),
        };
        (skip == 0 && times > 0).then_some(Fault { moment, bits: 0 })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Changes the fraction of operations that fail from now on (0 ends the storm).
    pub fn set_rate(&self, rate: f64) {
        self.rate_ppm.store(to_ppm(rate), Ordering::SeqCst);
    }

    pub fn rate(&self) -> f64 {
        f64::from(self.rate_ppm.load(Ordering::SeqCst)) / PPM as f64
    }

    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            calls: self.calls.load(Ordering::SeqCst),
            before: self.before.load(Ordering::SeqCst),
            after: self.after.load(Ordering::SeqCst),
        }
    }

    /// Draws the next decision: `None` lets the operation through untouched.
    pub fn draw(&self) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(fault) = self.scripted() {
            return Some(fault);
        }
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let r = splitmix64(self.seed ^ splitmix64(n));
        if (r >> 32) % PPM >= u64::from(self.rate_ppm.load(Ordering::Relaxed)) {
            return None;
        }
        let bits = splitmix64(r);
        let moment = if bits & 4 == 0 {
            Moment::Before
        } else {
            Moment::After
        };
        Some(Fault { moment, bits })
    }

    fn count(&self, fault: Fault) {
        let counter = match fault.moment {
            Moment::Before => &self.before,
            Moment::After => &self.after,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn table_error(fault: Fault, op: &str) -> TableError {
    match fault.moment {
        Moment::Before if fault.throttled() => TableError::Throttled,
        Moment::Before => {
            TableError::Unavailable(format!("injected fault: {op} did not reach the table"))
        }
        Moment::After => {
            TableError::Unavailable(format!("injected fault: the answer to {op} was lost"))
        }
    }
}

fn queue_error(fault: Fault, queue: &str, op: &str) -> QueueError {
    match fault.moment {
        Moment::Before => {
            QueueError::Unavailable(format!("injected fault: {op} did not reach queue {queue}"))
        }
        Moment::After => QueueError::Unavailable(format!(
            "injected fault: the answer to {op} on queue {queue} was lost"
        )),
    }
}

/// A [`Table`] that fails a seeded fraction of its operations (see the module docs).
pub struct FaultyTable {
    inner: Arc<dyn Table>,
    faults: Arc<Faults>,
}

impl FaultyTable {
    pub fn new(inner: Arc<dyn Table>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }

    /// Runs `call` unless a before-fault strikes; an after-fault drops its answer.
    async fn guard<T>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = Result<T, TableError>>,
    ) -> Result<T, TableError> {
        let Some(fault) = self.faults.draw() else {
            return call.await;
        };
        self.faults.count(fault);
        if fault.moment == Moment::After {
            // Whatever the call did stays done; its caller only learns that it failed.
            let _ = call.await;
        }
        Err(table_error(fault, op))
    }
}

#[async_trait]
impl Table for FaultyTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.guard("GetItem", self.inner.get(key)).await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.guard("PutItem", self.inner.put(item, condition)).await
    }

    async fn put_or_current(
        &self,
        item: Item,
        condition: Condition,
    ) -> Result<PutOutcome, TableError> {
        self.guard("PutItem", self.inner.put_or_current(item, condition))
            .await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        self.guard("UpdateItem", self.inner.update(key, update, condition))
            .await
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        self.guard("DeleteItem", self.inner.delete(key, condition))
            .await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.guard("Query", self.inner.query(query)).await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> Result<(), TableError> {
        self.guard("TransactWriteItems", self.inner.transact_write(ops))
            .await
    }
}

/// A [`Queue`] that fails a seeded fraction of its operations (see the module docs).
pub struct FaultyQueue {
    inner: Arc<dyn Queue>,
    faults: Arc<Faults>,
}

impl FaultyQueue {
    pub fn new(inner: Arc<dyn Queue>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }

    async fn guard<T>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        let Some(fault) = self.faults.draw() else {
            return call.await;
        };
        self.faults.count(fault);
        if fault.moment == Moment::After {
            let _ = call.await;
        }
        Err(queue_error(fault, self.inner.name(), op))
    }
}

#[async_trait]
impl Queue for FaultyQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        self.guard("SendMessage", self.inner.send(message)).await
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        let Some(fault) = self.faults.draw() else {
            return self.inner.send_batch(messages).await;
        };
        self.faults.count(fault);
        if !fault.partial() {
            if fault.moment == Moment::After {
                let _ = self.inner.send_batch(messages).await;
            }
            return Err(queue_error(fault, self.inner.name(), "SendMessageBatch"));
        }
        // Some entries are sent, the others reported failed (as SQS answers).
        let kept = fault.kept(messages.len());
        let mut sent = Vec::new();
        let mut indexes = Vec::new();
        for (i, (message, keep)) in messages.into_iter().zip(&kept).enumerate() {
            if *keep {
                sent.push(message);
            } else {
                indexes.push(i);
            }
        }
        if !sent.is_empty() {
            self.inner.send_batch(sent).await?;
        }
        Err(QueueError::PartialBatch {
            failed: indexes.len(),
            indexes,
        })
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.guard("ReceiveMessage", self.inner.receive(max, visibility))
            .await
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.guard("DeleteMessage", self.inner.delete(receipt_handle))
            .await
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.guard(
            "ChangeMessageVisibility",
            self.inner.change_visibility(receipt_handle, visibility),
        )
        .await
    }
}

/// The same ports with every table and queue operation (dead-letter queues included)
/// going through `faults`.
pub fn inject(ports: crate::backend::Ports, faults: &Arc<Faults>) -> crate::backend::Ports {
    let faulty = |queue: Arc<dyn Queue>| -> Arc<dyn Queue> {
        Arc::new(FaultyQueue::new(queue, faults.clone()))
    };
    ports
        .map_table(|table| Arc::new(FaultyTable::new(table, faults.clone())))
        .map_queues(|_, queue| faulty(queue))
        .map_dead_letter_queues(|_, queue| faulty(queue))
}

// ---- Soak drivers ---------------------------------------------------------------------

/// A clock running `speed` times as fast as real time from where it stands, so a soak can
/// let leases, visibility timeouts and backoffs of many minutes pass in seconds once the
/// storm is over. Changing the speed never moves the time back.
#[derive(Debug)]
pub struct ScaledClock(std::sync::Mutex<(std::time::Instant, jiff::Timestamp, f64)>);

impl ScaledClock {
    pub fn new(speed: f64) -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new((
            std::time::Instant::now(),
            jiff::Timestamp::now(),
            speed,
        ))))
    }

    pub fn set_speed(&self, speed: f64) {
        let now = crate::ports::Clock::now(self);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = (std::time::Instant::now(), now, speed);
    }
}

impl crate::ports::Clock for ScaledClock {
    fn now(&self) -> jiff::Timestamp {
        let (real, at, speed) = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        let passed = jiff::SignedDuration::try_from_secs_f64(real.elapsed().as_secs_f64() * speed)
            .unwrap_or_default();
        at.checked_add(passed).unwrap_or(at)
    }
}

/// The books of a webhook soak, one line per update (named by its text): whether it was
/// stored once, published once, and under the event id of the message stored for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookBooks {
    pub stored_twice: usize,
    pub not_stored: usize,
    /// Published under more than one event id.
    pub published_twice: usize,
    pub not_published: usize,
    /// Stored and published once, but the event does not name the stored message.
    pub mismatched: usize,
}

impl WebhookBooks {
    /// `stored`: the stored messages (`text`, `id`, as [`crate::testing::stored_messages`]
    /// reads them); `published`: the event ids published per update text.
    pub fn tally(
        texts: &[String],
        stored: &[serde_json::Value],
        published: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    ) -> Self {
        let mut stored_ids: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for m in stored {
            stored_ids
                .entry(m["text"].as_str().unwrap_or_default())
                .or_default()
                .push(m["id"].as_str().unwrap_or_default());
        }
        let mut books = Self::default();
        for text in texts {
            let ids = stored_ids.get(text.as_str());
            let events = published.get(text);
            match ids.map(Vec::len) {
                None => books.not_stored += 1,
                Some(1) => {}
                Some(_) => books.stored_twice += 1,
            }
            match events.map(std::collections::BTreeSet::len) {
                None => books.not_published += 1,
                Some(1) => {}
                Some(_) => books.published_twice += 1,
            }
            if let (Some([id]), Some(events)) = (ids.map(Vec::as_slice), events)
                && events.len() == 1
                && !events.contains(&format!("evt_{id}"))
            {
                books.mismatched += 1;
            }
        }
        books
    }

    pub fn duplicates(&self) -> usize {
        self.stored_twice + self.published_twice
    }
}

/// What [`Redelivery::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Distinct items.
    pub sent: usize,
    pub acknowledged: usize,
    /// Every attempt, first deliveries included.
    pub attempts: u64,
    /// Attempts after a non-2xx answer or a transport failure.
    pub redeliveries: u64,
    /// Answers by status (0: no answer — refused connection, reset, timeout).
    pub statuses: std::collections::BTreeMap<u16, u64>,
}

/// Delivers `n` items from `concurrency` senders the way a provider redelivers a webhook:
/// every answer other than 2xx (or none) puts the item back for another attempt after a
/// short, jittered, growing backoff, until each one is acknowledged. A sender does not
/// wait for an item that is backing off: it takes the next one that is due.
pub struct Redelivery {
    n: usize,
    concurrency: usize,
    seed: u64,
    acknowledged: Arc<std::sync::atomic::AtomicUsize>,
}

type Due = std::cmp::Reverse<(std::time::Instant, usize, u32)>;

/// 10 ms doubling per attempt up to 500 ms, plus up to half of it again (seeded).
fn redelivery_backoff(seed: u64, item: usize, tries: u32) -> Duration {
    let base = 10u64.saturating_mul(1 << tries.min(6)).min(500);
    let jitter = splitmix64(seed ^ splitmix64(item as u64) ^ u64::from(tries)) % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

impl Redelivery {
    pub fn new(n: usize, concurrency: usize, seed: u64) -> Self {
        Self {
            n,
            concurrency: concurrency.max(1),
            seed,
            acknowledged: Arc::default(),
        }
    }

    /// How many items are acknowledged so far (for a watcher that acts mid-run).
    pub fn acknowledged(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.acknowledged.clone()
    }

    /// Runs until every item is acknowledged; `attempt(i)` delivers item `i` once and
    /// returns the answer's status (0 for none).
    pub async fn run<F, Fut>(&self, attempt: F) -> DeliveryStats
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = u16> + Send,
    {
        use std::collections::BinaryHeap;
        use std::sync::Mutex;
        use std::time::Instant;
        let start = Instant::now();
        let due: Arc<Mutex<BinaryHeap<Due>>> = Arc::new(Mutex::new(
            (0..self.n)
                .map(|i| std::cmp::Reverse((start, i, 0)))
                .collect(),
        ));
        let stats = Arc::new(Mutex::new(DeliveryStats {
            sent: self.n,
            ..DeliveryStats::default()
        }));
        let attempt = Arc::new(attempt);
        let (n, seed) = (self.n, self.seed);
        let mut senders = Vec::new();
        for _ in 0..self.concurrency {
            let (due, stats, attempt, done) = (
                due.clone(),
                stats.clone(),
                attempt.clone(),
                self.acknowledged.clone(),
            );
            senders.push(tokio::spawn(async move {
                loop {
                    if done.load(Ordering::SeqCst) >= n {
                        return;
                    }
                    let next = {
                        let mut heap = due.lock().unwrap_or_else(|p| p.into_inner());
                        match heap.peek() {
                            Some(std::cmp::Reverse((at, ..))) if *at <= Instant::now() => {
                                heap.pop().map(|std::cmp::Reverse(d)| d)
                            }
                            _ => None,
                        }
                    };
                    let Some((_, item, tries)) = next else {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    let status = attempt(item).await;
                    let acknowledged = (200..300).contains(&status);
                    {
                        let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                        stats.attempts += 1;
                        stats.redeliveries += u64::from(tries > 0);
                        *stats.statuses.entry(status).or_default() += 1;
                        stats.acknowledged += usize::from(acknowledged);
                    }
                    if acknowledged {
                        done.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let at = Instant::now() + redelivery_backoff(seed, item, tries);
                        due.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(std::cmp::Reverse((at, item, tries + 1)));
                    }
                }
            }));
        }
        for sender in senders {
            let _ = sender.await;
        }
        stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::adapters::embedded::{EmbeddedQueues, EmbeddedTable, QueueSpec};
    use crate::ports::SystemClock;
    use crate::ports::table::AttrValue;

    fn item(sk: &str) -> Item {
        let mut item = Key::new("P", sk).to_item();
        item.insert("v".into(), AttrValue::n(1));
        item
    }

    #[test]
    fn the_same_seed_draws_the_same_faults_and_the_rate_holds() {
        let draws = |seed| {
            let faults = Faults::new(seed, 0.1);
            (0..10_000).map(|_| faults.draw()).collect::<Vec<_>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7));
        assert_ne!(first, draws(8));
        let failed = first.iter().flatten().count();
        assert!((800..1200).contains(&failed), "{failed} of 10000");
        let after = first
            .iter()
            .flatten()
            .filter(|f| f.moment == Moment::After)
            .count();
        assert!(after > failed / 3 && after < failed * 2 / 3, "{after}");
    }

    #[tokio::test]
    async fn an_after_fault_writes_and_reports_a_failure_and_a_before_fault_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Table> =
            Arc::new(EmbeddedTable::open(&dir.path().join("t.redb")).unwrap());
        let faults = Faults::new(1, 1.0);
        let table = FaultyTable::new(inner.clone(), faults.clone());
        for i in 0..40 {
            let sk = format!("S{i}");
            let before = faults.counts();
            let result = table.put(item(&sk), None).await;
            assert!(result.as_ref().is_err_and(TableError::is_retryable));
            let written = inner.get(&Key::new("P", &sk)).await.unwrap().is_some();
            let now = faults.counts();
            assert_eq!(now.injected(), before.injected() + 1);
            assert_eq!(written, now.after == before.after + 1, "put {i}");
        }
        let counts = faults.counts();
        let stored = inner
            .query(Query::partition("P"))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(stored as u64, counts.after);
        assert!(counts.before > 0 && counts.after > 0);
        faults.set_rate(0.0);
        table.put(item("ok"), None).await.unwrap();
    }

    #[test]
    fn an_armed_fault_strikes_after_the_skipped_operations_however_low_the_rate() {
        let faults = Faults::new(1, 0.0);
        faults.arm(2, 2, Moment::After);
        let drawn: Vec<_> = (0..6).map(|_| faults.draw().map(|f| f.moment)).collect();
        assert_eq!(
            drawn,
            [
                None,
                None,
                Some(Moment::After),
                Some(Moment::After),
                None,
                None
            ]
        );
    }

    #[tokio::test]
    async fn a_partial_batch_sends_the_entries_it_does_not_report() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            EmbeddedQueues::open(&dir.path().join("q.redb"), Arc::new(SystemClock)).unwrap();
        let inner: Arc<dyn Queue> = Arc::new(store.queue(QueueSpec::new("q")).unwrap());
        let faults = Faults::new(3, 1.0);
        let queue = FaultyQueue::new(inner.clone(), faults.clone());
        let mut expected = 0;
        for round in 0..30 {
            let batch: Vec<_> = (0..4)
                .map(|i| OutgoingMessage::new(format!("{round}-{i}")))
                .collect();
            match queue.send_batch(batch).await {
                Err(QueueError::PartialBatch { failed, indexes }) => {
                    assert_eq!(failed, indexes.len());
                    assert!(failed >= 1);
                    expected += 4 - failed;
                }
                Err(QueueError::Unavailable(reason)) if reason.contains("lost") => expected += 4,
                Err(QueueError::Unavailable(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        let received = crate::testing::drain(inner.as_ref()).await.len();
        assert_eq!(received, expected);
    }
}
