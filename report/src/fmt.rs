//! Human renderings of numbers and the one HTML escaper every string from
//! the traced program goes through.

/// Escapes text for element content and quoted attribute values, after
/// making control characters visible (a thread named "\x1b[2J" shows as
/// `\x1b[2J`, not as a terminal escape copied out of the page).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\x{:02x}", c as u32)),
            c if ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{2028}' || c == '\u{2029}' => {
                o.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => o.push(c),
        }
    }
    o
}

use memscope_format::human::sig3;
pub use memscope_format::human::{bytes, count};

/// A duration from nanoseconds: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`,
/// `3 min 4 s`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{} µs", sig3(f / 1e3)),
        1_000_000..=999_999_999 => format!("{} ms", sig3(f / 1e6)),
        1_000_000_000..=119_999_999_999 => format!("{} s", sig3(f / 1e9)),
        _ => {
            let s = ns / 1_000_000_000;
            if s < 7200 {
                format!("{} min {} s", s / 60, s % 60)
            } else {
                format!("{} h {} min", s / 3600, s / 60 % 60)
            }
        }
    }
}

/// UNIX nanoseconds as `2026-11-01 12:34:56.789 UTC`.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ns / 1_000_000 % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_shows_controls() {
        assert_eq!(
            esc("</script><img src=x onerror='a'>&\"\n\x1b\u{85}"),
            "&lt;/script&gt;&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;\\n\\x1b\\u{85}"
        );
        assert_eq!(esc("plain µ 字"), "plain µ 字");
    }

    #[test]
    fn numbers() {
        assert_eq!(
            [count(0), count(999), count(1000), count(1_234_567)],
            ["0", "999", "1,000", "1,234,567"]
        );
        assert_eq!(
            [bytes(1023), bytes(1024), bytes(1536 * 1024), bytes(u64::MAX)],
            ["1023 B", "1.00 KiB", "1.50 MiB", "16.0 EiB"]
        );
        assert_eq!(duration(850), "850 ns");
        assert_eq!(duration(12_345), "12.3 µs");
        assert_eq!(duration(4_560_000), "4.56 ms");
        assert_eq!(duration(1_200_000_000), "1.20 s");
        assert_eq!(duration(184_000_000_000), "3 min 4 s");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29 00:00:00.123 UTC");
        assert_eq!(utc(1_790_000_000_000_000_000), "2026-09-21 14:13:20.000 UTC");
    }
}
