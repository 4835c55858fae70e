//! HID hotplug: the kernel's uevents for hidraw nodes, read through tokio.
//!
//! The kernel announces every hidraw node it adds or removes on the
//! NETLINK_KOBJECT_UEVENT socket (the stream udev itself is built on); this reads that
//! stream directly, so it works where no udev daemon runs (the lab VM, containers) and
//! needs no privileges. The USB ids come from the parent HID device's name in the
//! event's DEVPATH (`…/0003:28DE:2000.0001/hidraw/hidraw0`).

use super::HidError;
use rustix::net::{
    AddressFamily, RecvFlags, SocketFlags, SocketType, bind, netlink, recv, socket_with,
};
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;

/// A hidraw node appeared or went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HidHotplug {
    Added {
        devnode: String,
        vendor_id: u16,
        product_id: u16,
    },
    Removed {
        devnode: String,
        vendor_id: u16,
        product_id: u16,
    },
}

impl HidHotplug {
    pub fn ids(&self) -> (u16, u16) {
        match self {
            HidHotplug::Added {
                vendor_id,
                product_id,
                ..
            }
            | HidHotplug::Removed {
                vendor_id,
                product_id,
                ..
            } => (*vendor_id, *product_id),
        }
    }
}

/// Parses one kernel uevent datagram (`action@devpath\0KEY=value\0…`). Anything that
/// is not a hidraw add/remove, or is malformed, is `None`.
pub fn parse_uevent(msg: &[u8]) -> Option<HidHotplug> {
    let mut fields = msg.split(|&b| b == 0).filter(|f| !f.is_empty());
    let header = std::str::from_utf8(fields.next()?).ok()?;
    let (_, _) = header.split_once('@')?;
    let (mut action, mut subsystem, mut devname, mut devpath) = (None, None, None, None);
    for f in fields {
        let Ok(f) = std::str::from_utf8(f) else {
            continue;
        };
        match f.split_once('=') {
            Some(("ACTION", v)) => action = Some(v),
            Some(("SUBSYSTEM", v)) => subsystem = Some(v),
            Some(("DEVNAME", v)) => devname = Some(v),
            Some(("DEVPATH", v)) => devpath = Some(v),
            _ => {}
        }
    }
    if subsystem? != "hidraw" {
        return None;
    }
    let devname = devname?;
    let devnode = if devname.starts_with('/') {
        devname.to_string()
    } else {
        format!("/dev/{devname}")
    };
    // The HID device directory is named BUS:VID:PID.INSTANCE.
    let parent = devpath?.rsplit('/').nth(2)?;
    let mut parts = parent.split([':', '.']);
    let _bus = parts.next()?;
    let vendor_id = u16::from_str_radix(parts.next()?, 16).ok()?;
    let product_id = u16::from_str_radix(parts.next()?, 16).ok()?;
    match action? {
        "add" => Some(HidHotplug::Added {
            devnode,
            vendor_id,
            product_id,
        }),
        "remove" => Some(HidHotplug::Removed {
            devnode,
            vendor_id,
            product_id,
        }),
        _ => None,
    }
}

/// Watches the bus. Create it inside a tokio runtime (it registers with the reactor).
#[derive(Debug)]
pub struct HotplugWatcher {
    fd: AsyncFd<OwnedFd>,
}

impl HotplugWatcher {
    pub fn new() -> Result<Self, HidError> {
        let io = |op: &'static str, e: rustix::io::Errno| HidError::Io {
            op,
            path: "uevent netlink socket".into(),
            detail: e.to_string(),
        };
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )
        .map_err(|e| io("socket", e))?;
        // Group 1: the kernel's own events.
        bind(&fd, &netlink::SocketAddrNetlink::new(0, 1)).map_err(|e| io("bind", e))?;
        // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor stays
        // open and names the same socket until the AsyncFd is dropped, and
        // OwnedFd::as_raw_fd always returns that one descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| HidError::Io {
                op: "register with tokio",
                path: "uevent netlink socket".into(),
                detail: e.to_string(),
            })?;
        Ok(Self { fd })
    }

    /// The next hidraw add or remove.
    pub async fn next(&mut self) -> Result<HidHotplug, HidError> {
        let mut buf = vec![0u8; 8192];
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| HidError::Io {
                op: "wait for uevents",
                path: "uevent netlink socket".into(),
                detail: e.to_string(),
            })?;
            match guard.try_io(|fd| {
                recv(fd.get_ref(), &mut buf[..], RecvFlags::empty())
                    .map(|(n, _)| n)
                    .map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    if let Some(ev) = parse_uevent(&buf[..n]) {
                        return Ok(ev);
                    }
                }
                Ok(Err(e))
                    if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) =>
                {
                    // The socket overflowed: some events were lost. Callers re-enumerate
                    // on their next connect attempt; carry on.
                    tracing::warn!("uevent socket overflowed; some hotplug events were lost");
                }
                Ok(Err(e)) => {
                    return Err(HidError::Io {
                        op: "read uevents",
                        path: "uevent netlink socket".into(),
                        detail: e.to_string(),
                    });
                }
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(action: &str, subsystem: &str, devpath: &str, devname: &str) -> Vec<u8> {
        let mut m = format!("{action}@{devpath}\0").into_bytes();
        for kv in [
            format!("ACTION={action}"),
            format!("DEVPATH={devpath}"),
            format!("SUBSYSTEM={subsystem}"),
            format!("DEVNAME={devname}"),
            "SEQNUM=1234".into(),
        ] {
            m.extend(kv.bytes());
            m.push(0);
        }
        m
    }

    #[test]
    fn hidraw_add_and_remove() {
        let p = "/devices/virtual/misc/uhid/0003:28DE:2000.0001/hidraw/hidraw0";
        assert_eq!(
            parse_uevent(&msg("add", "hidraw", p, "hidraw0")),
            Some(HidHotplug::Added {
                devnode: "/dev/hidraw0".into(),
                vendor_id: 0x28de,
                product_id: 0x2000
            })
        );
        assert_eq!(
            parse_uevent(&msg("remove", "hidraw", p, "hidraw0")).map(|e| e.ids()),
            Some((0x28de, 0x2000))
        );
    }

    #[test]
    fn other_events_and_garbage_are_ignored() {
        let p = "/devices/virtual/misc/uhid/0003:28DE:2000.0001";
        assert_eq!(parse_uevent(&msg("add", "hid", p, "x")), None);
        assert_eq!(
            parse_uevent(&msg(
                "change",
                "hidraw",
                "/devices/x/0003:28DE:2000.0001/hidraw/hidraw0",
                "hidraw0"
            )),
            None
        );
        assert_eq!(parse_uevent(b""), None);
        assert_eq!(parse_uevent(b"\0\0\0"), None);
        assert_eq!(parse_uevent(&[0xff; 40]), None);
        assert_eq!(
            parse_uevent(&msg("add", "hidraw", "/short", "hidraw0")),
            None
        );
        assert_eq!(
            parse_uevent(&msg("add", "hidraw", "/a/0003:ZZZZ:2000.1/hidraw/h", "h")),
            None
        );
    }
}
