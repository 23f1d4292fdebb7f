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
//! would often wake a helper on the caller's own core, where it would only take turns with the
//! caller: the helpers are kept off the core of the caller that wakes them (their affinity
//! follows it, set only when it changes). Caller and helpers take items from a shared
//! counter, one at a time while the caller is alone, then a few at a time (about [`GRAB`] of
//! work); the caller waits only for the items already taken by a helper (spinning a little,
//! then asleep), never for a helper that has not started (a late helper finds the job closed
//! and returns without touching it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Helpers are woken when the items left would keep the caller busy this long: about twice
/// what waking one takes, so that a helper arriving late still does a share worth its wake-up.
pub const WAKE_WORTH: Duration = Duration::from_micros(100);

/// About how much work a thread takes from the shared counter at a time once helpers are woken.
const GRAB: Duration = Duration::from_micros(10);

/// How long a caller done with its items spins for the helpers' last ones before it sleeps.
const CLOSE_SPIN: Duration = Duration::from_micros(40);

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
    /// Helpers working now (`State::working`, readable without the lock: the caller spins
    /// on it for a while before it sleeps).
    active: AtomicUsize,
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
        {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            st.working += 1;
            st.joined += 1;
            self.active.fetch_add(1, Ordering::Relaxed);
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
        self.active.fetch_sub(1, Ordering::Release);
        if st.working == 0 {
            self.idle.notify_all();
        }
    }

    /// Closes the job to helpers not yet started and waits for the ones working: spinning for
    /// up to [`CLOSE_SPIN`] (a helper has at most one turn of items left, about [`GRAB`]), then
    /// asleep (a helper descheduled in the middle of its turn).
    fn close(&self) {
        self.go.store(true, Ordering::Release);
        if !std::mem::replace(&mut lock(&self.state).closed, true) {
            let start = Instant::now();
            while self.active.load(Ordering::Acquire) > 0 && start.elapsed() < CLOSE_SPIN {
                std::hint::spin_loop();
            }
        }
        let mut st = lock(&self.state);
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
/// (`/proc/loadavg`, which counts this one) are no more than the machine's cores. Where that
/// cannot be read, a core is taken to be free. The figure is the whole machine's, also inside a
/// container, so it is held against the machine's online cores, not the ones this process may use
/// (a container of 4 on a busy 64-core host would otherwise never wake a helper).
fn core_free() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/loadavg") else {
        return true;
    };
    let running = text
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').next())
        .and_then(|r| r.parse::<usize>().ok());
    running.is_none_or(|r| r <= machine_cores())
}

/// The machine's online cores (what `/proc/loadavg` counts runnable threads against).
fn machine_cores() -> usize {
    static ONLINE: OnceLock<usize> = OnceLock::new();
    *ONLINE.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sysconf reads a system value; it takes no pointers.
            let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
            if online > 0 {
                return online as usize;
            }
        }
        cores()
    })
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

    /// This thread's id, or -1.
    pub fn tid() -> i32 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: no arguments.
            unsafe { libc::gettid() }
        }
        #[cfg(not(target_os = "linux"))]
        {
            -1
        }
    }

    /// Restricts threads `tids` to the calling thread's cores other than `cpu`; `false` when
    /// there is no other core or it cannot be done.
    pub fn keep_off(tids: &[i32], cpu: i32) -> bool {
        #[cfg(target_os = "linux")]
        {
            if cpu < 0 || tids.contains(&-1) {
                return false;
            }
            // SAFETY: `cpu_set_t` is plain data, zero is an empty set; the calls read and write
            // sets of the size given; `cpu` is a core index sched_getcpu returned (below
            // CPU_SETSIZE).
            unsafe {
                let size = std::mem::size_of::<libc::cpu_set_t>();
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, size, &mut set) != 0 {
                    return false;
                }
                libc::CPU_CLR(cpu as usize, &mut set);
                if libc::CPU_COUNT(&set) == 0 {
                    return false;
                }
                tids.iter().all(|&t| libc::sched_setaffinity(t, size, &set) == 0)
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (tids, cpu);
            false
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
    /// Their thread ids, as they start.
    tids: Vec<i32>,
    /// The core the helpers are kept off (the last caller's), or -1.
    away: i32,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        post: Mutex::new(Post {
            away: -1,
            ..Post::default()
        }),
        wake: Condvar::new(),
    })
}

impl Pool {
    /// Posts `job` for up to `helpers` helper threads (started here if there are fewer);
    /// returns how many threads it asked for.
    fn post(&'static self, job: &Arc<Shared>, helpers: usize) -> usize {
        let mut p = lock(&self.post);
        if !job.forced {
            // The scheduler puts a woken thread on its waker's core when it can, where the
            // helper would only take turns with the caller: helpers are kept off that core.
            let cpu = cpu::current();
            if cpu != p.away && p.tids.len() == p.started {
                p.away = if cpu::keep_off(&p.tids, cpu) { cpu } else { -1 };
            }
        }
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
        {
            let mut p = lock(&self.post);
            let tid = cpu::tid();
            p.tids.push(tid);
            if p.away >= 0 {
                cpu::keep_off(&[tid], p.away);
            }
        }
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
        active: AtomicUsize::new(0),
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
