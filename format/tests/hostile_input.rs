//! The snapshot reader never panics and always says what is wrong, whatever
//! the file holds: random bytes, truncations and mutations of a real
//! snapshot, deep nesting, huge numbers, invalid UTF-8.

use memscope_format::{read_snapshot, read_snapshot_bytes, ReadError};
use proptest::prelude::*;

/// A small but complete snapshot, as the library writes it.
fn valid() -> Vec<u8> {
    br#"{"format":"memscope","format_version":1,"tool":{"name":"memscope","version":"0.1.0","mode":"preload","backtrace_depth":0,"max_records":20000,"clock":"tsc"},
"process":{"pid":42,"ppid":1,"exe":"/bin/x","argv":["x","</script>"],"start_unix_ns":1,"end_unix_ns":100,"end":"exit","exit_code":0,"cwd":"/","exec_seq":0,"forked":false},
"summary":{"total_allocations":1,"total_frees":0,"total_allocated_bytes":8,"total_freed_bytes":0,"reallocs":0,"peak_live_bytes":8,"peak_live_allocations":1,"peak_unix_ns":5,"live_at_exit_allocations":1,"live_at_exit_bytes":8,"events_dropped":0,"records_omitted":0},
"allocations":[{"ptr":"0x10","size":8,"kind":"malloc","thread_id":42,"timestamp_alloc":5,"timestamp_dealloc":100,"lifetime_ns":95,"lifetime_ms":0,"is_leaked":true,"callsite":0,"var_name":null,"type_name":null,"scope_name":null}],
"callsites":[{"id":0,"frames":[],"allocations":1,"bytes":8,"live_at_exit_bytes":8,"peak_live_bytes":8,"lifetime_ns":{"min":95,"p50":95,"p99":95,"max":95}}],
"variables":[],"threads":[],"lifetime_histogram":[],"timeline":[[1,0],[5,8],[100,8]]}"#
        .to_vec()
}

#[test]
fn the_reference_snapshot_reads() {
    let s = read_snapshot(&valid()[..]).unwrap();
    assert_eq!(s.process.argv[1], "</script>");
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let v = valid();
    for cut in 1..v.len() - 1 {
        for got in [read_snapshot(&v[..cut]), read_snapshot_bytes(&v[..cut])] {
            match got {
                Err(ReadError::Truncated) => {}
                // A cut right after a token can also leave broken syntax.
                Err(ReadError::NotJson { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }
    assert!(matches!(read_snapshot(&v[..0]), Err(ReadError::Empty)));
    assert!(matches!(read_snapshot_bytes(&v[..0]), Err(ReadError::Empty)));
}

#[test]
fn pathological_values_are_errors_not_panics() {
    let bomb = "[".repeat(1_000_000);
    for input in [
        bomb.as_str(),
        r#"{"format":"memscope","format_version":1e400}"#,
        r#"{"format":"memscope","format_version":18446744073709551616}"#,
        r#"{"format":"memscope","format_version":-1}"#,
        r#"{"format":"memscope","format_version":1,"process":{"pid":99999999999}}"#,
        r#"{"format":"\ud800","format_version":1}"#,
        "\u{feff}{}",
    ] {
        let e = read_snapshot(input.as_bytes()).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    let mut invalid_utf8 = valid();
    let at = invalid_utf8.windows(5).position(|w| w == b"/bin/").unwrap();
    invalid_utf8[at + 1] = 0xff;
    assert!(read_snapshot(&invalid_utf8[..]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read_snapshot(&bytes[..]);
        let _ = read_snapshot_bytes(&bytes[..]);
    }

    #[test]
    fn mutated_snapshots_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut v = valid();
        for (i, b) in flips {
            let i = i.index(v.len());
            v[i] = b;
        }
        for got in [read_snapshot(&v[..]), read_snapshot_bytes(&v[..])] {
            if let Err(e) = got {
                prop_assert!(!e.to_string().is_empty());
                prop_assert!(!e.to_string().contains('\n'), "one line: {}", e);
            }
        }
    }
}
