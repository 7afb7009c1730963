//! Per-call-site aggregates, by site id.
//!
//! An image's own table is a vector indexed by id: ids are dense (1, 2, …
//! in the order the image first saw its stacks). A `fork()` child's is not:
//! its sites count only its own blocks, but the ids it meets are the
//! parent's, spread up to the parent's last one. A shell's child that
//! allocates at sites 1,400 and 1,900 before it calls `exec` would grow a
//! 300 KB vector of empty sites, page by page, and copy it again for its
//! snapshot (~40 page faults per child of a shell loop). So a child's table
//! starts sparse — the sites it touched, and a map from id to slot — and
//! becomes a vector again once it holds many (a forked worker that goes on
//! for long pays no look-up per event).

use super::{AddrMap, Site};

/// Sites a sparse table holds before it becomes a vector.
const SPARSE_MAX: usize = 64;

#[derive(Debug, Clone)]
pub struct SiteTable {
    /// Dense: indexed by id. Sparse: in the order of first use.
    slots: Vec<Site>,
    /// Sparse only: id → slot, and each slot's id.
    index: Option<Sparse>,
}

#[derive(Debug, Clone, Default)]
struct Sparse {
    slot_of: AddrMap<u32>,
    ids: Vec<u32>,
}

impl SiteTable {
    /// An image's own table (site 0, "no backtrace", always present).
    pub fn dense() -> SiteTable {
        SiteTable {
            slots: vec![Site::default()],
            index: None,
        }
    }

    /// A `fork()` child's table: empty, and nothing allocated until its
    /// first site (allocating in the child writes to the parent's heap
    /// pages, each a page fault).
    pub fn sparse() -> SiteTable {
        SiteTable {
            slots: Vec::new(),
            index: Some(Sparse::default()),
        }
    }

    /// The site with this id, created empty on first use.
    #[inline(always)]
    pub fn get_mut(&mut self, id: u32) -> &mut Site {
        if self.index.is_none() {
            if id as usize >= self.slots.len() {
                self.grow(id);
            }
            return &mut self.slots[id as usize];
        }
        self.sparse_get_mut(id)
    }

    #[cold]
    fn grow(&mut self, id: u32) {
        self.slots.resize_with(id as usize + 1, Site::default);
    }

    #[inline(never)]
    fn sparse_get_mut(&mut self, id: u32) -> &mut Site {
        let Some(sparse) = self.index.as_mut() else {
            unreachable!("called for sparse tables only")
        };
        if let Some(&slot) = sparse.slot_of.get(&(id as u64)) {
            return &mut self.slots[slot as usize];
        }
        if self.slots.len() >= SPARSE_MAX {
            self.densify();
            return self.get_mut(id);
        }
        sparse.slot_of.insert(id as u64, self.slots.len() as u32);
        sparse.ids.push(id);
        self.slots.push(Site::default());
        self.slots.last_mut().expect("just pushed")
    }

    /// Turns a sparse table into a vector indexed by id.
    fn densify(&mut self) {
        let Some(sparse) = self.index.take() else { return };
        let len = sparse.ids.iter().max().map_or(0, |&m| m as usize + 1);
        let mut dense = Vec::with_capacity(len.max(1));
        dense.resize_with(len.max(1), Site::default);
        for (site, id) in std::mem::take(&mut self.slots).into_iter().zip(sparse.ids) {
            dense[id as usize] = site;
        }
        self.slots = dense;
    }

    /// Every site held, with its id (dense: in id order, empty ones too).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Site)> {
        let ids = self.index.as_ref().map(|s| &s.ids);
        self.slots
            .iter()
            .enumerate()
            .map(move |(slot, s)| (ids.map_or(slot as u32, |ids| ids[slot]), s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Site> {
        self.slots.iter_mut()
    }

    /// The site with this id, if held.
    pub fn get(&self, id: u32) -> Option<&Site> {
        match &self.index {
            None => self.slots.get(id as usize),
            Some(s) => s.slot_of.get(&(id as u64)).map(|&slot| &self.slots[slot as usize]),
        }
    }

    /// How many sites are held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl std::ops::Index<u32> for SiteTable {
    type Output = Site;

    fn index(&self, id: u32) -> &Site {
        self.get(id).unwrap_or_else(|| panic!("no call site {id} in the table"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_table_holds_only_what_it_was_asked_for_and_becomes_a_vector_when_it_fills() {
        let mut t = SiteTable::sparse();
        t.get_mut(1900).bytes += 10;
        t.get_mut(1400).bytes += 5;
        t.get_mut(1900).bytes += 1;
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.iter().map(|(id, s)| (id, s.bytes)).collect::<Vec<_>>(),
            vec![(1900, 11), (1400, 5)]
        );
        for id in 0..SPARSE_MAX as u32 {
            t.get_mut(id * 10).allocations += 1;
        }
        assert!(t.index.is_none(), "dense once it held {SPARSE_MAX} sites");
        assert_eq!(t.len(), 1901);
        assert_eq!(
            (t[1900].bytes, t[1400].bytes, t[1400].allocations, t[630].allocations),
            (11, 5, 0, 1)
        );
        let held: u64 = t.iter().map(|(_, s)| s.allocations).sum();
        assert_eq!(held, SPARSE_MAX as u64);
    }
}
