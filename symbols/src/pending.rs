//! Naming a snapshot whose frames the library left unnamed
//! (`symbols_pending`): each unnamed frame is one return address; it becomes
//! that address's frames (inlined ones first), and every call site's list of
//! frame indices is rewritten to match.

use crate::{unhex, ModuleRef, Resolver};
use memscope_format::{parse_addr, Frame, FrameTables, Snapshot, UNKNOWN_MODULE};

/// Names the frames of `snap` if they are pending; returns whether it did.
/// A frame whose module file is gone or was rebuilt since stays unnamed.
pub fn name_pending(snap: &mut Snapshot, r: &mut Resolver) -> bool {
    if !snap.symbols_pending {
        return false;
    }
    let mut tables = FrameTables::new();
    for m in &snap.modules {
        tables.module(m);
    }
    // Each module's bias and build id (none when the snapshot has no
    // module_info, or an unreadable one: its frames cannot be named).
    let bases: Vec<Option<(u64, Vec<u8>)>> = snap
        .module_info
        .iter()
        .map(|info| Some((parse_addr(&info.bias)?, unhex(&info.build_id)?)))
        .collect();
    // Each module's addresses named together: its tables read once.
    let mut by_module: Vec<Vec<u64>> = vec![Vec::new(); bases.len()];
    for f in &snap.frames {
        if let (Some(ip), Some(ips)) = (parse_addr(&f.ip), by_module.get_mut(f.module as usize)) {
            ips.push(ip);
        }
    }
    for (i, ips) in by_module.iter().enumerate() {
        if let (Some(path), Some(Some((bias, build_id)))) = (snap.modules.get(i), bases.get(i)) {
            if !ips.is_empty() && path != UNKNOWN_MODULE {
                let m = ModuleRef {
                    path,
                    bias: *bias,
                    build_id,
                };
                r.prefetch(&m, ips);
            }
        }
    }
    // Old frame index → the range of its named frames in the new table.
    // Each unnamed frame is a return address of its own (the library names
    // each address once), and an address's inlined frames differ from each
    // other: every frame is new to the table, added without hashing and
    // copying it to look for it, so an address's frames are consecutive.
    let mut mapping: Vec<(u32, u32)> = Vec::with_capacity(snap.frames.len());
    for f in &snap.frames {
        let first = tables.frames.len() as u32;
        let found = match (parse_addr(&f.ip), snap.module_of(f), bases.get(f.module as usize)) {
            (Some(ip), Some(path), Some(Some((bias, build_id)))) => Some((
                ip,
                ModuleRef {
                    path,
                    bias: *bias,
                    build_id,
                },
            )),
            _ => None,
        };
        match found {
            Some((ip, m)) => {
                for n in r.resolved(&m, ip) {
                    tables.new_frame(Frame {
                        ip: f.ip.clone(),
                        function: n.function.clone(),
                        file: n.file.clone(),
                        line: n.line,
                        module: f.module,
                        inlined: n.inlined,
                    });
                }
            }
            // Outside every module, or no usable module info: stays unnamed.
            None => {
                tables.new_frame(f.clone());
            }
        }
        mapping.push((first, tables.frames.len() as u32));
    }
    for c in &mut snap.callsites {
        c.frames = c
            .frames
            .iter()
            .flat_map(|&i| mapping.get(i as usize).map_or(0..0, |&(a, b)| a..b))
            .collect();
    }
    snap.frames = tables.frames;
    snap.symbols_pending = false;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pending snapshot whose one frame is a function of this test binary.
    fn pending(bias: &str) -> Snapshot {
        let (exe, _) = crate::tests::this_binary();
        let ip = pending as *const () as u64 + 1;
        let json = format!(
            r#"{{"format":"memscope","format_version":2,
"process":{{"pid":1,"ppid":0,"exe":"/x","argv":[],"start_unix_ns":1,"end_unix_ns":2,"end":"exit"}},
"summary":{{"total_allocations":1,"total_frees":0,"total_allocated_bytes":8,"total_freed_bytes":0,"reallocs":0,
"peak_live_bytes":8,"peak_live_allocations":1,"peak_unix_ns":1,"live_at_exit_allocations":1,"live_at_exit_bytes":8,
"events_dropped":0,"records_omitted":1}},"allocations":[],
"modules":[{exe:?}],"module_info":[{{"bias":"{bias}","build_id":""}}],
"frames":[{{"ip":"{ip:#x}","function":null,"file":null,"line":null,"module":0}}],"symbols_pending":true,
"callsites":[{{"id":1,"frames":[0],"allocations":1,"bytes":8,"live_at_exit_bytes":8,"peak_live_bytes":8,
"lifetime_ns":{{"min":1,"p50":1,"p99":1,"max":1}}}}],"variables":[],"timeline":[]}}"#
        );
        memscope_format::read_snapshot_bytes(json.as_bytes()).unwrap()
    }

    #[test]
    fn names_frames_and_leaves_unreadable_module_info_alone() {
        let (_, base) = crate::tests::this_binary();
        let mut s = pending(&memscope_format::hex_addr(base));
        assert!(name_pending(&mut s, &mut Resolver::new()));
        let names: Vec<Option<&str>> = s.frames_of(&s.callsites[0]).map(|f| f.function.as_deref()).collect();
        assert!(
            names.last().unwrap().is_some_and(|n| n.ends_with("pending")),
            "{names:?}"
        );
        assert!(!s.symbols_pending && !name_pending(&mut s, &mut Resolver::new()));
        // A bias that is not an address: the frame stays as it was.
        let mut bad = pending("0xzz");
        assert!(name_pending(&mut bad, &mut Resolver::new()));
        assert_eq!(bad.frames.len(), 1);
        assert_eq!(bad.frames[0].function, None);
    }
}
