//! Turning numbers into text and text from the traced program into
//! something safe to print.
//!
//! Everything a traced program controls (its name, argv, symbols, thread
//! names, file paths) goes through [`term`] before it reaches a terminal, or
//! [`markdown`] before it reaches a pull request: a hostile name must not be
//! able to move the cursor, recolour the screen or break a table.

use std::fmt::Write as _;

pub use memscope_format::human::{bytes, count};

/// A signed byte difference: `+1.50 KiB`, `-12 B`, `0 B`.
pub fn bytes_delta(d: i128) -> String {
    let mag = bytes(d.unsigned_abs().min(u64::MAX as u128) as u64);
    match d.signum() {
        1 => format!("+{mag}"),
        -1 => format!("-{mag}"),
        _ => mag,
    }
}

/// Nanoseconds as a short duration: `850 ns`, `12.0 µs`, `3.40 ms`, `1.25 s`, `2 min 5 s`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", f / 1e6)
    } else if ns < 120_000_000_000 {
        format!("{:.2} s", f / 1e9)
    } else {
        let s = ns / 1_000_000_000;
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// Parses a SIZE (SPEC §4): `1234` bytes, `64KiB`/`10MiB`/`2GiB` (powers of
/// 1024), `64KB`/`1.5GB` (powers of 1000). Units are case-insensitive and may
/// follow a space; a bare `B` is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad_size(s)),
    };
    if num.is_empty() || num.matches('.').count() > 1 || num.starts_with('.') || num.ends_with('.') {
        return Err(bad_size(s));
    }
    if !num.contains('.') {
        let n: u64 = num.parse().map_err(|_| bad_size(s))?;
        return n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"));
    }
    let v: f64 = num.parse().map_err(|_| bad_size(s))?;
    let b = (v * mult as f64).round();
    if !b.is_finite() || b >= u64::MAX as f64 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(b as u64)
}

fn bad_size(s: &str) -> String {
    format!(
        "invalid size {:?}: expected bytes (1234), KiB/MiB/GiB (powers of 1024) or KB/MB/GB (powers of 1000)",
        term(s)
    )
}

/// Parses a percentage: `10`, `2.5`, `10%`.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%').trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "invalid percentage {:?}: expected a number such as 10 or 2.5%",
            term(s)
        )),
    }
}

/// True for characters that must not reach a terminal raw: C0/C1 controls,
/// DEL, and the bidirectional overrides that can make text read backwards.
fn dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// Makes untrusted text safe for a terminal: control and bidi characters
/// become `\n`, `\t`, `\x1b`, `\u{202e}`… and a backslash stays a backslash.
pub fn term(s: &str) -> String {
    if !s.chars().any(dangerous) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if dangerous(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if dangerous(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Makes untrusted text safe inside a GitHub-flavoured markdown table cell:
/// terminal-safe first, then every character markdown or HTML could act on
/// is escaped, so a symbol cannot open a link, an HTML tag or a new column.
pub fn markdown(s: &str) -> String {
    let safe = term(s);
    let mut out = String::with_capacity(safe.len() + 8);
    for c in safe.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '|' => out.push_str("\\|"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Shortens `s` to at most `max` characters, keeping the end (the most
/// specific part of a path or symbol) and marking the cut with `…`.
pub fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max || max < 2 {
        return s.to_string();
    }
    let skip = n - (max - 1);
    let mut out = String::from("…");
    out.extend(s.chars().skip(skip));
    out
}

/// `SIGSEGV` for 11, `signal 77` for what has no name here.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig).ok().and_then(|i| NAMES.get(i)) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_spec() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("1.5 gib"), Ok(1_610_612_736));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in [
            "",
            "abc",
            "-1",
            "1.2.3",
            "10XB",
            ".5MB",
            "5.MB",
            "1e3",
            "99999999999999999999",
            "NaN",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10"), Ok(10.0));
        assert_eq!(parse_percent("2.5%"), Ok(2.5));
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("inf").is_err());
        assert!(parse_percent("ten").is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(12 << 20), "12.0 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(bytes_delta(-2048), "-2.00 KiB");
        assert_eq!(bytes_delta(5), "+5 B");
        assert_eq!(duration(1_500_000), "1.50 ms");
        assert_eq!(duration(125_000_000_000), "2 min 5 s");
    }

    #[test]
    fn hostile_text_cannot_reach_the_terminal() {
        let evil = "a\x1b[31mred\x07\r\n\u{9b}x\u{202e}gnp.exe\\";
        let t = term(evil);
        assert!(!t.chars().any(dangerous), "{t:?}");
        assert_eq!(t, "a\\x1b[31mred\\x07\\r\\n\\x9bx\\u{202e}gnp.exe\\");
        assert_eq!(term("plain é ✓"), "plain é ✓");
    }

    #[test]
    fn hostile_text_cannot_break_markdown() {
        let m = markdown("f|<img src=x onerror=alert(1)>`[x](y)`\n");
        assert!(!m.contains('<') && !m.contains('\n'));
        assert!(!m.replace("\\|", "").contains('|'));
        assert_eq!(markdown("a_b"), "a\\_b");
    }

    #[test]
    fn tails_keep_the_end() {
        assert_eq!(tail("abcdef", 4), "…def");
        assert_eq!(tail("abc", 4), "abc");
    }
}
