//! A minimal RFB (VNC) client whose only job is `SetDesktopSize`.
//!
//! QEMU enables a virtio-gpu head beyond the first only when a display client asks for it.
//! Attaching a VNC server to head 1 and requesting a desktop size from it brings the
//! second connector up as connected (with a hotplug event in the guest).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const PSEUDO_ENCODING_EXTENDED_DESKTOP_SIZE: i32 = -308;
const MSG_SET_ENCODINGS: u8 = 2;
const MSG_SET_DESKTOP_SIZE: u8 = 251;

/// Connects to the VNC unix socket (waiting for QEMU to create it), does the RFB 3.8
/// handshake with no security, and asks for a `w`x`h` desktop. Returns the live connection:
/// it is kept open for the VM's lifetime.
pub fn set_desktop_size(sock: &Path, w: u16, h: u16, wait: Duration) -> Result<UnixStream, String> {
    let deadline = Instant::now() + wait;
    let mut s = loop {
        match UnixStream::connect(sock) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "QEMU's VNC socket {} never accepted: {e}",
                    sock.display()
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("VNC handshake: {e}");
    let mut version = [0u8; 12];
    s.read_exact(&mut version).map_err(io)?;
    if !version.starts_with(b"RFB 003.") {
        return Err(format!("VNC server sent no RFB version: {version:?}"));
    }
    s.write_all(b"RFB 003.008\n").map_err(io)?;
    let mut n = [0u8; 1];
    s.read_exact(&mut n).map_err(io)?;
    if n[0] == 0 {
        return Err("VNC server refused the connection".into());
    }
    let mut types = vec![0u8; usize::from(n[0])];
    s.read_exact(&mut types).map_err(io)?;
    if !types.contains(&1) {
        return Err(format!(
            "VNC server offers no 'None' security type: {types:?}"
        ));
    }
    s.write_all(&[1]).map_err(io)?;
    let mut result = [0u8; 4];
    s.read_exact(&mut result).map_err(io)?;
    if result != [0; 4] {
        return Err("VNC security handshake failed".into());
    }
    s.write_all(&[1]).map_err(io)?; // ClientInit: shared
    let mut init = [0u8; 24];
    s.read_exact(&mut init).map_err(io)?;
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let mut name = vec![0u8; name_len.min(4096)];
    s.read_exact(&mut name).map_err(io)?;

    let mut msg = vec![MSG_SET_ENCODINGS, 0];
    msg.extend_from_slice(&2u16.to_be_bytes());
    msg.extend_from_slice(&0i32.to_be_bytes()); // raw
    msg.extend_from_slice(&PSEUDO_ENCODING_EXTENDED_DESKTOP_SIZE.to_be_bytes());
    s.write_all(&msg).map_err(io)?;

    let mut msg = vec![MSG_SET_DESKTOP_SIZE, 0];
    msg.extend_from_slice(&w.to_be_bytes());
    msg.extend_from_slice(&h.to_be_bytes());
    msg.extend_from_slice(&[1, 0]); // one screen
    msg.extend_from_slice(&0u32.to_be_bytes()); // screen id
    msg.extend_from_slice(&0u16.to_be_bytes()); // x
    msg.extend_from_slice(&0u16.to_be_bytes()); // y
    msg.extend_from_slice(&w.to_be_bytes());
    msg.extend_from_slice(&h.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes()); // flags
    s.write_all(&msg).map_err(io)?;
    Ok(s)
}

/// Reads and discards whatever the server sends, until it hangs up.
pub fn drain(mut s: UnixStream) {
    let _ = s.set_read_timeout(None);
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}
