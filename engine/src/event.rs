//! The fixed-size event the hot path records.

/// What happened. Stored in 8 bits of a slot's `meta` word.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Malloc = 0,
    Calloc = 1,
    /// `realloc(NULL, n)` / `reallocarray(NULL, …)`: an allocation.
    Realloc = 2,
    /// posix_memalign, aligned_alloc, memalign.
    Aligned = 3,
    Valloc = 4,
    Pvalloc = 5,
    Free = 6,
    /// First half of a successful `realloc(p, n > 0)`: `ptr` is the old block.
    /// Always published together with the [`Kind::ReallocTo`] that follows.
    ReallocFrom = 7,
    /// Second half: `ptr` is the new block, `size` its requested size.
    ReallocTo = 8,
    /// A variable named with `track_var!` starts: `aux` is its id in
    /// [`crate::vars`], `ptr`/`size` the heap block it owns (0 if none).
    VarBirth = 9,
    /// That variable is dropped: `aux` is its id.
    VarDeath = 10,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            0 => Kind::Malloc,
            1 => Kind::Calloc,
            2 => Kind::Realloc,
            3 => Kind::Aligned,
            4 => Kind::Valloc,
            5 => Kind::Pvalloc,
            6 => Kind::Free,
            7 => Kind::ReallocFrom,
            8 => Kind::ReallocTo,
            9 => Kind::VarBirth,
            10 => Kind::VarDeath,
            _ => return None,
        })
    }

    /// The `kind` string of an allocation record born from this event.
    pub fn record_name(self) -> &'static str {
        match self {
            Kind::Malloc => "malloc",
            Kind::Calloc => "calloc",
            Kind::Realloc | Kind::ReallocTo | Kind::ReallocFrom => "realloc",
            Kind::Aligned => "aligned",
            Kind::Valloc => "valloc",
            Kind::Pvalloc => "pvalloc",
            Kind::Free => "free",
            Kind::VarBirth | Kind::VarDeath => "variable",
        }
    }
}

/// An event as read back from a ring (timestamps still in clock ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent {
    pub ts: u64,
    pub ptr: u64,
    /// Call-site id for allocations; unused otherwise.
    pub aux: u64,
    pub size: u64,
    pub kind: Kind,
}

impl RawEvent {
    pub fn decode(ts: u64, ptr: u64, aux: u64, meta: u64) -> Option<RawEvent> {
        let kind = Kind::from_u8((meta >> 48) as u8)?;
        Some(RawEvent {
            ts,
            ptr,
            aux,
            size: meta & ((1 << 48) - 1),
            kind,
        })
    }
}
