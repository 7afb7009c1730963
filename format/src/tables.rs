//! The `modules` and `frames` tables of a version-2 snapshot (SPEC §3): each
//! module path and each frame is stored once, and call sites list indices.
//! A process with 10,000 sites of 30 frames would otherwise repeat the same
//! names 300,000 times.

use crate::{Frame, Snapshot};
use std::collections::HashMap;

/// Module path given to frames whose address lies in no known module
/// (JIT code, an unmapped page): SPEC §3 wants `module` always set.
pub const UNKNOWN_MODULE: &str = "[unknown]";

/// Builds the two tables, each entry interned once.
#[derive(Debug, Default, Clone)]
pub struct FrameTables {
    pub modules: Vec<String>,
    pub frames: Vec<Frame>,
    module_index: HashMap<String, u32>,
    frame_index: HashMap<Frame, u32>,
}

impl FrameTables {
    pub fn new() -> FrameTables {
        FrameTables::default()
    }

    /// The index of `path` in `modules`, added if new.
    pub fn module(&mut self, path: &str) -> u32 {
        if let Some(&i) = self.module_index.get(path) {
            return i;
        }
        let i = self.modules.len() as u32;
        self.modules.push(path.to_owned());
        self.module_index.insert(path.to_owned(), i);
        i
    }

    /// The index of `frame` in `frames` (its `module` already an index into
    /// this table's `modules`), added if new.
    pub fn frame(&mut self, frame: Frame) -> u32 {
        if let Some(&i) = self.frame_index.get(&frame) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_index.insert(frame, i);
        i
    }

    /// Adds `frame`, which the caller knows is in no entry yet (a frame of
    /// an address it has not added before: every frame holds its address),
    /// without looking it up: hashing and copying each whole frame to find
    /// it new was a tenth of building a short process's snapshot, a third
    /// of naming cc1's call sites. Never mix with [`frame`](Self::frame) on
    /// one table.
    pub fn new_frame(&mut self, frame: Frame) -> u32 {
        self.frames.push(frame);
        self.frames.len() as u32 - 1
    }

    /// Moves the tables into `snap` (whose `module_info`, describing other
    /// modules, is dropped).
    pub fn install(self, snap: &mut Snapshot) {
        snap.module_info.clear();
        snap.modules = self.modules;
        snap.frames = self.frames;
    }
}

impl Snapshot {
    /// A call site's frames, innermost first (indices checked by the reader).
    pub fn frames_of<'a>(&'a self, site: &'a crate::Callsite) -> impl DoubleEndedIterator<Item = &'a Frame> + 'a {
        site.frames.iter().filter_map(move |&i| self.frames.get(i as usize))
    }

    /// The path of the module that holds `frame`; None for an address
    /// outside every module ([`UNKNOWN_MODULE`]).
    pub fn module_of(&self, frame: &Frame) -> Option<&str> {
        self.modules
            .get(frame.module as usize)
            .map(String::as_str)
            .filter(|m| *m != UNKNOWN_MODULE)
    }

    /// Checks every index: a frame of a call site past `frames`, or a frame's
    /// module past `modules`.
    pub fn check_tables(&self) -> Result<(), String> {
        let modules = self.modules.len();
        if !self.module_info.is_empty() && self.module_info.len() != modules {
            return Err(format!(
                "\"module_info\" has {} entries for {modules} modules",
                self.module_info.len()
            ));
        }
        if let Some((i, f)) = self
            .frames
            .iter()
            .enumerate()
            .find(|(_, f)| f.module as usize >= modules)
        {
            return Err(format!(
                "frame {i} names module {} but the snapshot has {modules} modules",
                f.module
            ));
        }
        let frames = self.frames.len();
        for c in &self.callsites {
            if let Some(&bad) = c.frames.iter().find(|&&i| i as usize >= frames) {
                return Err(format!(
                    "call site {} lists frame {bad} but the snapshot has {frames} frames",
                    c.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ip: &str, function: &str, module: u32) -> Frame {
        Frame {
            ip: ip.into(),
            function: Some(function.into()),
            file: None,
            line: None,
            module,
            inlined: false,
        }
    }

    #[test]
    fn each_module_and_frame_is_stored_once() {
        let mut t = FrameTables::new();
        let libc = t.module("/lib/libc.so.6");
        let exe = t.module("/bin/prog");
        assert_eq!((libc, exe, t.module("/lib/libc.so.6")), (0, 1, 0));
        let a = t.frame(frame("0x10", "malloc", libc));
        let b = t.frame(frame("0x20", "main", exe));
        assert_eq!((a, b, t.frame(frame("0x10", "malloc", libc))), (0, 1, 0));
        // Same address, another (inlined) function: another frame.
        let mut inl = frame("0x20", "helper", exe);
        inl.inlined = true;
        assert_eq!(t.frame(inl), 2);
        assert_eq!((t.modules.len(), t.frames.len()), (2, 3));
    }
}
