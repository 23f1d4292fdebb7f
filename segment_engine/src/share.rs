//! A parallel map in which the calling thread does the work itself and helper threads join
//! only when the work left is long enough to repay waking them, and a core is free for them.
//!
//! Waking a sleeping thread costs 50-90 us on this kind of machine (the idle virtual CPU has
//! to be scheduled again), a whole call's worth for a tree of a million ids. So the caller
//! starts alone and times its first items; once the items left would take it longer than
//! [`WAKE_WORTH`], it wakes the helpers of a small pool of its own (persistent threads that
//! sleep between jobs, never spinning). A woken helper first looks at the machine: when more
//! threads want to run than there are cores (other programs busy), it goes back to sleep rather
//! than take a core from the caller, which would then wait for the scheduler. The scheduler
//! often wakes the helper on the caller's own core, where it would only take turns with the
//! caller: it then moves itself to another core. Caller and helpers take items from a shared
//! counter, one at a time while the caller is alone, then a few at a time (about [`GRAB`] of
//! work); the caller waits only for the items already taken by a helper, never for a helper
//! that has not started (a late helper finds the job closed and returns without touching it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Helpers are woken when the items left would keep the caller busy this long: about twice
/// what waking one takes, so that a helper arriving late still does a share worth its wake-up.
pub const WAKE_WORTH: Duration = Duration::from_micros(100);

/// About how much work a thread takes from the shared counter at a time once helpers are woken.
const GRAB: Duration = Duration::from_micros(10);

/// How a map uses helper threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Helpers join when the work left repays waking them and a core is free (see the module).
    Auto,
    /// Up to this many helpers are woken before the first item, whatever the work and the
    /// machine, and the caller waits a little for them to start: every item may then go to any
    /// thread. For tests, which must see the threaded path on small inputs.
    Split(usize),
}

/// A job's item function, with its lifetime erased: only dereferenced by a helper registered
/// in `Shared::state` while the job is open, and the caller waits for every such helper.
struct Job(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` and only used while the caller keeps it alive (see `Job`).
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

#[derive(Default)]
struct State {
    /// Helpers working now.
    working: usize,
    /// Helpers that have joined so far.
    joined: usize,
    /// No helper may join any more.
    closed: bool,
}

struct Shared {
    next: AtomicUsize,
    /// Items taken at a time: one while the caller is alone, then enough for about [`GRAB`]
    /// of work, so that the threads do not pass the counter's cache line back and forth for
    /// every short item.
    chunk: AtomicUsize,
    n: usize,
    job: Job,
    /// Helpers skip the look at the machine (`Threads::Split`).
    forced: bool,
    state: Mutex<State>,
    /// Signalled when the last working helper leaves.
    idle: Condvar,
    panicked: AtomicBool,
    /// The core the caller was on when it woke the helpers (-1: unknown).
    caller_cpu: AtomicI32,
    /// Under `Threads::Split`, set by the caller once its helpers have joined: they wait for it
    /// (spinning, the wait being short and for tests), so that every thread starts together.
    go: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Takes and runs items, `chunk` at a time, until none is left; returns how many this
    /// thread ran.
    fn run(&self, f: &(dyn Fn(usize) + Sync)) -> usize {
        let mut mine = 0;
        loop {
            let chunk = self.chunk.load(Ordering::Relaxed);
            let i = self.next.fetch_add(chunk, Ordering::Relaxed);
            if i >= self.n {
                return mine;
            }
            for j in i..(i + chunk).min(self.n) {
                f(j);
                mine += 1;
            }
        }
    }

    fn helper(&self) {
        if self.next.load(Ordering::Relaxed) >= self.n || (!self.forced && !core_free()) {
            return;
        }
        // Woken onto the caller's core, the helper would only take turns with the caller.
        let _moved = if self.forced {
            None
        } else {
            cpu::Away::from(self.caller_cpu.load(Ordering::Relaxed))
        };
        {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            st.working += 1;
            st.joined += 1;
        }
        if self.forced {
            while !self.go.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        }
        // SAFETY: registered above while the job was open; the caller does not return before
        // the count drops back to zero.
        let f = unsafe { &*self.job.0 };
        if catch_unwind(AssertUnwindSafe(|| self.run(f))).is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
        let mut st = lock(&self.state);
        st.working -= 1;
        if st.working == 0 {
            self.idle.notify_all();
        }
    }

    /// Closes the job to helpers not yet started and waits for the ones working.
    fn close(&self) {
        self.go.store(true, Ordering::Release);
        let mut st = lock(&self.state);
        st.closed = true;
        while st.working > 0 {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until `helpers` helpers have joined, or `limit` has passed (a helper busy with
    /// another caller's job may not come in time). It yields rather than sleeps: a caller woken
    /// by a helper would be put on the helper's core, and the two would not run side by side.
    fn await_helpers(&self, helpers: usize, limit: Duration) {
        let start = Instant::now();
        while lock(&self.state).joined < helpers && start.elapsed() < limit {
            std::thread::yield_now();
        }
    }
}

/// Closes the job even when the caller's own item panics, so no helper outlives the borrow.
struct CloseOnDrop<'a>(&'a Arc<Shared>);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
        pool().withdraw(self.0);
    }
}

/// Whether a core is free for one more thread: the threads running or waiting to run right now
/// (`/proc/loadavg`, which counts this one) are no more than the cores. Where that cannot be
/// read, a core is taken to be free.
fn core_free() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/loadavg") else {
        return true;
    };
    let running = text
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').next())
        .and_then(|r| r.parse::<usize>().ok());
    running.is_none_or(|r| r <= cores())
}

/// Which core a thread is on, and moving a helper off the caller's core (Linux; elsewhere
/// nothing is known and nothing moves).
mod cpu {
    /// The core this thread is on, or -1.
    pub fn current() -> i32 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: no arguments; returns a core number or -1.
            unsafe { libc::sched_getcpu() }
        }
        #[cfg(not(target_os = "linux"))]
        {
            -1
        }
    }

    /// This thread's cores as they were before it moved off the caller's core; dropping it
    /// gives them back.
    pub struct Away {
        #[cfg(target_os = "linux")]
        before: libc::cpu_set_t,
    }

    impl Away {
        /// When this thread is on core `caller` (the scheduler puts a woken thread next to its
        /// waker when it can), moves it to its other cores: the call returns on one of them.
        pub fn from(caller: i32) -> Option<Away> {
            #[cfg(target_os = "linux")]
            {
                if caller < 0 || current() != caller {
                    return None;
                }
                // SAFETY: `cpu_set_t` is plain data, zero is an empty set; the calls read and write
                // sets of the size given; `caller` is a valid core index (non-negative and below
                // CPU_SETSIZE, as sched_getcpu returned it).
                unsafe {
                    let size = std::mem::size_of::<libc::cpu_set_t>();
                    let mut before: libc::cpu_set_t = std::mem::zeroed();
                    if libc::sched_getaffinity(0, size, &mut before) != 0 {
                        return None;
                    }
                    let mut others = before;
                    libc::CPU_CLR(caller as usize, &mut others);
                    if libc::CPU_COUNT(&others) == 0 || libc::sched_setaffinity(0, size, &others) != 0 {
                        return None;
                    }
                    Some(Away { before })
                }
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = caller;
                None
            }
        }
    }

    impl Drop for Away {
        fn drop(&mut self) {
            #[cfg(target_os = "linux")]
            // SAFETY: gives back the set read in `from`, of its own size.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.before);
            }
        }
    }
}

fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The helper threads: one fewer than the cores, started on first use, then asleep between
/// jobs. Jobs wait in a queue with the number of helpers each still wants (several Python
/// threads may evaluate at once); a helper takes the oldest.
struct Pool {
    post: Mutex<Post>,
    wake: Condvar,
}

#[derive(Default)]
struct Post {
    /// Jobs wanting helpers, oldest first, with how many more each wants.
    jobs: Vec<(Arc<Shared>, usize)>,
    /// Helper threads started.
    started: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        post: Mutex::new(Post::default()),
        wake: Condvar::new(),
    })
}

impl Pool {
    /// Posts `job` for up to `helpers` helper threads (started here if there are fewer);
    /// returns how many threads it asked for.
    fn post(&'static self, job: &Arc<Shared>, helpers: usize) -> usize {
        let mut p = lock(&self.post);
        while p.started < helpers {
            let spawned = std::thread::Builder::new()
                .name("segment-helper".into())
                .spawn(move || self.serve());
            if spawned.is_err() {
                break;
            }
            p.started += 1;
        }
        let helpers = helpers.min(p.started);
        if helpers == 0 {
            return 0;
        }
        p.jobs.push((job.clone(), helpers));
        drop(p);
        if helpers == 1 {
            self.wake.notify_one();
        } else {
            self.wake.notify_all();
        }
        helpers
    }

    /// Takes `job` out of the queue if it is still there (it is closed: no helper may join).
    fn withdraw(&self, job: &Arc<Shared>) {
        lock(&self.post).jobs.retain(|(j, _)| !Arc::ptr_eq(j, job));
    }

    /// A helper thread: sleeps until a job wants a helper, helps, and sleeps again.
    fn serve(&self) {
        loop {
            let job = {
                let mut p = lock(&self.post);
                loop {
                    if let Some((job, wanted)) = p.jobs.first_mut() {
                        let job = job.clone();
                        *wanted -= 1;
                        if *wanted == 0 {
                            p.jobs.remove(0);
                        }
                        break job;
                    }
                    p = self.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            };
            job.helper();
        }
    }
}

/// `(0..n).map(f)`: the calling thread takes every item it can, helpers join as `threads` says.
pub fn map<T: Send>(n: usize, threads: Threads, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let item = |i: usize| {
        let v = f(i);
        *lock(&slots[i]) = Some(v);
    };
    let item: &(dyn Fn(usize) + Sync) = &item;
    // SAFETY: only the lifetime is erased (same fat pointer); see `Job`.
    let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(item) };
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        chunk: AtomicUsize::new(1),
        n,
        job: Job(erased),
        forced: matches!(threads, Threads::Split(_)),
        state: Mutex::new(State::default()),
        idle: Condvar::new(),
        panicked: AtomicBool::new(false),
        caller_cpu: AtomicI32::new(-1),
        go: AtomicBool::new(false),
    });
    {
        let _close = CloseOnDrop(&shared);
        match threads {
            Threads::Split(helpers) => {
                let coming = pool().post(&shared, helpers.min(n.saturating_sub(1)));
                shared.await_helpers(coming, Duration::from_millis(20));
                shared.go.store(true, Ordering::Release);
                shared.run(item);
            }
            Threads::Auto => run_then_wake(&shared, item),
        }
    }
    assert!(!shared.panicked.load(Ordering::Relaxed), "a helper thread panicked");
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item is computed before the job closes")
        })
        .collect()
}

/// The caller's part under `Threads::Auto`: items one at a time, timing them until the items
/// left are worth waking the helpers for.
fn run_then_wake(shared: &Arc<Shared>, item: &(dyn Fn(usize) + Sync)) {
    let helpers = cores() - 1;
    let start = Instant::now();
    let mut mine = 0u32;
    if helpers > 0 {
        loop {
            let i = shared.next.fetch_add(1, Ordering::Relaxed);
            if i >= shared.n {
                return;
            }
            item(i);
            mine += 1;
            let left = shared.n.saturating_sub(i + 1);
            let spent = start.elapsed();
            if left > 0 && spent * left.min(1 << 20) as u32 >= WAKE_WORTH * mine {
                let per_item = spent / mine;
                let chunk = (GRAB.as_nanos() / per_item.as_nanos().max(1)).clamp(1, 16) as usize;
                shared.chunk.store(chunk, Ordering::Relaxed);
                shared.caller_cpu.store(cpu::current(), Ordering::Relaxed);
                pool().post(shared, helpers.min(left));
                break;
            }
        }
    }
    shared.run(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_whatever_the_helpers() {
        for threads in [Threads::Auto, Threads::Split(0), Threads::Split(1), Threads::Split(3)] {
            for n in [0, 1, 2, 100, 1000] {
                let calls = AtomicUsize::new(0);
                let out = map(n, threads, |i| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    i * 2
                });
                assert_eq!(out, (0..n).map(|i| i * 2).collect::<Vec<_>>());
                assert_eq!(calls.load(Ordering::Relaxed), n);
            }
        }
    }

    #[test]
    fn slow_items_wake_the_helpers_and_still_come_back_once_in_order() {
        // Items of about 20 us each: the caller's estimate of the work left passes `WAKE_WORTH`
        // after the first one. Whether a helper runs depends on the machine; the result may not.
        for _ in 0..5 {
            let calls = AtomicUsize::new(0);
            let out = map(64, Threads::Auto, |i| {
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(20) {
                    std::hint::spin_loop();
                }
                calls.fetch_add(1, Ordering::Relaxed);
                i + 1
            });
            assert_eq!(out, (1..=64).collect::<Vec<_>>());
            assert_eq!(calls.load(Ordering::Relaxed), 64);
        }
    }

    #[test]
    fn concurrent_callers_share_the_pool_without_losing_items() {
        std::thread::scope(|s| {
            for t in 0..4usize {
                s.spawn(move || {
                    for round in 0..20usize {
                        let out = map(200, Threads::Split(2), |i| i * t + round);
                        assert_eq!(out, (0..200).map(|i| i * t + round).collect::<Vec<_>>());
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_item_reaches_the_caller() {
        for threads in [Threads::Auto, Threads::Split(1)] {
            let r = catch_unwind(|| map(64, threads, |i| if i == 40 { panic!("item 40") } else { i }));
            assert!(r.is_err());
        }
    }
}
