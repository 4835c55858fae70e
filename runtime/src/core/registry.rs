//! The one handle registry: every OpenXR handle the runtime hands out, of every kind.
//!
//! A handle is `(tag << 56) | (generation << 32) | (slot + 1)`: the tag names the object's
//! kind, so a handle of one kind is never taken for another; the 24-bit generation
//! changes each time a slot is reused, and a slot whose generation is used up is retired
//! rather than wrapped, so a destroyed object's handle is never valid again.
//!
//! The registry owns only instances (the roots: the application owns them through their
//! handles). Every other object is owned by its parent in the tree ([`Children`]) and
//! registered weakly: when its parent is dropped, its handle stops resolving.
//!
//! This is the one process-wide table the loader contract needs (handles arrive as bare
//! numbers). Its lock is a leaf: nothing else is locked while it is held, and no
//! object is dropped under it.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

/// The last generation a slot may carry.
const GENERATION_MAX: u32 = 0x00ff_ffff;

/// The kinds of object a handle can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Instance = 1,
    Session = 2,
    Space = 3,
    Swapchain = 4,
    ActionSet = 5,
    Action = 6,
    Messenger = 7,
}

type Object = dyn Any + Send + Sync;

enum Held {
    /// A root, owned by the registry until it is removed.
    Owned(Arc<Object>),
    /// Owned by its parent.
    Weak(Weak<Object>),
}

struct Slot {
    generation: u32,
    kind: Option<Kind>,
    held: Option<Held>,
}

impl Slot {
    fn live(&self) -> Option<Arc<Object>> {
        match self.held.as_ref()? {
            Held::Owned(a) => Some(a.clone()),
            Held::Weak(w) => w.upgrade(),
        }
    }

    fn free(&self) -> bool {
        match &self.held {
            None => true,
            Some(Held::Owned(_)) => false,
            Some(Held::Weak(w)) => w.strong_count() == 0,
        }
    }
}

pub struct Registry {
    slots: Mutex<Vec<Slot>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.lock();
        f.debug_struct("Registry")
            .field("slots", &slots.len())
            .field("live", &slots.iter().filter(|s| !s.free()).count())
            .finish()
    }
}

/// The registry of this process.
pub static REGISTRY: Registry = Registry::new();

fn handle(kind: Kind, generation: u32, index: usize) -> u64 {
    (u64::from(kind as u8) << 56) | (u64::from(generation) << 32) | (index as u64 + 1)
}

fn split(h: u64) -> Option<(u8, u32, usize)> {
    let index = (h & 0xffff_ffff).checked_sub(1)? as usize;
    Some(((h >> 56) as u8, ((h >> 32) & 0x00ff_ffff) as u32, index))
}

impl Registry {
    pub const fn new() -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // Every update is a single assignment: a poisoned lock is still consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, kind: Kind, held: Held) -> u64 {
        let mut slots = self.lock();
        let free = slots
            .iter()
            .position(|s| s.free() && s.generation < GENERATION_MAX);
        let index = match free {
            Some(i) => {
                slots[i].generation += 1;
                i
            }
            None => {
                slots.push(Slot {
                    generation: 0,
                    kind: None,
                    held: None,
                });
                slots.len() - 1
            }
        };
        let s = &mut slots[index];
        if s.generation == 0 {
            s.generation = 1;
        }
        s.kind = Some(kind);
        // A dead weak entry replaced here drops nothing (its object is gone).
        s.held = Some(held);
        handle(kind, s.generation, index)
    }

    /// Registers a root the registry owns until [`Registry::remove`].
    pub fn insert_owned<T: Any + Send + Sync>(&self, kind: Kind, value: Arc<T>) -> u64 {
        self.insert(kind, Held::Owned(value))
    }

    /// Registers an object its parent owns.
    pub fn insert_weak<T: Any + Send + Sync>(&self, kind: Kind, value: &Arc<T>) -> u64 {
        let arc: Arc<Object> = value.clone();
        self.insert(kind, Held::Weak(Arc::downgrade(&arc)))
    }

    /// The live object of `kind` that `h` names.
    pub fn get<T: Any + Send + Sync>(&self, kind: Kind, h: u64) -> Option<Arc<T>> {
        let (tag, generation, index) = split(h)?;
        if tag != kind as u8 {
            return None;
        }
        let obj = {
            let slots = self.lock();
            let s = slots.get(index)?;
            if s.generation != generation || s.kind != Some(kind) {
                return None;
            }
            s.live()?
        };
        obj.downcast::<T>().ok()
    }

    /// Unregisters `h`; its object (still alive: a root, or one its parent holds) is
    /// returned for the caller to drop or detach, outside the registry's lock.
    pub fn remove<T: Any + Send + Sync>(&self, kind: Kind, h: u64) -> Option<Arc<T>> {
        let (tag, generation, index) = split(h)?;
        if tag != kind as u8 {
            return None;
        }
        let held = {
            let mut slots = self.lock();
            let s = slots.get_mut(index)?;
            if s.generation != generation || s.kind != Some(kind) {
                return None;
            }
            let live = s.live()?;
            s.held = None;
            live
        };
        held.downcast::<T>().ok()
    }

    /// Live objects of `kind` (leak tests, and delivering to every instance).
    pub fn live<T: Any + Send + Sync>(&self, kind: Kind) -> Vec<Arc<T>> {
        let objs: Vec<Arc<Object>> = {
            let slots = self.lock();
            slots
                .iter()
                .filter(|s| s.kind == Some(kind))
                .filter_map(Slot::live)
                .collect()
        };
        objs.into_iter()
            .filter_map(|o| o.downcast::<T>().ok())
            .collect()
    }

    pub fn count(&self, kind: Kind) -> usize {
        let slots = self.lock();
        slots
            .iter()
            .filter(|s| s.kind == Some(kind) && !s.free())
            .count()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// The objects of one kind a parent owns, with their handles. Removing one (or dropping
/// the parent) drops it; its handle then no longer resolves.
pub struct Children<T> {
    kind: Kind,
    items: Mutex<Vec<(u64, Arc<T>)>>,
}

impl<T> std::fmt::Debug for Children<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.items.lock().map(|v| v.len()).unwrap_or(0);
        f.debug_struct("Children")
            .field("kind", &self.kind)
            .field("len", &n)
            .finish()
    }
}

impl<T: Any + Send + Sync> Children<T> {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            items: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Arc<T>)>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adopts `value` and registers it; returns its handle.
    pub fn adopt(&self, value: T) -> (u64, Arc<T>) {
        let value = Arc::new(value);
        let h = REGISTRY.insert_weak(self.kind, &value);
        self.lock().push((h, value.clone()));
        (h, value)
    }

    /// Unregisters and detaches the child `h`; the caller drops it (outside any lock).
    pub fn remove(&self, h: u64) -> Option<Arc<T>> {
        let obj = REGISTRY.remove::<T>(self.kind, h)?;
        self.lock().retain(|(c, _)| *c != h);
        Some(obj)
    }

    /// Unregisters and detaches every child, with their handles.
    pub fn drain(&self) -> Vec<(u64, Arc<T>)> {
        let items = std::mem::take(&mut *self.lock());
        for (h, _) in &items {
            REGISTRY.remove::<T>(self.kind, *h);
        }
        items
    }

    /// A snapshot of the children (the lock is not held while the caller looks).
    pub fn snapshot(&self) -> Vec<(u64, Arc<T>)> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_of_another_kind_stale_or_made_up_are_rejected() {
        let r = Registry::new();
        let h = r.insert_owned(Kind::Instance, Arc::new(7u32));
        assert_eq!(*r.get::<u32>(Kind::Instance, h).unwrap(), 7);
        assert!(
            r.get::<u32>(Kind::Session, h).is_none(),
            "another kind's handle"
        );
        assert!(r.get::<u64>(Kind::Instance, h).is_none(), "another type");
        assert!(r.get::<u32>(Kind::Instance, 0).is_none());
        assert!(r.get::<u32>(Kind::Instance, 12345).is_none());
        assert_eq!(*r.remove::<u32>(Kind::Instance, h).unwrap(), 7);
        assert!(r.get::<u32>(Kind::Instance, h).is_none(), "destroyed");
        let h2 = r.insert_owned(Kind::Session, Arc::new(8u32));
        assert_ne!(h, h2, "the slot is reused under a new generation and kind");
        assert_eq!(h & 0xffff_ffff, h2 & 0xffff_ffff, "same slot");
        assert!(r.get::<u32>(Kind::Instance, h).is_none());
        assert!(r.remove::<u32>(Kind::Instance, h).is_none());
        assert_eq!(r.count(Kind::Session), 1);
    }

    #[test]
    fn a_child_goes_with_its_parent() {
        struct Parent {
            children: Children<u32>,
        }
        let p = Arc::new(Parent {
            children: Children::new(Kind::Swapchain),
        });
        let ph = REGISTRY.insert_owned(Kind::Session, p.clone());
        let (c1, _) = p.children.adopt(1);
        let (c2, _) = p.children.adopt(2);
        assert_eq!(*REGISTRY.get::<u32>(Kind::Swapchain, c1).unwrap(), 1);
        assert_eq!(*p.children.remove(c1).unwrap(), 1);
        assert!(
            REGISTRY.get::<u32>(Kind::Swapchain, c1).is_none(),
            "removed"
        );
        assert_eq!(*REGISTRY.get::<u32>(Kind::Swapchain, c2).unwrap(), 2);
        drop(p);
        drop(REGISTRY.remove::<Parent>(Kind::Session, ph));
        assert!(
            REGISTRY.get::<u32>(Kind::Swapchain, c2).is_none(),
            "a dropped parent's child no longer resolves"
        );
    }

    #[test]
    fn a_used_up_slot_is_retired_not_wrapped() {
        let r = Registry::new();
        let first = r.insert_owned(Kind::Instance, Arc::new(1u32));
        r.remove::<u32>(Kind::Instance, first);
        r.lock()[0].generation = GENERATION_MAX;
        let h = r.insert_owned(Kind::Instance, Arc::new(2u32));
        assert_ne!(h & 0xffff_ffff, first & 0xffff_ffff, "a new slot");
        assert!(r.get::<u32>(Kind::Instance, first).is_none());
        assert_eq!(*r.get::<u32>(Kind::Instance, h).unwrap(), 2);
    }
}
