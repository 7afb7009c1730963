//! Which images of a `memscope-cli run` list their blocks one by one.
//!
//! Every image lists up to `MEMSCOPE_MAX_RECORDS` blocks of its own, and
//! under `run` a command of many processes repeats the same executables:
//! a shell loop's 200 `ls` list 200 times the same ~240 blocks, most of
//! what its 1,004 snapshots held (25 of 41 MB). Their totals, call sites
//! and lifetimes stay whole in every snapshot; what is kept of the lists
//! is what a reader drills into: the run's root process, the first
//! [`FIRST`] images of each executable, and every image that is the
//! heaviest of its executable so far (the highest peak, or the most bytes
//! allocated: what the summary and the report lead with). The others list
//! none: their `tool.max_records` is 0 and `summary.records_omitted`
//! counts the blocks left out, as for any image past its cap. A user who
//! sets `MEMSCOPE_MAX_RECORDS` gets that many for every image.
//!
//! Each image decides as it ends, before it builds its snapshot, from a
//! table `run` keeps beside its handoff socket ([`table_path`]): per
//! executable, how many images ended and the heaviest peak and bytes so
//! far. `run` used to decide as the snapshots arrived and cut the lists
//! out of the JSON, so every image built a list that was mostly thrown
//! away (the shell loop under `run`: 1.81x → 1.71x wall, 2.15x → 1.99x
//! CPU with no lists at all); asking `run` over the socket instead made
//! every image wait for run's answer. The table is a small file, read and
//! written under `flock` with `pread`/`pwrite` (never mapped: a file cut
//! short under a mapping is a `SIGBUS` in the program); an image that
//! cannot use it, or waits ~10 ms for its lock, keeps its list.

use std::ffi::CStr;

/// Images of each executable that always keep their lists.
pub const FIRST: u64 = 3;
/// Executables the table tells apart (more list everything).
const SLOTS: u64 = 1024;
/// One slot: the executable's hash (0: free), images, peak, bytes (u64 LE).
const SLOT: usize = 32;
/// Tries for the table's lock, 50 µs apart.
const LOCK_TRIES: u32 = 200;
/// The table's size: a file of any other size is not used.
pub const TABLE_BYTES: u64 = SLOTS * SLOT as u64;

/// The table beside run's handoff socket `socket`.
pub fn table_path(socket: &str) -> String {
    format!("{socket}.lists")
}

/// Makes the table for a run (empty: every slot free), owner-only.
pub fn create(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.set_len(TABLE_BYTES)
}

/// What an image weighs: its peak, and the bytes it allocated (a fork
/// child's since the fork, with no peak of its own: its counters go on from
/// its parent's, which grow along a shell loop).
#[derive(Clone, Copy, Debug)]
pub struct Weight {
    pub peak: u64,
    pub bytes: u64,
}

/// Whether the image of executable `exe` lists its blocks: notes it in the
/// table at `table` and decides as the policy above says. True whenever the
/// table cannot be used.
pub fn lists(table: &CStr, exe: &str, root: bool, w: Weight) -> bool {
    // SAFETY: a path from a CStr; the descriptor is this function's own
    // and closed before it returns (which also releases the lock).
    let fd = unsafe { libc::open(table.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
    if fd < 0 {
        return true;
    }
    let decided = note(fd, exe, w).map(|(images, heaviest)| root || images <= FIRST || heaviest);
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    decided.unwrap_or(true)
}

/// Counts the image in its executable's slot: (images so far with it,
/// whether it is the heaviest so far).
fn note(fd: i32, exe: &str, w: Weight) -> Option<(u64, bool)> {
    // SAFETY: fstat into a zeroed struct; flock on our descriptor.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_size as u64 != TABLE_BYTES {
            return None;
        }
        // Never waits long: an image stopped (or a fork child of one
        // that inherited the descriptor) while holding the lock must not
        // hold up every other image's end. Past ~10 ms, list.
        let mut tries = 0;
        while libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 {
            let e = *libc::__errno_location();
            tries += 1;
            if (e != libc::EWOULDBLOCK && e != libc::EINTR) || tries > LOCK_TRIES {
                return None;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
    let key = hash(exe.as_bytes()) | 1;
    let home = key % SLOTS;
    for probe in 0..SLOTS {
        let at = ((home + probe) % SLOTS) * SLOT as u64;
        let mut slot = [0u8; SLOT];
        if !transfer(fd, &mut slot, at, false) {
            return None;
        }
        let word = |i: usize| u64::from_le_bytes(slot[i * 8..i * 8 + 8].try_into().unwrap());
        let (k, images, peak, bytes) = (word(0), word(1), word(2), word(3));
        if k != key && k != 0 {
            continue;
        }
        let heaviest = w.peak > peak || w.bytes > bytes;
        for (i, v) in [key, images + 1, peak.max(w.peak), bytes.max(w.bytes)]
            .into_iter()
            .enumerate()
        {
            slot[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        return transfer(fd, &mut slot, at, true).then_some((images + 1, heaviest));
    }
    None
}

/// Reads or writes one whole slot at `at`.
fn transfer(fd: i32, slot: &mut [u8; SLOT], at: u64, write: bool) -> bool {
    let p = slot.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: `slot` is SLOT bytes, ours for the call.
    let n = unsafe {
        if write {
            libc::pwrite(fd, p, SLOT, at as libc::off_t)
        } else {
            libc::pread(fd, p, SLOT, at as libc::off_t)
        }
    };
    n == SLOT as isize
}

/// FNV-1a over the executable's path.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> (std::path::PathBuf, std::ffi::CString) {
        let p = std::env::temp_dir().join(format!("memscope-listing-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        create(&p).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        (p, c)
    }

    fn peak(peak: u64) -> Weight {
        Weight { peak, bytes: 0 }
    }

    #[test]
    fn the_root_the_first_images_and_the_heaviest_so_far_keep_their_lists() {
        let (path, t) = table("policy");
        let kept: Vec<bool> = [10, 10, 10, 10, 9, 11, 11, 5]
            .iter()
            .map(|&p| lists(&t, "/bin/ls", false, peak(p)))
            .collect();
        assert_eq!(kept, [true, true, true, false, false, true, false, false]);
        // Allocating the most so far also counts as heaviest.
        let heavy = Weight { peak: 1, bytes: 100 };
        assert!(lists(&t, "/bin/ls", false, heavy));
        assert!(!lists(&t, "/bin/ls", false, heavy));
        // Another executable counts on its own; the root always lists.
        for _ in 0..FIRST {
            assert!(lists(&t, "/bin/grep", false, peak(1)));
        }
        assert!(!lists(&t, "/bin/grep", false, peak(1)));
        assert!(lists(&t, "/bin/ls", true, peak(0)));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn images_that_end_together_are_each_counted_once() {
        let (path, t) = table("together");
        let kept: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..50).filter(|_| lists(&t, "/bin/sh", false, peak(7))).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        // The first three, and the first to reach peak 7 is among them.
        assert_eq!(kept, FIRST as usize);
        let bytes = std::fs::read(&path).unwrap();
        let slot = (hash(b"/bin/sh") | 1) % SLOTS;
        let images = &bytes[slot as usize * SLOT + 8..slot as usize * SLOT + 16];
        assert_eq!(u64::from_le_bytes(images.try_into().unwrap()), 400);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_image_does_not_wait_long_for_a_lock_another_holds() {
        let (path, t) = table("held");
        let holder = std::fs::File::open(&path).unwrap();
        // SAFETY: flock on a descriptor `holder` owns.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&holder), libc::LOCK_EX) },
            0
        );
        let started = std::time::Instant::now();
        assert!(
            (0..4).all(|_| lists(&t, "/bin/ls", false, peak(1))),
            "lists when it cannot decide"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        drop(holder);
        let kept: Vec<bool> = (0..4).map(|_| lists(&t, "/bin/ls", false, peak(1))).collect();
        assert_eq!(kept, [true, true, true, false], "nothing was counted while it was held");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn without_a_usable_table_every_image_lists() {
        let missing = std::ffi::CString::new("/nonexistent/memscope.lists").unwrap();
        assert!((0..10).all(|_| lists(&missing, "/bin/ls", false, peak(1))));
        let (path, t) = table("short");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert!((0..10).all(|_| lists(&t, "/bin/ls", false, peak(1))));
        std::fs::remove_file(path).unwrap();
    }
}
