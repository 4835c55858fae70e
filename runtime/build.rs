//! Link flags for `libleasehold_openxr.so`.

// Build scripts talk to cargo through stdout.
#![allow(clippy::disallowed_macros)]

fn main() {
    // The loader unloads the runtime when the last instance goes and loads it again on
    // the next xrCreateInstance. A Rust library's process-wide state (the log
    // subscriber, handle tables, thread-local destructors) does not survive an unload
    // cleanly: keep the library resident once loaded.
    println!("cargo::rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
