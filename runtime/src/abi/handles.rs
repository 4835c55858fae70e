//! Generational handle tables: a handle is (generation << 32 | slot + 1), so a destroyed
//! object's handle, a handle of another type, or a made-up number is never mistaken for
//! a live object.

use std::sync::{Arc, Mutex};

/// The last generation a slot may carry (24 bits; the top 8 bits hold the table's tag).
const GENERATION_MAX: u32 = 0x00ff_ffff;

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

#[derive(Debug)]
pub struct HandleTable<T> {
    /// Distinguishes tables, so one type's handle is invalid in another's table.
    tag: u8,
    slots: Mutex<Vec<Slot<T>>>,
}

impl<T> HandleTable<T> {
    pub const fn new(tag: u8) -> Self {
        Self {
            tag,
            slots: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot<T>>> {
        // A panic while holding the lock cannot leave the table half-updated (every
        // update is a single assignment), so a poisoned lock is still consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, value: T) -> u64 {
        let mut slots = self.lock();
        let value = Some(Arc::new(value));
        // A slot whose 24-bit generation is used up is retired rather than wrapped, so
        // a handle, once destroyed, is never valid again.
        let free = slots
            .iter()
            .position(|s| s.value.is_none() && s.generation < GENERATION_MAX);
        let index = match free {
            Some(i) => {
                slots[i].generation += 1;
                slots[i].value = value;
                i
            }
            None => {
                slots.push(Slot {
                    generation: 1,
                    value,
                });
                slots.len() - 1
            }
        };
        let generation = (u64::from(self.tag) << 24) | u64::from(slots[index].generation);
        (generation << 32) | (index as u64 + 1)
    }

    fn locate(&self, handle: u64) -> Option<(usize, u32)> {
        let index = (handle & 0xffff_ffff).checked_sub(1)? as usize;
        let generation = handle >> 32;
        if generation >> 24 != u64::from(self.tag) {
            return None;
        }
        Some((index, (generation & 0x00ff_ffff) as u32))
    }

    pub fn get(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.locate(handle)?;
        let slots = self.lock();
        let s = slots.get(index)?;
        (s.generation == generation)
            .then(|| s.value.clone())
            .flatten()
    }

    pub fn remove(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.locate(handle)?;
        let mut slots = self.lock();
        let s = slots.get_mut(index)?;
        if s.generation != generation {
            return None;
        }
        s.value.take()
    }

    /// Removes every object `pred` selects (children of a destroyed parent) and returns
    /// them with their handles; they are dropped by the caller, after the table is
    /// unlocked (a drop may take time: a session's compositor thread is joined). `pred`
    /// runs under the table's lock: it must take no other lock.
    pub fn remove_where(&self, pred: impl Fn(&T) -> bool) -> Vec<(u64, Arc<T>)> {
        let mut removed = Vec::new();
        let mut slots = self.lock();
        for (i, s) in slots.iter_mut().enumerate() {
            if s.value.as_deref().is_some_and(&pred) {
                let g = (u64::from(self.tag) << 24) | u64::from(s.generation);
                removed.extend(s.value.take().map(|v| ((g << 32) | (i as u64 + 1), v)));
            }
        }
        removed
    }

    /// The live objects with their handles (a snapshot: `f` runs without the lock).
    pub fn for_each_handle(&self, mut f: impl FnMut(u64, &T)) {
        let live: Vec<(u64, Arc<T>)> = {
            let slots = self.lock();
            slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let g = (u64::from(self.tag) << 24) | u64::from(s.generation);
                    s.value.clone().map(|v| ((g << 32) | (i as u64 + 1), v))
                })
                .collect()
        };
        for (h, v) in live {
            f(h, &v);
        }
    }

    /// The live objects (a snapshot: `f` runs without the lock).
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        self.for_each_handle(|_, v| f(v));
    }

    pub fn len(&self) -> usize {
        self.lock().iter().filter(|s| s.value.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_foreign_and_made_up_handles_are_rejected() {
        let a: HandleTable<u32> = HandleTable::new(1);
        let b: HandleTable<u32> = HandleTable::new(2);
        let h = a.insert(7);
        assert_eq!(*a.get(h).unwrap(), 7);
        assert!(b.get(h).is_none(), "another table's handle");
        assert!(a.get(0).is_none() && a.get(12345).is_none());
        assert_eq!(*a.remove(h).unwrap(), 7);
        assert!(a.get(h).is_none(), "destroyed");
        let h2 = a.insert(8);
        assert_ne!(h, h2, "the slot is reused under a new generation");
        assert!(a.get(h).is_none());
        assert_eq!(*a.get(h2).unwrap(), 8);
        assert!(a.remove(h).is_none());
        assert_eq!(a.len(), 1);
        let mut seen = Vec::new();
        a.for_each_handle(|h, v| seen.push((h, *v)));
        assert_eq!(seen, vec![(h2, 8)], "handles as `insert` made them");
        let removed = a.remove_where(|v| *v == 8);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, h2, "removed with the handle it had");
        assert!(a.is_empty());
    }

    #[test]
    fn a_used_up_slot_is_retired_not_wrapped() {
        let a: HandleTable<u32> = HandleTable::new(3);
        let first = a.insert(1);
        a.remove(first);
        a.lock()[0].generation = GENERATION_MAX;
        let h = a.insert(2);
        assert_ne!(h & 0xffff_ffff, first & 0xffff_ffff, "a new slot");
        assert!(a.get(first).is_none());
        assert_eq!(*a.get(h).unwrap(), 2);
    }
}
