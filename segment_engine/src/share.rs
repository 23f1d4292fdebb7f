//! A parallel map in which the calling thread does the work itself and the pool only helps.
//!
//! `rayon`'s `par_iter` from a thread outside the pool (the Python thread) hands the whole job
//! to the pool and sleeps until the last part is done. On a shared machine a pool thread may be
//! descheduled for a whole time slice while holding a part, and the call then waits for it.
//! Here the caller takes items one at a time from a shared counter and so does every pool
//! thread that happens to start before the items run out; the caller waits only for the items
//! already taken by a helper, never for a helper that has not started (a late helper finds the
//! job closed and returns without touching it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A job's item function, with its lifetime erased: only dereferenced by a helper registered
/// in `Shared::state` while the job is open, and the caller waits for every such helper.
struct Job(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` and only used while the caller keeps it alive (see `Job`).
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

struct Shared {
    next: AtomicUsize,
    n: usize,
    job: Job,
    /// (helpers working, job closed)
    state: Mutex<(usize, bool)>,
    idle: Condvar,
    panicked: AtomicBool,
}

impl Shared {
    fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            f(i);
        }
    }

    fn helper(&self) {
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.1 {
                return;
            }
            st.0 += 1;
        }
        // SAFETY: registered above while the job was open; the caller does not return before
        // the count drops back to zero.
        let f = unsafe { &*self.job.0 };
        if catch_unwind(AssertUnwindSafe(|| self.run(f))).is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 -= 1;
        if st.0 == 0 {
            self.idle.notify_all();
        }
    }

    /// Closes the job to helpers not yet started and waits for the ones working.
    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = true;
        while st.0 > 0 {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Closes the job even when the caller's own item panics, so no helper outlives the borrow.
struct CloseOnDrop<'a>(&'a Shared);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// `(0..n).map(f)`, with the calling thread and up to `helpers` pool threads taking items.
pub fn map<T: Send>(n: usize, helpers: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let item = |i: usize| {
        let v = f(i);
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    };
    let item: &(dyn Fn(usize) + Sync) = &item;
    // SAFETY: only the lifetime is erased (same fat pointer); see `Job`.
    let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(item) };
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        n,
        job: Job(erased),
        state: Mutex::new((0, false)),
        idle: Condvar::new(),
        panicked: AtomicBool::new(false),
    });
    for _ in 0..helpers.min(n.saturating_sub(1)) {
        let s = shared.clone();
        rayon::spawn(move || s.helper());
    }
    {
        let _close = CloseOnDrop(&shared);
        shared.run(item);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_whatever_the_helpers() {
        for helpers in [0, 1, 3] {
            for n in [0, 1, 2, 100, 1000] {
                let calls = AtomicUsize::new(0);
                let out = map(n, helpers, |i| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    i * 2
                });
                assert_eq!(out, (0..n).map(|i| i * 2).collect::<Vec<_>>());
                assert_eq!(calls.load(Ordering::Relaxed), n);
            }
        }
    }

    #[test]
    fn a_panicking_item_reaches_the_caller() {
        let r = catch_unwind(|| map(64, 1, |i| if i == 40 { panic!("item 40") } else { i }));
        assert!(r.is_err());
    }
}
