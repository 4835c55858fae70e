//! Host integration tests: real components on the build machine (Vulkan through
//! lavapipe, the Khronos OpenXR loader), no VM.

mod common;
mod compositor;
mod frame_loop;
mod hello_xr;
mod openxr;
mod openxr_vulkan;
mod threads;
