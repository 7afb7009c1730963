//! One timeline entry: `[unix_ns, live_bytes]` as SPEC §3 requires, and a
//! third value where the producer sampled it, the process's resident bytes
//! (memscope extension, format version 2 still: SPEC §3 allows more values;
//! older files have two and read with `resident` absent).

use serde::de::{Error, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `(unix_ns, live_bytes, resident_bytes)`; `.0` and `.1` as the SPEC's pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelinePoint(pub u64, pub u64, pub Option<u64>);

impl TimelinePoint {
    /// The SPEC's pair, without the resident value.
    pub fn pair(self) -> (u64, u64) {
        (self.0, self.1)
    }
}

impl From<(u64, u64)> for TimelinePoint {
    fn from((t, live): (u64, u64)) -> Self {
        TimelinePoint(t, live, None)
    }
}

impl Serialize for TimelinePoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(if self.2.is_some() { 3 } else { 2 })?;
        t.serialize_element(&self.0)?;
        t.serialize_element(&self.1)?;
        if let Some(r) = self.2 {
            t.serialize_element(&r)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for TimelinePoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimelinePoint;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[unix_ns, live_bytes] or [unix_ns, live_bytes, resident_bytes]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<TimelinePoint, A::Error> {
                let t = a.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let live = a.next_element()?.ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let resident = a.next_element::<u64>()?;
                // Later values (none defined yet) are skipped.
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TimelinePoint(t, live, resident))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_and_three_values_read_and_write_back() {
        let two: Vec<TimelinePoint> = serde_json::from_str("[[1,2],[3,4,5],[6,7,8,9]]").unwrap();
        assert_eq!(
            two,
            vec![
                TimelinePoint(1, 2, None),
                TimelinePoint(3, 4, Some(5)),
                TimelinePoint(6, 7, Some(8))
            ]
        );
        assert_eq!(serde_json::to_string(&two).unwrap(), "[[1,2],[3,4,5],[6,7,8]]");
        assert!(serde_json::from_str::<Vec<TimelinePoint>>("[[1]]").is_err());
    }
}
