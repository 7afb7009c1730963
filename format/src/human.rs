//! Numbers as people read them, shared by the terminal summary (memscope-cli)
//! and the HTML report, so both show the same figure the same way.

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in powers of 1024, three significant digits: `512 B`, `1.50 KiB`,
/// `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", sig3(v), UNITS[u])
}

/// Three significant digits for 1 <= v < 1000 (`1.23`, `12.3`, `123`).
pub fn sig3(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bytes() {
        assert_eq!(
            [count(0), count(999), count(1000), count(1_234_567)],
            ["0", "999", "1,000", "1,234,567"]
        );
        assert_eq!(
            [bytes(1023), bytes(1024), bytes(1536), bytes(12 << 20), bytes(u64::MAX)],
            ["1023 B", "1.00 KiB", "1.50 KiB", "12.0 MiB", "16.0 EiB"]
        );
        assert_eq!([sig3(1.234), sig3(12.34), sig3(123.4)], ["1.23", "12.3", "123"]);
    }
}
