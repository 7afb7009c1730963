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
    /// A successful `realloc(p, n > 0)` in one slot (see [`OneSlotRealloc`]):
    /// what [`Kind::ReallocFrom`] + [`Kind::ReallocTo`] say, in half the
    /// ring traffic (a growing buffer reallocates often).
    ReallocOne = 11,
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
            11 => Kind::ReallocOne,
            _ => return None,
        })
    }

    /// The `kind` string of an allocation record born from this event.
    pub fn record_name(self) -> &'static str {
        match self {
            Kind::Malloc => "malloc",
            Kind::Calloc => "calloc",
            Kind::Realloc | Kind::ReallocTo | Kind::ReallocFrom | Kind::ReallocOne => "realloc",
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

/// The two address words of a [`Kind::ReallocOne`] slot: `ptr` holds the new
/// block's address in its low 48 bits and the call site's low 16 bits above;
/// `aux` the old block's address and the site's high 16 bits. Every address
/// `malloc` hands out on x86_64 fits 48 bits (short of 5-level paging's
/// upper half); a realloc whose addresses do not takes two slots instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneSlotRealloc {
    pub old: u64,
    pub new: u64,
    pub site: u32,
}

const ADDR_BITS: u32 = 48;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;

impl OneSlotRealloc {
    /// The slot's `(ptr, aux)` words, or `None` when an address needs more
    /// than 48 bits or the site more than 32.
    #[inline(always)]
    pub fn pack(old: u64, new: u64, site: u64) -> Option<(u64, u64)> {
        if (old | new) >> ADDR_BITS != 0 || site >> 32 != 0 {
            return None;
        }
        Some((new | (site & 0xffff) << ADDR_BITS, old | (site >> 16) << ADDR_BITS))
    }

    #[inline(always)]
    pub fn unpack(ptr: u64, aux: u64) -> OneSlotRealloc {
        OneSlotRealloc {
            old: aux & ADDR_MASK,
            new: ptr & ADDR_MASK,
            site: ((ptr >> ADDR_BITS) | (aux >> ADDR_BITS) << 16) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_slot_realloc_round_trips_and_refuses_what_does_not_fit() {
        let cases = [
            (0x5555_0000_1230, 0x7fff_ffff_fff0, 0xdead_beef),
            (ADDR_MASK, 1, u32::MAX as u64),
            (0x10, 0x20, 0),
        ];
        for (old, new, site) in cases {
            let (ptr, aux) = OneSlotRealloc::pack(old, new, site).unwrap();
            let got = OneSlotRealloc::unpack(ptr, aux);
            assert_eq!((got.old, got.new, got.site as u64), (old, new, site));
        }
        assert_eq!(OneSlotRealloc::pack(1 << 48, 0x10, 1), None);
        assert_eq!(OneSlotRealloc::pack(0x10, 0xff00_0000_0000_0010, 1), None);
        assert_eq!(OneSlotRealloc::pack(0x10, 0x20, 1 << 32), None);
        assert_eq!(Kind::from_u8(Kind::ReallocOne as u8), Some(Kind::ReallocOne));
    }
}
