//! A futex lock whose lock and unlock can happen in different calls (the
//! `fork()` handlers lock in "prepare" and unlock in "parent"/"child"), and
//! which never allocates.

use crate::sys;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

pub struct Locked<T> {
    state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached while `state` is held.
unsafe impl<T: Send> Sync for Locked<T> {}

impl<T> Locked<T> {
    pub const fn new(v: T) -> Self {
        Locked {
            state: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(v),
        }
    }

    pub fn lock_raw(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            sys::futex_wait(&self.state, CONTENDED, 50_000_000);
        }
    }

    pub fn try_lock_raw(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// # Safety
    /// The caller must hold the lock.
    pub unsafe fn unlock_raw(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            sys::futex_wake_all_u32(&self.state);
        }
    }

    /// Forgets any holder: only for a `fork()` child, where the holder (if
    /// any other thread) no longer exists.
    pub fn reset_in_child(&self) {
        self.state.store(UNLOCKED, Ordering::Release);
    }

    /// Runs `f` with the lock held.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock_raw();
        struct Unlock<'a, T>(&'a Locked<T>);
        impl<T> Drop for Unlock<'_, T> {
            fn drop(&mut self) {
                // SAFETY: locked above, by this thread.
                unsafe { self.0.unlock_raw() }
            }
        }
        let _u = Unlock(self);
        // SAFETY: the lock is held for the whole borrow.
        f(unsafe { &mut *self.data.get() })
    }

    /// Like `with`, but gives up instead of waiting.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if !self.try_lock_raw() {
            return None;
        }
        // SAFETY: just acquired; released right after.
        let r = f(unsafe { &mut *self.data.get() });
        unsafe { self.unlock_raw() };
        Some(r)
    }

    /// # Safety
    /// The caller must hold the lock (taken with `lock_raw`).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_locked(&self) -> &mut T {
        &mut *self.data.get()
    }
}
