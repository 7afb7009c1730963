//! Reading snapshots, with one clear message for every way a file can be bad.
//!
//! The reader streams (no second pass over the input): `format` and
//! `format_version` are validated by their own deserializers as they go by,
//! so a file of another format or a newer version is reported as such rather
//! than as whichever field happens to be missing first.

use crate::{Snapshot, FORMAT, FORMAT_VERSION};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// Zero bytes.
    Empty,
    /// The input ends in the middle of the JSON value.
    Truncated,
    /// Not JSON at all (syntax error at the given position).
    NotJson { line: usize, column: usize },
    /// Valid JSON, but not a memscope snapshot of a version this build reads;
    /// the message says what is wrong.
    Invalid(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Empty => write!(f, "the file is empty"),
            ReadError::Truncated => write!(f, "the JSON is truncated (it ends before the snapshot does)"),
            ReadError::NotJson { line, column } => {
                write!(f, "not JSON (syntax error at line {line}, column {column})")
            }
            ReadError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Counts bytes so an empty input can be told apart from a truncated one.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Reads one snapshot from `r` (buffer it yourself if it is a file).
pub fn read_snapshot<R: Read>(r: R) -> Result<Snapshot, ReadError> {
    let mut input = Counting { inner: r, n: 0 };
    let mut de = serde_json::Deserializer::from_reader(&mut input);
    let result = Snapshot::deserialize(&mut de).and_then(|s| de.end().map(|()| s));
    result.map_err(|e| classify(e, input.n))
}

/// Opens and reads a snapshot file.
pub fn read_snapshot_file(path: &Path) -> Result<Snapshot, ReadError> {
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(ReadError::Io(io::Error::new(io::ErrorKind::Other, "is a directory")));
    }
    read_snapshot(io::BufReader::with_capacity(1 << 20, f))
}

fn classify(e: serde_json::Error, bytes_read: u64) -> ReadError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => ReadError::Io(e.into()),
        Category::Eof if bytes_read == 0 => ReadError::Empty,
        Category::Eof => ReadError::Truncated,
        Category::Syntax => ReadError::NotJson {
            line: e.line(),
            column: e.column(),
        },
        Category::Data => {
            let msg = e.to_string();
            if msg.contains(MARK) {
                ReadError::Invalid(msg.replace(MARK, ""))
            } else {
                ReadError::Invalid(format!("not a valid memscope snapshot: {msg}"))
            }
        }
    }
}

/// Tags the errors raised by the validators below so `classify` keeps their
/// wording; stripped before the message is shown.
const MARK: &str = "\u{1}";

pub(crate) fn de_format<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s != FORMAT {
        return Err(serde::de::Error::custom(format!(
            "{MARK}not a memscope snapshot (\"format\" is {s:?}, expected \"{FORMAT}\")"
        )));
    }
    Ok(s)
}

pub(crate) fn de_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u64::deserialize(d)?;
    if v != FORMAT_VERSION as u64 {
        return Err(serde::de::Error::custom(format!(
            "{MARK}unsupported snapshot format_version {v} (this memscope reads version {FORMAT_VERSION})"
        )));
    }
    Ok(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        read_snapshot(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn every_bad_input_has_its_own_message() {
        assert_eq!(err(""), "the file is empty");
        assert!(err("{\"format\": \"memscope\", \"format_ver").contains("truncated"));
        assert!(err("hello").starts_with("not JSON"));
        assert!(err("[1,2,3]").starts_with("not a valid memscope snapshot"));
        assert!(err("42").starts_with("not a valid memscope snapshot"));
        assert!(err(r#"{"format":"dhat","format_version":1}"#).contains("\"format\" is \"dhat\""));
        assert!(err(r#"{"format":"memscope","format_version":2}"#).contains("format_version 2"));
        assert!(err(r#"{"format":"memscope","format_version":1}"#).contains("missing field"));
        let deep = "[".repeat(100_000);
        assert!(!err(&deep).is_empty());
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let e = err(r#"{"format":"memscope","format_version":1} xyz"#);
        assert!(!e.is_empty());
    }
}
