//! Fences between rendering and scanout: sync_files, and vgem fences signalled by the CPU.
//!
//! KMS gates a flip on a render through the plane's `IN_FENCE_FD`: a sync_file that
//! signals when the render is done. Real GPUs export one from Vulkan. The vgem driver
//! gives the same kernel path without a GPU: attach a write fence to a vgem buffer, export
//! the buffer's pending writes as a sync_file (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`), and
//! signal it from the CPU when the (software) render completes. vgem fences that are
//! never signalled expire after 10 s.
//!
//! The ioctls here are the few the `drm` crate does not cover.

use super::{Card, KmsError, cards};
use drm::buffer::{Buffer as _, DrmFourcc};
use drm::control::{Device as ControlDevice, dumbbuffer::DumbBuffer};
use rustix::ioctl::{Opcode, Setter, Updater, ioctl, opcode};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

#[repr(C)]
struct VgemFenceAttach {
    handle: u32,
    flags: u32,
    out_fence: u32,
    pad: u32,
}

#[repr(C)]
struct VgemFenceSignal {
    fence: u32,
    flags: u32,
}

#[repr(C)]
struct DmaBufExportSyncFile {
    flags: u32,
    fd: i32,
}

#[repr(C)]
struct DmaBufSync {
    flags: u64,
}

#[repr(C)]
struct SyncMergeData {
    name: [u8; 32],
    fd2: i32,
    fence: i32,
    flags: u32,
    pad: u32,
}

const DRM_COMMAND_BASE: u8 = 0x40;
/// `DRM_IOCTL_VGEM_FENCE_ATTACH` (include/uapi/drm/vgem_drm.h).
const VGEM_FENCE_ATTACH: Opcode = opcode::read_write::<VgemFenceAttach>(b'd', DRM_COMMAND_BASE + 1);
/// `DRM_IOCTL_VGEM_FENCE_SIGNAL`.
const VGEM_FENCE_SIGNAL: Opcode = opcode::write::<VgemFenceSignal>(b'd', DRM_COMMAND_BASE + 2);
const VGEM_FENCE_WRITE: u32 = 1;
/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` (include/uapi/linux/dma-buf.h).
const DMA_BUF_EXPORT_SYNC_FILE: Opcode = opcode::read_write::<DmaBufExportSyncFile>(b'b', 2);
/// `DMA_BUF_IOCTL_SYNC`.
const DMA_BUF_SYNC: Opcode = opcode::write::<DmaBufSync>(b'b', 0);
/// `SYNC_IOC_MERGE` (include/uapi/linux/sync_file.h).
const SYNC_IOC_MERGE: Opcode = opcode::read_write::<SyncMergeData>(b'>', 3);

/// `DMA_BUF_SYNC_*` flags: which access a CPU bracket or an exported fence covers.
pub mod dma_buf_access {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const RW: u32 = 3;
}
const DMA_BUF_SYNC_START: u64 = 0;
const DMA_BUF_SYNC_END: u64 = 4;

/// Exports the fences that an access of kind `access` must wait for as a sync_file.
/// For a reader (scanout) that is the pending writes: `dma_buf_access::READ`.
pub fn export_sync_file(dmabuf: BorrowedFd<'_>, access: u32) -> Result<OwnedFd, KmsError> {
    let mut arg = DmaBufExportSyncFile {
        flags: access,
        fd: -1,
    };
    // SAFETY: the opcode is DMA_BUF_IOCTL_EXPORT_SYNC_FILE, whose argument is exactly
    // `struct dma_buf_export_sync_file` (two 32-bit fields, mirrored by the repr(C)
    // struct); the kernel reads `flags` and writes `fd` within the call.
    unsafe {
        ioctl(
            dmabuf,
            Updater::<DMA_BUF_EXPORT_SYNC_FILE, _>::new(&mut arg),
        )
    }
    .map_err(|e| KmsError::Ioctl {
        op: "export sync_file from dma-buf",
        source: e.into(),
    })?;
    if arg.fd < 0 {
        return Err(KmsError::Ioctl {
            op: "export sync_file from dma-buf",
            source: std::io::Error::other("kernel returned no fd"),
        });
    }
    // SAFETY: on success the kernel installed a new fd in `arg.fd` that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(arg.fd) })
}

/// One sync_file that signals when both `a` and `b` have (`SYNC_IOC_MERGE`).
pub fn merge_sync_files(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<OwnedFd, KmsError> {
    let mut arg = SyncMergeData {
        name: *b"leasehold-merged\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        fd2: std::os::fd::AsRawFd::as_raw_fd(&b),
        fence: -1,
        flags: 0,
        pad: 0,
    };
    // SAFETY: the opcode is SYNC_IOC_MERGE, whose argument is exactly `struct
    // sync_merge_data` (mirrored by the repr(C) struct: a 32-byte name, fd2, fence, flags,
    // pad); the kernel reads `name` and `fd2` and writes `fence` within the call; `a` and
    // `b` are live sync_file fds for its duration.
    unsafe { ioctl(a, Updater::<SYNC_IOC_MERGE, _>::new(&mut arg)) }.map_err(|e| {
        KmsError::Ioctl {
            op: "merge sync_files",
            source: e.into(),
        }
    })?;
    if arg.fence < 0 {
        return Err(KmsError::Ioctl {
            op: "merge sync_files",
            source: std::io::Error::other("kernel returned no fd"),
        });
    }
    // SAFETY: on success the kernel installed a new fd in `arg.fence` that nothing else
    // owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(arg.fence) })
}

/// Brackets CPU access to a dma-buf (`DMA_BUF_IOCTL_SYNC` start/end) so caches and
/// pending device work are handled; `access` is a `dma_buf_access` value.
pub fn dma_buf_cpu_access<T>(
    dmabuf: BorrowedFd<'_>,
    access: u32,
    f: impl FnOnce() -> T,
) -> Result<T, KmsError> {
    let sync = |phase: u64, op: &'static str| {
        let arg = DmaBufSync {
            flags: phase | u64::from(access),
        };
        // SAFETY: DMA_BUF_IOCTL_SYNC takes `struct dma_buf_sync { __u64 flags; }` by
        // pointer and only reads it; `arg` lives across the call.
        unsafe { ioctl(dmabuf, Setter::<DMA_BUF_SYNC, _>::new(arg)) }.map_err(|e| KmsError::Ioctl {
            op,
            source: e.into(),
        })
    };
    sync(DMA_BUF_SYNC_START, "dma-buf CPU access start")?;
    let out = f();
    sync(DMA_BUF_SYNC_END, "dma-buf CPU access end")?;
    Ok(out)
}

/// Waits until a sync_file signals. `Ok(false)` on timeout.
pub fn wait_sync_file(fence: BorrowedFd<'_>, timeout: Duration) -> Result<bool, KmsError> {
    super::poll_readable(fence, timeout, "poll sync_file")
}

/// The vgem device: buffers whose fences the CPU signals.
#[derive(Debug)]
pub struct Vgem {
    card: Card,
}

impl Vgem {
    /// Finds and opens the vgem card (`modprobe vgem`).
    pub fn open() -> Result<Self, KmsError> {
        for path in cards() {
            let Ok(card) = Card::open(&path) else {
                continue;
            };
            if card.driver().is_ok_and(|d| d.name == "vgem") {
                return Ok(Self { card });
            }
        }
        Err(KmsError::Open {
            path: "/dev/dri/card*".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no vgem device (modprobe vgem)",
            ),
        })
    }

    /// A new unsignalled fence, exported as a sync_file for `IN_FENCE_FD`.
    pub fn fence(&self) -> Result<VgemFence<'_>, KmsError> {
        let bo = self
            .card
            .create_dumb_buffer((64, 1), DrmFourcc::Xrgb8888, 32)
            .map_err(KmsError::ioctl("create vgem buffer"))?;
        let mut f = VgemFence {
            vgem: self,
            bo: Some(bo),
            fence: None,
            sync_file: None,
        };
        let flags = (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::RDWR).bits();
        let dmabuf = self
            .card
            .buffer_to_prime_fd(f.bo.as_ref().expect("just created").handle(), flags)
            .map_err(KmsError::ioctl("export vgem buffer as dma-buf"))?;
        let mut attach = VgemFenceAttach {
            handle: f.bo.as_ref().expect("just created").handle().into(),
            flags: VGEM_FENCE_WRITE,
            out_fence: 0,
            pad: 0,
        };
        // SAFETY: DRM_IOCTL_VGEM_FENCE_ATTACH takes `struct drm_vgem_fence_attach` (four
        // u32s, mirrored by the repr(C) struct), reads handle/flags and writes out_fence.
        unsafe {
            ioctl(
                self.card.as_fd(),
                Updater::<VGEM_FENCE_ATTACH, _>::new(&mut attach),
            )
        }
        .map_err(|e| KmsError::Ioctl {
            op: "attach vgem fence",
            source: e.into(),
        })?;
        f.fence = Some(attach.out_fence);
        f.sync_file = Some(export_sync_file(dmabuf.as_fd(), dma_buf_access::READ)?);
        Ok(f)
    }
}

/// One CPU-signalled fence. Signalled on drop if still pending, so nothing is left
/// waiting on it.
#[derive(Debug)]
pub struct VgemFence<'v> {
    vgem: &'v Vgem,
    bo: Option<DumbBuffer>,
    fence: Option<u32>,
    sync_file: Option<OwnedFd>,
}

impl VgemFence<'_> {
    /// The sync_file that signals with this fence (for `IN_FENCE_FD`).
    pub fn sync_file(&self) -> BorrowedFd<'_> {
        self.sync_file.as_ref().expect("set at creation").as_fd()
    }

    /// Signals the fence: every waiter (a gated flip) may proceed.
    pub fn signal(&mut self) -> Result<(), KmsError> {
        let Some(fence) = self.fence.take() else {
            return Ok(());
        };
        let arg = VgemFenceSignal { fence, flags: 0 };
        // SAFETY: DRM_IOCTL_VGEM_FENCE_SIGNAL takes `struct drm_vgem_fence_signal` (two
        // u32s) by pointer and only reads it.
        unsafe {
            ioctl(
                self.vgem.card.as_fd(),
                Setter::<VGEM_FENCE_SIGNAL, _>::new(arg),
            )
        }
        .map_err(|e| KmsError::Ioctl {
            op: "signal vgem fence",
            source: e.into(),
        })
    }

    pub fn is_signalled(&self) -> bool {
        self.fence.is_none()
    }
}

impl Drop for VgemFence<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.signal() {
            // ETIMEDOUT: it expired on its own (10 s); nothing waits on it any more.
            tracing::debug!(error = %e, "signal vgem fence on drop");
        }
        if let Some(bo) = self.bo.take() {
            let _ = self.vgem.card.destroy_dumb_buffer(bo);
        }
    }
}
