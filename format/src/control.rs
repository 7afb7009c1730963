//! The on-demand snapshot protocol between `memscope-cli snapshot` and a
//! traced process (README "Snapshots of a running program"): the names
//! both sides use, kept in one place.
//!
//! Everything goes through files in a per-user control directory,
//! `/tmp/memscope-<uid>` (mode 0700, owned by the user; either side refuses
//! one that is not): no signal, descriptor or socket of the program is ever
//! used, so a program that blocks signals, closes every descriptor or
//! installs its own handlers is unaffected. The path does not depend on the
//! environment, so a CLI started from any shell finds a daemon's files.
//!
//! - `<pid>.traced` — written by a traced image when its collector thread
//!   starts, removed when the image ends or calls `exec`; holds the
//!   process's start time (field 22 of `/proc/<pid>/stat`) so that a file
//!   left by a killed process is never mistaken for a new process that got
//!   its pid.
//! - `<pid>.req.<id>` — a request (written to a temporary name, then
//!   renamed): its content is the wanted output path, empty for the default;
//!   [`STATS_PREFIX`] before the path asks for a light snapshot (summary,
//!   call sites and timeline; no records, live blocks not copied), which is
//!   what `memscope-cli top` asks for every second.
//! - `<pid>.wake` — created after a request: the library's collector thread
//!   tries to remove it every [`POLL_MS`] ms (one system call), and only
//!   when that succeeds lists the directory for requests. Every request
//!   seen in one listing is answered by one snapshot (requests coalesce).
//! - `<pid>.done.<id>` — the answer (written to a temporary name, then
//!   renamed): `ok\n<path>` or `error\n<message>`.

/// Starts the content of a request for a light snapshot.
pub const STATS_PREFIX: &str = "stats:";

/// How often (ms) a traced process looks for a request.
pub const POLL_MS: u64 = 50;

/// The control directory of user `uid`.
pub fn dir_for(uid: u32) -> String {
    format!("/tmp/memscope-{uid}")
}

pub fn traced_name(pid: u32) -> String {
    format!("{pid}.traced")
}

pub fn wake_name(pid: u32) -> String {
    format!("{pid}.wake")
}

pub fn request_prefix(pid: u32) -> String {
    format!("{pid}.req.")
}

pub fn done_name(pid: u32, id: &str) -> String {
    format!("{pid}.done.{id}")
}

/// A request id is made of ASCII letters, digits and `-` (it becomes part
/// of a file name), at most 64 of them.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The start time (clock ticks since boot) in the text of `/proc/<pid>/stat`:
/// field 22, counted after the command name's closing parenthesis (the
/// name itself may contain spaces and parentheses).
pub fn stat_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow the name; the start time is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Parses a duration: `500ms`, `10s`, `2m`, `1h`, or a plain number of
/// seconds (`1.5`). Returns nanoseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "ms" => 1e6,
        "" | "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let ns = n * scale;
    (1.0..1e18).contains(&ns).then_some(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_after_an_awkward_name() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(stat_start_time(stat), Some(987654));
        assert_eq!(stat_start_time("garbage"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("10s"), Some(10_000_000_000));
        assert_eq!(parse_duration("2"), Some(2_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000_000_000));
        for bad in ["", "s", "10x", "-1s", "0", "1e30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids() {
        assert!(valid_id("123-456"));
        assert!(!valid_id("../x"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(65)));
    }
}
