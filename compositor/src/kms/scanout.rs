//! Scanout buffers: a ring of framebuffers on the leased device, shared as dma-bufs.
//!
//! Each buffer is allocated on the display device (GBM, falling back to dumb buffers
//! when GBM cannot allocate there), exported as a read-write dma-buf (GBM's own export
//! is read-only, which renderers cannot import for writing), and added as a framebuffer —
//! with its format modifier where the driver takes modifiers.
//!
//! The ring tracks what the display is doing with every buffer: one is on screen, one
//! may be queued in a pending flip, the rest are free to render into. A buffer becomes
//! free only when a flip replaced it on screen, so nothing is ever written while it is
//! being scanned out.

use super::{Card, KmsError, fence};
use drm::buffer::{DrmFourcc, DrmModifier, Handle as BufferHandle, PlanarBuffer};
use drm::control::{Device as ControlDevice, FbCmd2Flags, dumbbuffer::DumbBuffer, framebuffer};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What the display is doing with a ring slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Free,
    /// Handed out for rendering.
    Writing,
    /// Committed in a flip that has not completed.
    Queued,
    /// Being scanned out.
    OnScreen,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    #[error("scanout slot {slot} is {actual:?}, expected {expected:?}")]
    WrongState {
        slot: usize,
        actual: Slot,
        expected: Slot,
    },
    #[error("scanout slot {0} does not exist")]
    NoSuchSlot(usize),
    #[error("no scanout buffer is free (all are on screen or queued)")]
    Exhausted,
}

/// The slot state machine, apart from the buffers (pure; unit-tested).
#[derive(Debug, Clone)]
pub struct RingState {
    slots: Vec<Slot>,
}

impl RingState {
    pub fn new(n: usize) -> Self {
        Self {
            slots: vec![Slot::Free; n],
        }
    }

    pub fn slot(&self, i: usize) -> Option<Slot> {
        self.slots.get(i).copied()
    }

    fn expect(&self, i: usize, expected: Slot) -> Result<(), RingError> {
        match self.slots.get(i) {
            None => Err(RingError::NoSuchSlot(i)),
            Some(&actual) if actual != expected => Err(RingError::WrongState {
                slot: i,
                actual,
                expected,
            }),
            Some(_) => Ok(()),
        }
    }

    /// A free slot for rendering, if any (the oldest-freed first would be nicer for
    /// caches; any free slot is correct).
    pub fn acquire(&mut self) -> Option<usize> {
        let i = self.slots.iter().position(|&s| s == Slot::Free)?;
        self.slots[i] = Slot::Writing;
        Some(i)
    }

    /// Whether [`RingState::acquire`] would find a slot.
    pub fn has_free(&self) -> bool {
        self.slots.contains(&Slot::Free)
    }

    /// The slot was committed in a flip.
    pub fn queue(&mut self, i: usize) -> Result<(), RingError> {
        self.expect(i, Slot::Writing)?;
        self.slots[i] = Slot::Queued;
        Ok(())
    }

    /// A rendered frame was dropped, or its commit failed: the slot is free again.
    pub fn cancel(&mut self, i: usize) -> Result<(), RingError> {
        match self.slots.get(i) {
            Some(Slot::Writing | Slot::Queued) => {
                self.slots[i] = Slot::Free;
                Ok(())
            }
            Some(&actual) => Err(RingError::WrongState {
                slot: i,
                actual,
                expected: Slot::Writing,
            }),
            None => Err(RingError::NoSuchSlot(i)),
        }
    }

    /// The flip carrying slot `i` completed: `i` is on screen, and the buffer it
    /// replaced is released.
    pub fn flipped(&mut self, i: usize) -> Result<(), RingError> {
        self.expect(i, Slot::Queued)?;
        for s in &mut self.slots {
            if *s == Slot::OnScreen {
                *s = Slot::Free;
            }
        }
        self.slots[i] = Slot::OnScreen;
        Ok(())
    }

    pub fn on_screen(&self) -> Option<usize> {
        self.slots.iter().position(|&s| s == Slot::OnScreen)
    }
}

enum Storage {
    /// Held for ownership: dropping the buffer object frees it.
    Gbm {
        _bo: gbm::BufferObject<()>,
    },
    Dumb(Option<DumbBuffer>),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::Gbm { .. } => "Gbm",
            Storage::Dumb(_) => "Dumb",
        })
    }
}

/// Which allocator a ring's buffers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    Gbm,
    Dumb,
}

/// One scanout buffer: storage on the display device, its framebuffer and a
/// read-write dma-buf.
#[derive(Debug)]
pub struct ScanoutBuffer {
    storage: Storage,
    handle: BufferHandle,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub format: DrmFourcc,
    pub modifier: Option<DrmModifier>,
    pub fb: framebuffer::Handle,
    dmabuf: OwnedFd,
}

impl PlanarBuffer for ScanoutBuffer {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    fn format(&self) -> DrmFourcc {
        self.format
    }
    fn modifier(&self) -> Option<DrmModifier> {
        self.modifier
    }
    fn pitches(&self) -> [u32; 4] {
        [self.stride, 0, 0, 0]
    }
    fn handles(&self) -> [Option<BufferHandle>; 4] {
        [Some(self.handle), None, None, None]
    }
    fn offsets(&self) -> [u32; 4] {
        [0; 4]
    }
}

impl ScanoutBuffer {
    /// The buffer as a read-write dma-buf (for renderers and CPU access).
    pub fn dmabuf(&self) -> BorrowedFd<'_> {
        self.dmabuf.as_fd()
    }

    /// Writes through a CPU mapping of the dma-buf, bracketed by `DMA_BUF_IOCTL_SYNC`.
    pub fn write_with<T>(&self, f: impl FnOnce(&mut [u8]) -> T) -> Result<T, KmsError> {
        self.with_mapping(fence::dma_buf_access::WRITE, f)
    }

    /// Reads through a CPU mapping of the dma-buf, bracketed by `DMA_BUF_IOCTL_SYNC`.
    pub fn read_with<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Result<T, KmsError> {
        self.with_mapping(fence::dma_buf_access::READ, |b| f(b))
    }

    fn with_mapping<T>(&self, access: u32, f: impl FnOnce(&mut [u8]) -> T) -> Result<T, KmsError> {
        let len = self.stride as usize * self.height as usize;
        let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
        // SAFETY: maps `len` bytes of our own dma-buf, shared; the mapping is unmapped
        // below before anything else can observe it, and no Rust reference to it
        // outlives `f`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                rustix::mm::MapFlags::SHARED,
                &self.dmabuf,
                0,
            )
        }
        .map_err(|e| KmsError::Ioctl {
            op: "mmap scanout dma-buf",
            source: e.into(),
        })?;
        // SAFETY: `ptr` is a fresh, writable mapping of exactly `len` bytes that nothing
        // else in this process aliases while the slice lives.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) };
        let result = fence::dma_buf_cpu_access(self.dmabuf.as_fd(), access, || f(bytes));
        // SAFETY: unmaps the mapping created above; `bytes` is no longer used.
        let _ = unsafe { rustix::mm::munmap(ptr, len) };
        result
    }
}

/// A ring of scanout buffers on one card (typically a lessee).
#[derive(Debug)]
pub struct ScanoutRing<'c> {
    card: &'c Card,
    buffers: Vec<ScanoutBuffer>,
    state: RingState,
    allocator: Allocator,
    // Declared last: GBM buffer objects above are destroyed before their device.
    gbm: Option<GbmDevice<'c>>,
}

struct GbmDevice<'c>(gbm::Device<BorrowedFd<'c>>);

impl std::fmt::Debug for GbmDevice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GbmDevice({})", self.0.backend_name())
    }
}

impl<'c> ScanoutRing<'c> {
    /// Allocates `n` (≥ 3) XRGB8888 buffers of `w`x`h` on `card`: GBM first, dumb buffers
    /// when GBM cannot allocate scanout buffers there.
    pub fn new(card: &'c Card, (w, h): (u32, u32), n: usize) -> Result<Self, KmsError> {
        assert!(n >= 3, "a scanout ring needs at least 3 buffers");
        let modifiers_ok =
            drm::Device::get_driver_capability(card, drm::DriverCapability::AddFB2Modifiers)
                .is_ok_and(|v| v != 0);
        let gbm = gbm::Device::new(card.as_fd()).ok();
        let mut ring = Self {
            card,
            buffers: Vec::new(),
            state: RingState::new(n),
            allocator: Allocator::Gbm,
            gbm: None,
        };
        if let Some(dev) = &gbm {
            match (0..n)
                .map(|_| Self::alloc_gbm(card, dev, w, h, modifiers_ok))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(b) => ring.buffers = b,
                Err(e) => {
                    tracing::info!(error = %e, "GBM cannot allocate scanout buffers here; using dumb buffers")
                }
            }
        }
        if ring.buffers.is_empty() {
            ring.allocator = Allocator::Dumb;
            for _ in 0..n {
                ring.buffers.push(Self::alloc_dumb(card, w, h)?);
            }
        }
        ring.gbm = gbm.map(GbmDevice);
        let b = &ring.buffers[0];
        tracing::info!(
            allocator = ?ring.allocator, n, w, h, stride = b.stride, modifier = ?b.modifier,
            "scanout ring"
        );
        Ok(ring)
    }

    fn export_rw(card: &Card, handle: BufferHandle) -> Result<OwnedFd, KmsError> {
        let flags = (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::RDWR).bits();
        card.buffer_to_prime_fd(handle, flags)
            .map_err(KmsError::ioctl("export scanout buffer as dma-buf"))
    }

    fn alloc_gbm(
        card: &Card,
        dev: &gbm::Device<BorrowedFd<'_>>,
        w: u32,
        h: u32,
        modifiers_ok: bool,
    ) -> Result<ScanoutBuffer, KmsError> {
        let flags = gbm::BufferObjectFlags::SCANOUT | gbm::BufferObjectFlags::RENDERING;
        let bo = dev
            .create_buffer_object::<()>(w, h, gbm::Format::Xrgb8888, flags)
            .map_err(KmsError::ioctl("allocate GBM scanout buffer"))?;
        // SAFETY: for a single-plane buffer on a DRM device, `gbm_bo_get_handle` fills
        // the union's 32-bit GEM handle member.
        let raw = unsafe { bo.handle().u32_ };
        let handle =
            drm::buffer::Handle::from(std::num::NonZeroU32::new(raw).ok_or(KmsError::Ioctl {
                op: "GBM buffer handle",
                source: std::io::Error::other("GBM returned a null handle"),
            })?);
        let modifier = Some(DrmModifier::from(u64::from(bo.modifier())))
            .filter(|m| *m != DrmModifier::Invalid);
        let mut b = ScanoutBuffer {
            handle,
            width: w,
            height: h,
            stride: bo.stride(),
            format: DrmFourcc::Xrgb8888,
            modifier: if modifiers_ok { modifier } else { None },
            fb: framebuffer::Handle::from(std::num::NonZeroU32::MIN),
            dmabuf: Self::export_rw(card, handle)?,
            storage: Storage::Gbm { _bo: bo },
        };
        let fb_flags = if b.modifier.is_some() {
            FbCmd2Flags::MODIFIERS
        } else {
            FbCmd2Flags::empty()
        };
        b.fb = card
            .add_planar_framebuffer(&b, fb_flags)
            .map_err(KmsError::ioctl("add GBM framebuffer"))?;
        Ok(b)
    }

    fn alloc_dumb(card: &Card, w: u32, h: u32) -> Result<ScanoutBuffer, KmsError> {
        let dumb = card
            .create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32)
            .map_err(KmsError::ioctl("create dumb scanout buffer"))?;
        let handle = drm::buffer::Buffer::handle(&dumb);
        let stride = drm::buffer::Buffer::pitch(&dumb);
        let dmabuf = match Self::export_rw(card, handle) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = card.destroy_dumb_buffer(dumb);
                return Err(e);
            }
        };
        let mut b = ScanoutBuffer {
            handle,
            width: w,
            height: h,
            stride,
            format: DrmFourcc::Xrgb8888,
            modifier: None,
            fb: framebuffer::Handle::from(std::num::NonZeroU32::MIN),
            dmabuf,
            storage: Storage::Dumb(Some(dumb)),
        };
        b.fb = card
            .add_planar_framebuffer(&b, FbCmd2Flags::empty())
            .map_err(KmsError::ioctl("add dumb framebuffer"))?;
        Ok(b)
    }

    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    pub fn buffer(&self, i: usize) -> &ScanoutBuffer {
        &self.buffers[i]
    }

    pub fn state(&self) -> &RingState {
        &self.state
    }

    /// A buffer that is neither on screen nor queued, for the next frame.
    pub fn acquire(&mut self) -> Option<usize> {
        self.state.acquire()
    }

    pub fn queue(&mut self, i: usize) -> Result<(), RingError> {
        self.state.queue(i)
    }

    pub fn cancel(&mut self, i: usize) -> Result<(), RingError> {
        self.state.cancel(i)
    }

    pub fn flipped(&mut self, i: usize) -> Result<(), RingError> {
        self.state.flipped(i)
    }

    /// The slot whose framebuffer is `fb`.
    pub fn slot_of(&self, fb: framebuffer::Handle) -> Option<usize> {
        self.buffers.iter().position(|b| b.fb == fb)
    }
}

impl Drop for ScanoutRing<'_> {
    fn drop(&mut self) {
        for b in &mut self.buffers {
            let _ = self.card.destroy_framebuffer(b.fb);
            if let Storage::Dumb(d) = &mut b.storage
                && let Some(d) = d.take()
            {
                let _ = self.card.destroy_dumb_buffer(d);
            }
        }
        // GBM buffer objects free themselves when `buffers` drops, before `gbm`.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_free_only_after_a_flip_replaced_it() {
        let mut r = RingState::new(3);
        let a = r.acquire().unwrap();
        r.queue(a).unwrap();
        r.flipped(a).unwrap();
        assert_eq!(r.on_screen(), Some(a));
        let b = r.acquire().unwrap();
        assert_ne!(b, a, "never the on-screen buffer");
        r.queue(b).unwrap();
        let c = r.acquire().unwrap();
        assert!(c != a && c != b, "never the on-screen or the queued buffer");
        assert_eq!(r.acquire(), None, "all three busy: nothing to hand out");
        r.flipped(b).unwrap();
        assert_eq!(r.slot(a), Some(Slot::Free), "a released by b's flip");
        assert_eq!(r.acquire(), Some(a));
    }

    #[test]
    fn wrong_transitions_are_errors_not_panics() {
        let mut r = RingState::new(3);
        assert_eq!(
            r.queue(0),
            Err(RingError::WrongState {
                slot: 0,
                actual: Slot::Free,
                expected: Slot::Writing
            })
        );
        assert_eq!(
            r.flipped(1),
            Err(RingError::WrongState {
                slot: 1,
                actual: Slot::Free,
                expected: Slot::Queued
            })
        );
        assert_eq!(r.queue(9), Err(RingError::NoSuchSlot(9)));
        let a = r.acquire().unwrap();
        r.cancel(a).unwrap();
        assert_eq!(r.slot(a), Some(Slot::Free));
        let a = r.acquire().unwrap();
        r.queue(a).unwrap();
        r.flipped(a).unwrap();
        assert!(
            r.cancel(a).is_err(),
            "the on-screen buffer cannot be cancelled"
        );
    }

    #[test]
    fn many_frames_never_hand_out_a_busy_buffer() {
        let mut r = RingState::new(3);
        let first = r.acquire().unwrap();
        r.queue(first).unwrap();
        r.flipped(first).unwrap();
        let mut pending = None;
        for _ in 0..1000 {
            let w = r
                .acquire()
                .expect("a free buffer while at most one flip is pending");
            assert_ne!(Some(w), r.on_screen());
            assert_ne!(Some(w), pending);
            if let Some(p) = pending.take() {
                r.flipped(p).unwrap();
            }
            r.queue(w).unwrap();
            pending = Some(w);
        }
    }
}
