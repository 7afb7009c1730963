//! The collector's events: births, deaths, reallocations, transient blocks
//! (freed by their thread's next event) and the reorder repairs described
//! in the module docs of [`super`].

use super::{Block, Collector, OrphanFree, Recent, Record, VarState};
use crate::event::Kind;
use memscope_format::hist;

impl Collector {
    /// A successful malloc/calloc/aligned/valloc/pvalloc/realloc(NULL).
    pub fn alloc(&mut self, ts: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        if self.orphan_may_match(ts) {
            if let Some(o) = self.orphans.remove(&ptr) {
                if o.thread != thread && ts.saturating_sub(o.ts) <= self.reorder_window {
                    return self.alloc_seen_after_its_free(ts, ptr, size, kind, thread, site, o);
                }
            }
        }
        self.totals.allocations += 1;
        self.totals.allocated_bytes += size;
        self.birth(ts, ptr, size, kind, thread, site, false);
    }

    /// Common part of every block's birth.
    #[allow(clippy::too_many_arguments)]
    fn birth(&mut self, ts: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32, by_realloc: bool) {
        let block = Block {
            size,
            birth: ts,
            site,
            thread,
            kind: kind as u8,
        };
        if self.recent.is_some() {
            let old = self.recent;
            self.insert_live(ts, old.ptr, old.block);
        }
        self.recent = Recent { ptr, block };
        self.start_in_site(size, site, by_realloc);
        let t = &mut self.threads[thread as usize];
        t.allocations += 1;
        t.bytes += size;
        t.live_bytes += size;
        self.live_blocks += !by_realloc as u64;
        self.live_bytes += size;
        if self.live_bytes > self.peak.bytes {
            self.new_peak(ts);
        }
        self.timeline.record(ts, self.live_bytes);
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc_seen_after_its_free(
        &mut self,
        ts: u64,
        ptr: u64,
        size: u64,
        kind: Kind,
        thread: u32,
        site: u32,
        o: OrphanFree,
    ) {
        // The free was counted as unmatched; it was this block's.
        self.totals.unmatched_frees -= 1;
        self.totals.allocations += 1;
        self.totals.allocated_bytes += size;
        self.birth(ts, ptr, size, kind, thread, site, false);
        if o.by_realloc {
            // That realloc's new block was counted as an allocation because
            // its old block was unknown; now it is known to be a realloc.
            // Its block count was raised then, and a realloc keeps the count.
            self.totals.allocations -= 1;
            self.totals.reallocs += 1;
            self.live_blocks -= 1;
            self.death(ts, ptr, o.thread, Death::Realloc);
        } else {
            self.death(ts, ptr, o.thread, Death::Free);
        }
    }

    /// A block born at `born` and freed at `died` by the same thread, with no
    /// event of that thread in between: the common short-lived case, applied
    /// in one step without touching the live table. The result is exactly
    /// what `alloc` then `free` give: when the block would raise the peak, or
    /// might pair with a reordered free, it takes that path.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn transient(&mut self, born: u64, died: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        if self.live_bytes + size > self.peak.bytes || self.orphan_may_match(born) || !self.named_blocks.is_empty() {
            return self.transient_checked(born, died, ptr, size, kind, thread, site);
        }
        self.transient_counts(born, died, ptr, size, kind, thread, site);
    }

    /// `transient` when the block may raise the peak, pair with a reordered
    /// free or belong to a variable: the exact two-step path where needed.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn transient_checked(&mut self, born: u64, died: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        if self.live_bytes + size > self.peak.bytes
            || (self.orphan_may_match(born) && self.orphans.contains_key(&ptr))
            || self.named_blocks.contains_key(&ptr)
        {
            self.alloc(born, ptr, size, kind, thread, site);
            self.free(died, ptr, thread);
        } else {
            self.transient_counts(born, died, ptr, size, kind, thread, site);
        }
    }

    /// Everything an alloc + free pair changes, when no peak is crossed:
    /// the process and site at-peak values cannot change, and every live
    /// count comes back to where it was.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn transient_counts(&mut self, born: u64, died: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        let died = died.max(born);
        let t = &mut self.totals;
        t.allocations += 1;
        t.frees += 1;
        t.allocated_bytes += size;
        t.freed_bytes += size;
        let th = &mut self.threads[thread as usize];
        th.allocations += 1;
        th.frees += 1;
        th.bytes += size;
        let life = died - born;
        let bucket = hist::bucket_of(life);
        let s = self.sites.get_mut(site);
        s.allocations += 1;
        s.bytes += size;
        s.note_own_peak(s.live_bytes + size, s.live_blocks + 1);
        s.lifetimes.record_in(bucket, life);
        self.lifetime_counts[bucket] += 1;
        self.lifetime_bytes[bucket] += size;
        self.timeline.record(born, self.live_bytes + size);
        self.timeline.record(died, self.live_bytes);
        self.freed.offer(Record {
            ptr,
            size,
            kind: kind as u8,
            thread,
            site,
            birth: born,
            death: died,
            inherited: born < self.inherited_before,
            var: 0,
        });
    }

    /// Could an allocation at `ts` pair with an orphan free?
    #[inline(always)]
    fn orphan_may_match(&self, ts: u64) -> bool {
        !self.orphans.is_empty() && ts <= self.newest_orphan.saturating_add(self.reorder_window)
    }

    /// Remembers a free of an unknown address (see the module docs).
    #[cold]
    #[inline(never)]
    fn note_orphan(&mut self, ptr: u64, orphan: OrphanFree) {
        self.totals.unmatched_frees += 1;
        self.newest_orphan = self.newest_orphan.max(orphan.ts);
        self.orphans.insert(ptr, orphan);
        if self.orphans.len() > 64 {
            let (w, now) = (self.reorder_window, orphan.ts);
            self.orphans.retain(|_, o| now.saturating_sub(o.ts) <= w);
        }
    }

    /// A free (or realloc(p, 0)) of `ptr`.
    pub fn free(&mut self, ts: u64, ptr: u64, thread: u32) {
        if self.death(ts, ptr, thread, Death::Free).is_none() {
            self.note_orphan(
                ptr,
                OrphanFree {
                    ts,
                    thread,
                    by_realloc: false,
                },
            );
        }
    }

    /// A successful realloc(old, size > 0) that returned `new`.
    pub fn realloc(&mut self, ts: u64, old: u64, new: u64, size: u64, thread: u32, site: u32) {
        let r = &self.recent;
        if r.ptr == old
            && old != 0
            && r.block.thread == thread
            && r.block.birth <= ts
            && r.block.birth >= self.inherited_before
            && self.displaced.is_empty()
            && self.named_blocks.is_empty()
        {
            return self.realloc_recent(ts, new, size, thread, site);
        }
        if let Some(var) = self.death(ts, old, thread, Death::Realloc) {
            self.totals.reallocs += 1;
            self.totals.allocated_bytes += size;
            self.birth(ts, new, size, Kind::Realloc, thread, site, true);
            if var != 0 {
                // The variable owns the moved buffer now (a growing Vec).
                self.named_blocks.insert(new, var);
            }
        } else {
            self.note_orphan(
                old,
                OrphanFree {
                    ts,
                    thread,
                    by_realloc: true,
                },
            );
            self.alloc(ts, new, size, Kind::Realloc, thread, site);
        }
    }

    /// A realloc of the recent block by the thread that allocated it (a
    /// growing buffer: each step reallocates the block the previous one
    /// returned). Exactly what `death` then `birth` do, in one pass: no
    /// table, no variable, no inherited block is involved, both ends have
    /// the same timestamp, and the timeline's bucket sees only the final
    /// value (the one in between, the old block gone, is never above it).
    fn realloc_recent(&mut self, ts: u64, new: u64, size: u64, thread: u32, site: u32) {
        let old = std::mem::replace(
            &mut self.recent,
            Recent {
                ptr: new,
                block: Block {
                    size,
                    birth: ts,
                    site,
                    thread,
                    kind: Kind::Realloc as u8,
                },
            },
        );
        let b = old.block;
        self.totals.freed_bytes += b.size;
        self.totals.reallocs += 1;
        self.totals.allocated_bytes += size;
        self.leaving_peak();
        self.end_in_site(&b, ts);
        self.freed.offer(Record {
            ptr: old.ptr,
            size: b.size,
            kind: b.kind,
            thread,
            site: b.site,
            birth: b.birth,
            death: ts,
            inherited: false,
            var: 0,
        });
        self.start_in_site(size, site, true);
        let t = &mut self.threads[thread as usize];
        t.live_bytes = t.live_bytes.saturating_sub(b.size);
        t.allocations += 1;
        t.bytes += size;
        t.live_bytes += size;
        self.live_bytes = self.live_bytes.saturating_sub(b.size) + size;
        if self.live_bytes > self.peak.bytes {
            self.new_peak(ts);
        }
        self.timeline.record(ts, self.live_bytes);
    }

    #[inline(never)]
    fn insert_live(&mut self, ts: u64, ptr: u64, block: Block) {
        if let Some(old) = self.live.insert(ptr, block) {
            // The free of `old` is still on its way (see module docs).
            if let Some(older) = self.displaced.insert(ptr, old) {
                self.complete_untracked(older, ts);
            }
        }
    }

    /// Removes the block a free of `ptr` by `thread` ends: the oldest one at
    /// that address ([`Recent::NONE`] if there is none; not an `Option`, for
    /// the reason [`Recent`] gives).
    #[inline(always)]
    fn take_block(&mut self, ptr: u64, thread: u32) -> Recent {
        if !self.displaced.is_empty() {
            if let Some(block) = self.displaced.remove(&ptr) {
                return Recent { ptr, block };
            }
        }
        if self.recent.ptr == ptr && ptr != 0 {
            // An older block at the same address whose free is still on
            // its way goes first. Such a free comes from another thread:
            // the allocating thread's own program order rules it out.
            if self.recent.block.thread != thread {
                if let Some(block) = self.live.remove(ptr) {
                    return Recent { ptr, block };
                }
            }
            return std::mem::replace(&mut self.recent, Recent::NONE);
        }
        match self.live.remove(ptr) {
            Some(block) => Recent { ptr, block },
            None => Recent::NONE,
        }
    }

    /// Moves the recent block into the table (before anything that walks it).
    pub(super) fn flush_recent(&mut self) {
        if self.recent.is_some() {
            let r = std::mem::replace(&mut self.recent, Recent::NONE);
            self.insert_live(r.block.birth, r.ptr, r.block);
        }
    }

    /// Ends the block at `ptr`: `None` if there is none, else the id of the
    /// variable that owned it (0: none).
    fn death(&mut self, ts: u64, ptr: u64, thread: u32, how: Death) -> Option<u64> {
        let taken = self.take_block(ptr, thread);
        if !taken.is_some() {
            return None;
        }
        let block = taken.block;
        let var = if self.named_blocks.is_empty() {
            0
        } else {
            self.named_blocks.remove(&ptr).unwrap_or(0)
        };
        let ts = ts.max(block.birth);
        if let Death::Free = how {
            self.totals.frees += 1;
            self.live_blocks -= 1;
            self.threads[thread as usize].frees += 1;
        }
        self.totals.freed_bytes += block.size;
        self.release(&block, ts);
        let record = Record {
            ptr,
            size: block.size,
            kind: block.kind,
            thread: block.thread,
            site: block.site,
            birth: block.birth,
            death: ts,
            inherited: block.birth < self.inherited_before,
            var,
        };
        if var == 0 {
            self.freed.offer(record);
        } else {
            self.named_freed.push(record);
        }
        Some(var)
    }

    /// A `track_var!` variable starts owning `ptr` (0: no heap block).
    pub fn var_birth(&mut self, ts: u64, id: u64, ptr: u64, size: u64, thread: u32) {
        self.var_index.insert(id, self.vars.len());
        self.vars.push(VarState {
            id,
            ptr,
            size,
            thread,
            birth: ts,
            death: None,
        });
        if ptr != 0 && self.has_block(ptr) {
            self.named_blocks.insert(ptr, id);
        }
    }

    /// A `track_var!` variable is dropped.
    pub fn var_death(&mut self, ts: u64, id: u64) {
        if let Some(&i) = self.var_index.get(&id) {
            let v = &mut self.vars[i];
            v.death.get_or_insert(ts.max(v.birth));
        }
    }

    fn has_block(&self, ptr: u64) -> bool {
        (self.recent.is_some() && self.recent.ptr == ptr)
            || self.live.contains(ptr)
            || self.displaced.contains_key(&ptr)
    }

    /// What any end of a block changes: live bytes (process, site, owner
    /// thread), the lifetime histograms, the timeline. `ts >= block.birth`.
    #[inline]
    fn release(&mut self, block: &Block, ts: u64) {
        self.leaving_peak();
        if block.birth < self.inherited_before {
            // The parent's block: the child's sites, threads and histogram
            // count only the child's own blocks.
            self.live_bytes = self.live_bytes.saturating_sub(block.size);
            self.timeline.record(ts, self.live_bytes);
            return;
        }
        let owner = &mut self.threads[block.thread as usize];
        owner.live_bytes = owner.live_bytes.saturating_sub(block.size);
        self.end_in_site(block, ts);
        self.live_bytes = self.live_bytes.saturating_sub(block.size);
        self.timeline.record(ts, self.live_bytes);
    }

    /// What a block's end changes in its site and in the lifetime
    /// histograms (after [`Collector::leaving_peak`]).
    #[inline(always)]
    fn end_in_site(&mut self, block: &Block, ts: u64) {
        let life = ts - block.birth;
        let bucket = hist::bucket_of(life);
        let epoch = self.peak_epoch;
        let s = self.sites.get_mut(block.site);
        Self::checkpoint_at_peak(s, epoch);
        s.live_blocks -= 1;
        s.live_bytes = s.live_bytes.saturating_sub(block.size);
        s.lifetimes.record_in(bucket, life);
        self.lifetime_counts[bucket] += 1;
        self.lifetime_bytes[bucket] += block.size;
    }

    /// What a block's birth changes in its site.
    #[inline(always)]
    fn start_in_site(&mut self, size: u64, site: u32, by_realloc: bool) {
        let epoch = self.peak_epoch;
        let s = self.sites.get_mut(site);
        if by_realloc {
            s.reallocs += 1;
        } else {
            s.allocations += 1;
        }
        s.bytes += size;
        Self::checkpoint_at_peak(s, epoch);
        s.live_blocks += 1;
        s.live_bytes += size;
        s.note_own_peak(s.live_bytes, s.live_blocks);
    }

    /// A displaced block whose free never came: its address was reused, so it
    /// was freed by a path memscope does not see.
    fn complete_untracked(&mut self, block: Block, ts: u64) {
        self.totals.untracked_frees += 1;
        self.live_blocks -= 1;
        self.release(&block, ts.max(block.birth));
    }
}

#[derive(Clone, Copy)]
enum Death {
    Free,
    Realloc,
}
