//! Lab tests: run inside the VM hardware lab (`cargo xtask lab`), where a real kernel gives
//! virtio-gpu KMS with a vblank timer, vgem fences and uhid. See shared/LAB.md.
//!
//! They share one virtio-gpu card, so the runner passes `--test-threads=1`.

mod cli;
mod common;
mod compositor;
mod fence;
mod headset;
mod hid;
mod lease;
mod lease_source;
mod lessors;
mod openxr;
mod present;
mod probe;
mod scanout;
