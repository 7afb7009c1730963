//! Folded stacks (`outer;inner;innermost value`), the input of inferno,
//! flamegraph.pl and speedscope. Frame names are made safe for the format:
//! `;` separates frames, so it becomes `:`, and control characters are
//! escaped; a line's value is the last space-separated field, so spaces in
//! C++ or Rust names are fine.

use super::Weight;
use crate::sites::frame_label;
use memscope_format::{Callsite, Snapshot};
use std::collections::BTreeMap;
use std::io::{self, Write};

fn value(c: &Callsite, w: Weight) -> u64 {
    match w {
        Weight::Bytes => c.bytes,
        Weight::Allocations => c.allocations + c.reallocs,
        Weight::Leaked => c.live_at_exit_bytes,
        Weight::Peak => c.at_peak_bytes,
    }
}

fn clean(name: &str) -> String {
    crate::text::term(name).replace(';', ":")
}

/// The folded lines, identical stacks merged, in a stable order.
pub fn lines(s: &Snapshot, w: Weight) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in &s.callsites {
        let v = value(c, w);
        if v == 0 {
            continue;
        }
        let stack = if c.frames.is_empty() {
            "[no backtrace]".to_string()
        } else {
            let names: Vec<String> = s
                .frames_of(c)
                .rev()
                .map(|f| clean(&frame_label(f, s.module_of(f))))
                .collect();
            names.join(";")
        };
        *out.entry(stack).or_insert(0) += v;
    }
    out
}

pub fn write(s: &Snapshot, weight: Weight, w: &mut dyn Write) -> io::Result<()> {
    for (stack, v) in lines(s, weight) {
        writeln!(w, "{stack} {v}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::tests::{frame, with_sites};

    #[test]
    fn root_first_and_merged() {
        let f = |n: &str, line| frame(line as u64, Some(n), Some("x.c"), Some(line));
        let s = with_sites(vec![
            (1, vec![f("leaf", 3), f("mid", 2), f("main", 1)], 2, 100),
            (2, vec![f("leaf", 3), f("mid", 2), f("main", 1)], 1, 50),
            (3, vec![f("evil;name\n", 9), f("main", 1)], 1, 7),
            (4, vec![], 1, 0),
        ]);
        let l = lines(&s, Weight::Bytes);
        let got: Vec<String> = l.iter().map(|(k, v)| format!("{k} {v}")).collect();
        assert_eq!(
            got,
            [
                "main (x.c:1);evil:name\\n (x.c:9) 7",
                "main (x.c:1);mid (x.c:2);leaf (x.c:3) 150",
            ]
        );
        assert_eq!(lines(&s, Weight::Allocations)["[no backtrace]"], 1);
    }
}
