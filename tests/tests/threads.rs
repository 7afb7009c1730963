//! Eight threads, millions of events, every block freed by another thread.

use memscope_tests::*;

const THREADS: u64 = 8;
const ITERS: u64 = 320_000;

fn program_bytes(iters: u64) -> u64 {
    (0..iters).map(|i| 16 + i % 200).sum()
}

#[test]
fn cross_thread_frees_are_exact_and_nothing_is_dropped() {
    let prog = c_program("threads", &[]);
    // What libc allocates for the threads themselves, measured, not guessed.
    let base = traced("threads_baseline", &prog, &["8", "0"], &[]);
    let full = traced(
        "threads_full",
        &prog,
        &["8", &ITERS.to_string()],
        &[("MEMSCOPE_MAX_RECORDS", "1000")],
    );
    assert!(full.output.status.success(), "{}", full.stderr());
    let (b, s) = (base.only(), full.only());
    check_invariants(b);
    check_invariants(s);
    let (mb, m) = (&b.summary, &s.summary);
    assert_eq!(m.events_dropped, 0);
    assert!(m.total_allocations + m.total_frees >= 5_000_000);
    assert_eq!(m.total_allocations - mb.total_allocations, THREADS * ITERS);
    assert_eq!(m.total_frees - mb.total_frees, THREADS * (ITERS - 1));
    assert_eq!(
        m.total_allocated_bytes - mb.total_allocated_bytes,
        THREADS * program_bytes(ITERS)
    );
    assert_eq!(m.live_at_exit_allocations - mb.live_at_exit_allocations, THREADS);
    assert_eq!(m.unmatched_frees, 0);
    // Every worker thread shows up with its share.
    let workers: Vec<_> = s.threads.iter().filter(|t| t.allocations >= ITERS).collect();
    assert_eq!(workers.len() as u64, THREADS);
    // Records: the live ones first, then the largest freed ones, bounded.
    assert_eq!(s.allocations.len(), 1000);
    assert!(s.allocations[..m.live_at_exit_allocations as usize]
        .iter()
        .all(|a| a.is_leaked));
    assert_eq!(m.records_omitted, m.total_allocations - 1000);
}

#[test]
fn repeated_runs_give_identical_counts() {
    let prog = c_program("threads", &[]);
    let a = traced("threads_repeat_a", &prog, &["4", "50000"], &[]);
    let b = traced("threads_repeat_b", &prog, &["4", "50000"], &[]);
    let (sa, sb) = (&a.only().summary, &b.only().summary);
    check_invariants(a.only());
    assert_eq!(
        (
            sa.total_allocations,
            sa.total_frees,
            sa.total_allocated_bytes,
            sa.live_at_exit_bytes
        ),
        (
            sb.total_allocations,
            sb.total_frees,
            sb.total_allocated_bytes,
            sb.live_at_exit_bytes
        )
    );
}

/// SPEC §6, with libc's own per-thread blocks (whose size differs under any
/// preloaded library with TLS) taken out by a zero-iteration baseline.
#[test]
fn single_thread_counts_equal_dhat() {
    if !dhat::available() {
        return;
    }
    let prog = c_program("threads", &[]);
    let measure = |iters: &str| {
        let run = traced(&format!("threads_vs_dhat_{iters}"), &prog, &["1", iters], &[]);
        let s = run.only().clone();
        check_invariants(&s);
        (s.summary, dhat::run(&prog, &["1", iters], &run.dir))
    };
    let (m0, d0) = measure("0");
    let (m, d) = measure("20000");
    let d = d - d0;
    assert_eq!(
        d.blocks,
        (m.total_allocations + m.reallocs) - (m0.total_allocations + m0.reallocs)
    );
    assert_eq!(d.bytes, m.total_allocated_bytes - m0.total_allocated_bytes);
    assert_eq!(d.end_blocks, m.live_at_exit_allocations - m0.live_at_exit_allocations);
    assert_eq!(d.end_bytes, m.live_at_exit_bytes - m0.live_at_exit_bytes);
    assert_eq!(d.gmax_bytes, m.peak_live_bytes - m0.peak_live_bytes);
}

/// The long variant, 16 threads and 32 million events: runs in every
/// `cargo test` (tens of seconds on CI's two cores).
#[test]
fn long_sixteen_threads_thirty_two_million_events() {
    let (threads, iters) = (16u64, 1_000_000u64);
    let prog = c_program("threads", &[]);
    let base = traced("threads_long_base", &prog, &["16", "0"], &[]);
    let run = traced(
        "threads_long",
        &prog,
        &["16", &iters.to_string()],
        &[("MEMSCOPE_MAX_RECORDS", "100")],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let (b, s) = (&base.only().summary, &run.only().summary);
    check_invariants(run.only());
    assert_eq!(s.events_dropped, 0);
    assert_eq!(s.total_allocations - b.total_allocations, threads * iters);
    assert_eq!(s.total_frees - b.total_frees, threads * (iters - 1));
    assert_eq!(
        s.total_allocated_bytes - b.total_allocated_bytes,
        threads * program_bytes(iters)
    );
}

/// Threads on the smallest stacks glibc allows (16 KiB) start, allocate,
/// fork (twice, from one of them) and end the process as they do
/// un-traced. memscope's static TLS comes out of every thread's stack
/// (its stack-walk memo, 13 KiB there, made `pthread_create` fail with
/// EINVAL), and its heavy work — deriving
/// unwind rules, a fork child's snapshot, the final one written on the
/// thread that calls `exit` — overflowed such a stack.
#[test]
fn threads_on_the_smallest_stacks_behave_as_untraced() {
    let prog = c_program("small_stacks", &[]);
    let (threads, iters) = (4u64, 2_000u64);
    let args = ["4", "2000"];
    let plain = untraced(&prog, &args);
    assert_eq!(plain.status.code(), Some(7), "un-traced: {plain:?}");
    // Fresh caches: every unwind rule is derived on the small stacks.
    let env = [("MEMSCOPE_CACHE", "off")];
    let base = traced("small_stacks_base", &prog, &["4", "0"], &env);
    let run = traced("small_stacks", &prog, &args, &env);
    assert_eq!(run.output.status.code(), Some(7), "{}", run.stderr());
    assert_eq!(run.output.stdout, plain.stdout);
    assert_eq!(run.stdout(), "child 5\nchild 5\nbye\n");
    let main_of = |r: &Run| r.find(|s| !s.process.forked)[0].clone();
    let (b, s) = (main_of(&base), main_of(&run));
    check_invariants(&s);
    assert_eq!(s.process.exit_code, Some(7));
    let (mb, m) = (&b.summary, &s.summary);
    assert_eq!(m.total_allocations - mb.total_allocations, threads * iters);
    assert_eq!(m.total_frees - mb.total_frees, threads * iters / 2);
    assert_eq!(m.unmatched_frees, 0);
    let children = run.find(|s| s.process.forked);
    assert_eq!(children.len(), 2, "{:?}", run.paths());
    for child in children {
        assert_eq!(child.process.exit_code, Some(5));
        assert_eq!(child.process.end, memscope_format::EndKind::UnderscoreExit);
    }
}

/// Threads cancelled while they allocate end as un-traced: cancelled, and
/// the program goes on. memscope's own code makes system calls that are
/// cancellation points (reading /proc, sleeping), and a cancel request
/// acted on there unwound through its frames and aborted the program
/// (every run of this one, which keeps to one CPU so that the worker's
/// hooks do memscope's draining themselves).
#[test]
fn cancelled_threads_are_cancelled_and_the_program_goes_on() {
    let prog = c_program("cancel", &[]);
    let (rounds, iters) = (10u64, 200_000u64);
    let args = ["10", "200000"];
    let plain = untraced(&prog, &args);
    assert!(plain.status.success(), "un-traced: {plain:?}");
    let base = traced("cancel_base", &prog, &["10", "0"], &[]);
    let run = traced("cancel", &prog, &args, &[]);
    assert!(run.output.status.success(), "{:?}\n{}", run.output.status, run.stderr());
    assert_eq!(run.output.stdout, plain.stdout);
    assert_eq!(run.stdout(), "cancelled 10\n");
    let (b, s) = (&base.only().summary, &run.only().summary);
    check_invariants(run.only());
    assert_eq!(s.events_dropped, 0);
    assert_eq!(s.unmatched_frees, 0);
    assert_eq!(s.total_allocations - b.total_allocations, rounds * iters);
    assert_eq!(s.total_frees - b.total_frees, rounds * iters);
}
