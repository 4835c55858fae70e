//! Real desktop lessors in the lab: they hold DRM master and lease us the headset. They
//! run in their own VM boot (nothing else may hold master), one after the other.

mod wayland;
mod x11;
