//! pprof's `profile.proto`, gzip-compressed, as a Go heap profile: sample
//! types `alloc_objects`/count, `alloc_space`/bytes, `inuse_objects`/count,
//! `inuse_space`/bytes (in use = live at the snapshot's end), so `go tool
//! pprof`, Pyroscope, Parca and Grafana read memscope's call sites.
//!
//! One sample per call site with anything to count: allocations and
//! reallocs (as DHAT's blocks and the folded export count them), their
//! bytes, and the site's blocks and bytes live at the end. A sample's stack
//! starts at the frame the site is named after: the allocation wrappers
//! memscope's site names skip (`malloc`, `operator new`, `RawVec::grow_one`,
//! `sqlite3Malloc` …, see the `sites` crate and `--wrapper`) and unnamed
//! static helpers right after them are left out, as pprof leaves out a Go
//! program's allocator frames, so `pprof -top` names the functions that
//! asked for the memory, as `summary` does (a stack of wrappers only is
//! kept whole). Each distinct
//! frame address becomes a location whose lines are the frame and the
//! frames inlined into it (innermost first, as pprof wants); each module a
//! mapping. Every location carries a function — an unnamed frame is named
//! like everywhere else in memscope (`0x… (in libfoo.so)`) — so pprof
//! never tries to symbolize addresses of another run. A snapshot without
//! call sites gives one sample with an empty stack carrying the summary.

mod proto;

use crate::sites::frame_label;
use memscope_format::{parse_addr, Callsite, Snapshot};
use proto::{Function, Line, Location, Mapping, Profile, Sample, ValueType};
use std::collections::HashMap;
use std::io::{self, Write};

/// Interns strings, functions, locations and mappings into a profile.
#[derive(Default)]
struct Builder {
    p: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64), u64>,
    /// By the frame indices the location holds.
    locations: HashMap<Vec<u32>, u64>,
    /// Module index → mapping id.
    mappings: HashMap<u32, u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.string(ty),
            unit: self.string(unit),
        }
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.string(name), self.string(file));
        let next = self.p.function.len() as u64 + 1;
        let id = *self.functions.entry(key).or_insert(next);
        if id == next {
            self.p.function.push(Function {
                id,
                name: key.0,
                system_name: key.0,
                filename: key.1,
                start_line: 0,
            });
        }
        id
    }

    /// One mapping per module, spanning the addresses seen in it (the
    /// snapshot does not record module sizes).
    fn mappings(&mut self, s: &Snapshot) {
        let mut span: HashMap<u32, (u64, u64)> = HashMap::new();
        for f in &s.frames {
            if s.module_of(f).is_none() {
                continue;
            }
            let ip = parse_addr(&f.ip).unwrap_or(0);
            let e = span.entry(f.module).or_insert((ip, ip));
            e.0 = e.0.min(ip);
            e.1 = e.1.max(ip);
        }
        let mut modules: Vec<u32> = span.keys().copied().collect();
        // pprof takes the first mapping for the main program.
        modules.sort_by_key(|&m| (s.modules[m as usize] != s.process.exe, m));
        for m in modules {
            let (lo, hi) = span[&m];
            let info = s.module_info.get(m as usize);
            let bias = info.and_then(|i| parse_addr(&i.bias)).filter(|&b| b <= lo);
            let id = self.p.mapping.len() as u64 + 1;
            let filename = self.string(&s.modules[m as usize]);
            let build_id = self.string(info.map_or("", |i| i.build_id.as_str()));
            self.p.mapping.push(Mapping {
                id,
                memory_start: bias.unwrap_or(lo),
                memory_limit: hi + 1,
                file_offset: 0,
                filename,
                build_id,
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                has_inline_frames: true,
            });
            self.mappings.insert(m, id);
        }
    }

    /// The location of `group`: frame indices at one address, the inlined
    /// ones first and the frame they were inlined into last.
    fn location(&mut self, s: &Snapshot, group: &[u32]) -> u64 {
        if let Some(&id) = self.locations.get(group) {
            return id;
        }
        let outer = &s.frames[*group.last().unwrap() as usize];
        let lines: Vec<Line> = group
            .iter()
            .map(|&i| {
                let f = &s.frames[i as usize];
                let name = match &f.function {
                    Some(name) => name.clone(),
                    None => frame_label(f, s.module_of(f)),
                };
                Line {
                    function_id: self.function(&name, f.file.as_deref().unwrap_or("")),
                    line: f.line.unwrap_or(0) as i64,
                }
            })
            .collect();
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(Location {
            id,
            mapping_id: self.mappings.get(&outer.module).copied().unwrap_or(0),
            address: parse_addr(&outer.ip).unwrap_or(0),
            line: lines,
        });
        self.locations.insert(group.to_vec(), id);
        id
    }

    /// A site's stack as location ids, innermost first, from the frame the
    /// site is named after.
    fn stack(&mut self, s: &Snapshot, c: &Callsite) -> Vec<u64> {
        let n = memscope_sites::naming(s, c, crate::sites::wrappers());
        let from = if n.caller < c.frames.len() { n.named } else { 0 };
        let mut ids = Vec::new();
        let mut group = Vec::new();
        for &i in &c.frames[from..] {
            group.push(i);
            if !s.frames[i as usize].inlined {
                ids.push(self.location(s, &group));
                group.clear();
            }
        }
        if !group.is_empty() {
            ids.push(self.location(s, &group));
        }
        ids
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The profile of a snapshot (frame indices are checked on reading).
pub fn profile(s: &Snapshot) -> Profile {
    let mut b = Builder::default();
    b.string("");
    b.p.sample_type = vec![
        b.value_type("alloc_objects", "count"),
        b.value_type("alloc_space", "bytes"),
        b.value_type("inuse_objects", "count"),
        b.value_type("inuse_space", "bytes"),
    ];
    b.p.default_sample_type = b.p.sample_type[3].r#type;
    b.p.period_type = Some(b.value_type("space", "bytes"));
    // Every allocation is recorded: no sampling to scale up.
    b.p.period = 1;
    b.p.time_nanos = signed(s.process.start_unix_ns);
    b.p.duration_nanos = signed(s.process.end_unix_ns.saturating_sub(s.process.start_unix_ns));
    let comment = format!(
        "memscope: {} (pid {}), {} allocations",
        s.process.argv.join(" "),
        s.process.pid,
        s.summary.total_allocations
    );
    b.p.comment = vec![b.string(&comment)];
    b.mappings(s);
    for c in &s.callsites {
        let value = [
            c.allocations + c.reallocs,
            c.bytes,
            c.live_at_exit_allocations,
            c.live_at_exit_bytes,
        ];
        if value.iter().all(|&v| v == 0) {
            continue;
        }
        let location_id = b.stack(s, c);
        b.p.sample.push(Sample {
            location_id,
            value: value.map(signed).to_vec(),
        });
    }
    if b.p.sample.is_empty() {
        let t = &s.summary;
        let value = [
            t.total_allocations + t.reallocs,
            t.total_allocated_bytes,
            t.live_at_exit_allocations,
            t.live_at_exit_bytes,
        ];
        b.p.sample.push(Sample {
            location_id: Vec::new(),
            value: value.map(signed).to_vec(),
        });
    }
    b.p
}

pub fn write(s: &Snapshot, w: &mut dyn Write) -> io::Result<()> {
    let bytes = prost::Message::encode_to_vec(&profile(s));
    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::tests::{frame, with_sites};

    fn name(p: &Profile, loc: u64, line: usize) -> &str {
        let l = &p.location[loc as usize - 1].line[line];
        &p.string_table[p.function[l.function_id as usize - 1].name as usize]
    }

    #[test]
    fn sites_become_samples_and_inlined_frames_share_a_location() {
        let mut inl = frame(0x20, Some("inlined_helper"), Some("h.c"), Some(7));
        inl.inlined = true;
        let mut s = with_sites(vec![
            (
                1,
                vec![
                    frame(0x10, Some("malloc"), None, None),
                    inl,
                    frame(0x20, Some("main"), Some("m.c"), Some(5)),
                ],
                3,
                60,
            ),
            (2, vec![frame(0x30, None, None, None)], 1, 8),
            (3, vec![], 0, 0),
        ]);
        s.callsites[0].live_at_exit_allocations = 1;
        s.callsites[0].live_at_exit_bytes = 30;
        s.callsites[0].reallocs = 2;
        let p = profile(&s);
        let types: Vec<&str> = p
            .sample_type
            .iter()
            .map(|t| p.string_table[t.r#type as usize].as_str())
            .collect();
        assert_eq!(types, ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]);
        assert_eq!(p.string_table[p.default_sample_type as usize], "inuse_space");
        assert_eq!(p.sample.len(), 2, "the empty site 3 has nothing to count");
        assert_eq!(p.sample[0].value, [5, 60, 1, 30]);
        assert_eq!(p.sample[1].value, [1, 8, 0, 0]);
        // The stack starts at the caller: malloc, a wrapper, is left out.
        let stack = &p.sample[0].location_id;
        assert_eq!(stack.len(), 1);
        assert_eq!(name(&p, stack[0], 0), "inlined_helper");
        assert_eq!(name(&p, stack[0], 1), "main");
        assert_eq!(p.location[stack[0] as usize - 1].line[1].line, 5);
        assert_eq!(name(&p, p.sample[1].location_id[0], 0), "0x30 (in prog)");
        assert_eq!(p.mapping.len(), 1);
        assert_eq!((p.mapping[0].memory_start, p.mapping[0].memory_limit), (0x10, 0x31));
    }

    #[test]
    fn a_stack_of_wrappers_only_is_kept_whole() {
        let s = with_sites(vec![(
            1,
            vec![
                frame(0x10, Some("malloc"), None, None),
                frame(0x18, Some("xmalloc"), None, None),
            ],
            1,
            8,
        )]);
        let p = profile(&s);
        let names: Vec<&str> = p.sample[0].location_id.iter().map(|&l| name(&p, l, 0)).collect();
        assert_eq!(names, ["malloc", "xmalloc"]);
    }

    #[test]
    fn no_call_sites_still_make_one_sample() {
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        s.summary.total_allocations = 4;
        s.summary.total_allocated_bytes = 100;
        let p = profile(&s);
        assert_eq!(p.sample.len(), 1);
        assert!(p.sample[0].location_id.is_empty());
        assert_eq!(p.sample[0].value, [4, 100, 0, 0]);
        let mut gz = Vec::new();
        write(&s, &mut gz).unwrap();
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(<Profile as prost::Message>::decode(&raw[..]).unwrap(), p);
    }
}
