//! Headset and controller drivers.
//!
//! - [`api`]: the device traits ([`api::Hmd`], [`api::TrackedDevice`]) and types every
//!   other part of Leasehold sees.
//! - [`simulated`]: a deterministic headset and controllers (the default without hardware).
//! - [`hid`]: the only room that talks to hidapi: transports, discovery, hotplug.
//! - [`vive`]: HTC Vive / Vive Pro / Valve Index over their HID sensor interface;
//!   [`headset`]: which headset a process drives (a real one, else the simulated one).
//! - [`fusion`]: IMU orientation filter and prediction; [`motion`]: scripted motion with
//!   ground truth and synthetic IMU streams.
//! - [`calibration`]: the user's IMU and display calibration files.
//! - [`threads`]: real-time priority and the starter's log subscriber for the threads
//!   Leasehold starts.
//! - [`edid`]: display identification data; [`profile`]: headset profiles from
//!   `manifests/headsets/`.

pub mod api;
pub mod calibration;
pub mod edid;
pub mod fusion;
pub mod headset;
pub mod hid;
pub mod motion;
pub mod profile;
pub mod simulated;
pub mod threads;
pub mod vive;
