//! Naming a snapshot whose frames the library left unnamed
//! (`symbols_pending`): each unnamed frame is one return address; it becomes
//! that address's frames (inlined ones first), and every call site's list of
//! frame indices is rewritten to match.

use crate::{unhex, ModuleRef, Resolver};
use memscope_format::{parse_addr, Frame, FrameTables, Snapshot};

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
    // module_info: its frames cannot be named).
    let bases: Vec<(u64, Vec<u8>)> = snap
        .module_info
        .iter()
        .map(|info| {
            (
                parse_addr(&info.bias).unwrap_or(0),
                unhex(&info.build_id).unwrap_or_default(),
            )
        })
        .collect();
    // Old frame index → its named frames' new indices.
    let mapping: Vec<Vec<u32>> = snap
        .frames
        .iter()
        .map(|f| {
            let (Some(ip), Some(path), Some((bias, build_id))) =
                (parse_addr(&f.ip), snap.module_of(f), bases.get(f.module as usize))
            else {
                // Outside every module, or no module info: stays unnamed.
                return vec![tables.frame(f.clone())];
            };
            let m = ModuleRef {
                path,
                bias: *bias,
                build_id,
            };
            r.resolve(&m, ip)
                .into_iter()
                .map(|n| {
                    tables.frame(Frame {
                        ip: f.ip.clone(),
                        function: n.function,
                        file: n.file,
                        line: n.line,
                        module: f.module,
                        inlined: n.inlined,
                    })
                })
                .collect()
        })
        .collect();
    for c in &mut snap.callsites {
        c.frames = c
            .frames
            .iter()
            .flat_map(|&i| mapping.get(i as usize).map_or(&[][..], Vec::as_slice))
            .copied()
            .collect();
    }
    snap.frames = tables.frames;
    snap.symbols_pending = false;
    true
}
