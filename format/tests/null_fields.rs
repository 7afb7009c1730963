//! A record's variable names and a frame's source position are left out
//! when null (they are null on nearly every record and on most frames of
//! system libraries), and a reader takes a missing one as null — while a
//! snapshot that spells the nulls out, as version 1 files and older
//! version 2 files do, still reads the same.

use memscope_format::{read_snapshot, Snapshot};

/// A version-2 snapshot with one record, one frame and one site; `names`
/// and `position` are spliced into the record and the frame.
fn snapshot(names: &str, position: &str) -> Vec<u8> {
    format!(
        r#"{{"format":"memscope","format_version":2,"process":{{"pid":7,"ppid":1,"exe":"/bin/x","argv":["x"],"start_unix_ns":1,"end_unix_ns":100,"end":"exit","exit_code":0}},
"summary":{{"total_allocations":1,"total_frees":0,"total_allocated_bytes":8,"total_freed_bytes":0,"reallocs":0,"peak_live_bytes":8,"peak_live_allocations":1,"peak_unix_ns":5,"live_at_exit_allocations":1,"live_at_exit_bytes":8,"events_dropped":0,"records_omitted":0}},
"allocations":[{{"ptr":"0x10","size":8,"kind":"malloc","thread_id":7,"timestamp_alloc":5,"timestamp_dealloc":100,"lifetime_ns":95,"lifetime_ms":0,"is_leaked":true,"callsite":0{names}}}],
"modules":["/bin/x"],"frames":[{{"ip":"0x1234","function":"main","module":0{position}}}],
"callsites":[{{"id":0,"frames":[0],"allocations":1,"bytes":8,"live_at_exit_bytes":8,"peak_live_bytes":8,"lifetime_ns":{{"min":95,"p50":95,"p99":95,"max":95}}}}],
"variables":[],"threads":[],"lifetime_histogram":[],"timeline":[[1,0],[5,8],[100,8]]}}"#
    )
    .into_bytes()
}

fn read(bytes: &[u8]) -> Snapshot {
    read_snapshot(bytes).expect("the snapshot reads")
}

#[test]
fn missing_and_explicit_nulls_read_alike() {
    let spelled = read(&snapshot(
        r#","var_name":null,"type_name":null,"scope_name":null"#,
        r#","file":null,"line":null"#,
    ));
    let omitted = read(&snapshot("", ""));
    assert_eq!(spelled.allocations, omitted.allocations);
    assert_eq!(spelled.frames, omitted.frames);
    assert!(omitted.allocations[0].var_name.is_none());
    assert!(omitted.frames[0].file.is_none() && omitted.frames[0].line.is_none());
    assert_eq!(omitted.frames[0].function.as_deref(), Some("main"));
}

#[test]
fn nulls_are_left_out_and_values_kept_when_written() {
    let mut s = read(&snapshot("", ""));
    let plain = serde_json::to_string(&s).unwrap();
    for key in ["var_name", "type_name", "scope_name", "\"file\"", "\"line\""] {
        assert!(!plain.contains(key), "{key} written as null: {plain}");
    }
    // A tracked variable's names and a frame's position are written.
    s.allocations[0].var_name = Some("buf".into());
    s.allocations[0].type_name = Some("Vec<u8>".into());
    s.frames[0].file = Some("src/main.rs".into());
    s.frames[0].line = Some(12);
    let named = serde_json::to_string(&s).unwrap();
    for part in [
        r#""var_name":"buf""#,
        r#""type_name":"Vec<u8>""#,
        r#""file":"src/main.rs""#,
        r#""line":12"#,
    ] {
        assert!(named.contains(part), "{part} missing: {named}");
    }
    assert!(!named.contains("scope_name"));
    assert_eq!(read(named.as_bytes()).allocations, s.allocations);
}
