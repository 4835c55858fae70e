//! A lease from a Wayland compositor through `wp_drm_lease_device_v1`.
//!
//! Desktop compositors hold DRM master and keep non-desktop outputs (headsets) off the
//! desktop; those that implement the DRM lease protocol offer them to clients. The
//! compositor sends, per DRM device, a non-master fd and the connectors it offers; we
//! pick the headset among them (by name, or by the EDID the non-master fd can read),
//! request a lease on it, and receive the lessee fd. The Wayland connection stays open
//! for as long as the lease lives: closing it ends the lease.

use super::discovery::{DiscoveryError, HeadsetOutput, HeadsetReason};
use super::lease_source::LeaseSource;
use super::{Card, KmsError, Lease};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use wayland_client::protocol::wl_registry;
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle, event_created_child};
use wayland_protocols::wp::drm_lease::v1::client::{
    wp_drm_lease_connector_v1::{self, WpDrmLeaseConnectorV1},
    wp_drm_lease_device_v1::{self, WpDrmLeaseDeviceV1},
    wp_drm_lease_request_v1::WpDrmLeaseRequestV1,
    wp_drm_lease_v1::{self, WpDrmLeaseV1},
};

/// Lease the headset from the Wayland compositor we run under.
#[derive(Debug, Default)]
pub struct WaylandLease {
    /// The compositor's socket; default: `$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY`.
    pub socket: Option<PathBuf>,
    /// Take the offered connector with this name instead of matching headset profiles.
    pub connector: Option<String>,
}

#[derive(Debug)]
struct OfferedConnector {
    proxy: WpDrmLeaseConnectorV1,
    name: String,
    description: String,
    connector_id: u32,
    withdrawn: bool,
}

#[derive(Debug)]
struct OfferingDevice {
    proxy: WpDrmLeaseDeviceV1,
    drm_fd: Option<OwnedFd>,
    connectors: Vec<OfferedConnector>,
    done: bool,
}

#[derive(Debug, Default)]
struct State {
    devices: Vec<OfferingDevice>,
    lease_fd: Option<OwnedFd>,
    finished: bool,
}

impl Dispatch<wl_registry::WlRegistry, ()> for State {
    fn event(
        state: &mut Self,
        registry: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_registry::Event::Global {
            name, interface, ..
        } = event
            && interface == WpDrmLeaseDeviceV1::interface().name
        {
            let proxy = registry.bind::<WpDrmLeaseDeviceV1, _, _>(name, 1, qh, ());
            state.devices.push(OfferingDevice {
                proxy,
                drm_fd: None,
                connectors: Vec::new(),
                done: false,
            });
        }
    }
}

impl Dispatch<WpDrmLeaseDeviceV1, ()> for State {
    fn event(
        state: &mut Self,
        proxy: &WpDrmLeaseDeviceV1,
        event: wp_drm_lease_device_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let Some(dev) = state.devices.iter_mut().find(|d| &d.proxy == proxy) else {
            return;
        };
        match event {
            wp_drm_lease_device_v1::Event::DrmFd { fd } => dev.drm_fd = Some(fd),
            wp_drm_lease_device_v1::Event::Connector { id } => {
                dev.connectors.push(OfferedConnector {
                    proxy: id,
                    name: String::new(),
                    description: String::new(),
                    connector_id: 0,
                    withdrawn: false,
                })
            }
            wp_drm_lease_device_v1::Event::Done => dev.done = true,
            _ => {}
        }
    }

    event_created_child!(State, WpDrmLeaseDeviceV1, [
        wp_drm_lease_device_v1::EVT_CONNECTOR_OPCODE => (WpDrmLeaseConnectorV1, ()),
    ]);
}

impl Dispatch<WpDrmLeaseConnectorV1, ()> for State {
    fn event(
        state: &mut Self,
        proxy: &WpDrmLeaseConnectorV1,
        event: wp_drm_lease_connector_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let Some(c) = state
            .devices
            .iter_mut()
            .flat_map(|d| d.connectors.iter_mut())
            .find(|c| &c.proxy == proxy)
        else {
            return;
        };
        match event {
            wp_drm_lease_connector_v1::Event::Name { name } => c.name = name,
            wp_drm_lease_connector_v1::Event::Description { description } => {
                c.description = description
            }
            wp_drm_lease_connector_v1::Event::ConnectorId { connector_id } => {
                c.connector_id = connector_id
            }
            wp_drm_lease_connector_v1::Event::Withdrawn => c.withdrawn = true,
            _ => {}
        }
    }
}

impl Dispatch<WpDrmLeaseRequestV1, ()> for State {
    fn event(
        _: &mut Self,
        _: &WpDrmLeaseRequestV1,
        _: <WpDrmLeaseRequestV1 as Proxy>::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<WpDrmLeaseV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &WpDrmLeaseV1,
        event: wp_drm_lease_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wp_drm_lease_v1::Event::LeaseFd { leased_fd } => state.lease_fd = Some(leased_fd),
            wp_drm_lease_v1::Event::Finished => state.finished = true,
            _ => {}
        }
    }
}

/// What keeps a Wayland lease alive: the connection and the lease object.
struct WaylandKeepAlive {
    _lease: WpDrmLeaseV1,
    _queue: EventQueue<State>,
    _conn: Connection,
}

fn protocol_error(why: impl std::fmt::Display) -> DiscoveryError {
    KmsError::Lessor {
        why: why.to_string(),
    }
    .into()
}

impl WaylandLease {
    fn connect(&self) -> Result<Connection, DiscoveryError> {
        match &self.socket {
            Some(path) => {
                let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
                    protocol_error(format!("no Wayland compositor at {}: {e}", path.display()))
                })?;
                Connection::from_socket(stream)
                    .map_err(|e| protocol_error(format!("Wayland handshake failed: {e}")))
            }
            None => Connection::connect_to_env().map_err(|e| {
                protocol_error(format!(
                    "no Wayland compositor to lease from (WAYLAND_DISPLAY / XDG_RUNTIME_DIR): {e}"
                ))
            }),
        }
    }
}

impl LeaseSource for WaylandLease {
    fn describe(&self) -> String {
        match &self.socket {
            Some(p) => format!("Wayland wp_drm_lease_device_v1 at {}", p.display()),
            None => "Wayland wp_drm_lease_device_v1".into(),
        }
    }

    fn acquire(&mut self) -> Result<(Lease, Option<HeadsetOutput>), DiscoveryError> {
        let conn = self.connect()?;
        let mut queue = conn.new_event_queue::<State>();
        let qh = queue.handle();
        conn.display().get_registry(&qh, ());
        let mut state = State::default();
        let roundtrip = |queue: &mut EventQueue<State>, state: &mut State| {
            queue
                .roundtrip(state)
                .map_err(|e| protocol_error(format!("Wayland connection failed: {e}")))
        };
        roundtrip(&mut queue, &mut state)?; // globals
        if state.devices.is_empty() {
            return Err(protocol_error(
                "the Wayland compositor offers no DRM leases (no wp_drm_lease_device_v1)",
            ));
        }
        for _ in 0..10 {
            if state.devices.iter().all(|d| d.done) {
                break;
            }
            roundtrip(&mut queue, &mut state)?;
        }

        // Pick the connector: by name, else the one whose EDID matches a headset profile.
        let mut choice: Option<(usize, usize, HeadsetOutput)> = None;
        let mut offered = Vec::new();
        for (di, dev) in state.devices.iter().enumerate() {
            let card = dev
                .drm_fd
                .as_ref()
                .and_then(|fd| fd.try_clone().ok())
                .map(|fd| Card::from_fd(fd, PathBuf::from("wayland drm_fd")));
            let infos = card
                .as_ref()
                .and_then(|c| c.connectors().ok())
                .unwrap_or_default();
            for (ci, c) in dev
                .connectors
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.withdrawn)
            {
                offered.push(format!("{} ({})", c.name, c.description));
                let info = infos
                    .iter()
                    .find(|i| u32::from(i.handle) == c.connector_id)
                    .cloned();
                let profile = info
                    .as_ref()
                    .and_then(|i| i.edid.as_ref())
                    .and_then(|e| e.known_hmd());
                let wanted = match &self.connector {
                    Some(n) => &c.name == n,
                    None => profile.is_some(),
                };
                if wanted
                    && choice.is_none()
                    && let Some(info) = info
                {
                    let reason = if self.connector.is_some() {
                        HeadsetReason::Named
                    } else {
                        HeadsetReason::Profile
                    };
                    let out = HeadsetOutput {
                        card: PathBuf::from("wayland"),
                        connector: info,
                        profile,
                        reason,
                    };
                    choice = Some((di, ci, out));
                }
            }
        }
        let Some((di, ci, headset)) = choice else {
            let what = match &self.connector {
                Some(n) => format!("no offered connector is named `{n}`"),
                None => "no offered connector matches a headset profile; name one with --connector"
                    .into(),
            };
            let list = if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            };
            return Err(protocol_error(format!("{what} (offered: {list})")));
        };

        let dev = &state.devices[di];
        let request = dev.proxy.create_lease_request(&qh, ());
        request.request_connector(&dev.connectors[ci].proxy);
        let lease_proxy = request.submit(&qh, ());
        for _ in 0..10 {
            if state.lease_fd.is_some() || state.finished {
                break;
            }
            roundtrip(&mut queue, &mut state)?;
        }
        let fd = match (state.lease_fd.take(), state.finished) {
            (Some(fd), false) => fd,
            (_, true) => {
                return Err(protocol_error(
                    "the Wayland compositor refused the lease (finished)",
                ));
            }
            (None, false) => {
                return Err(protocol_error(
                    "the Wayland compositor never answered the lease request",
                ));
            }
        };
        tracing::info!(connector = %headset.connector.name, "lease granted by the Wayland compositor");
        let lease =
            Lease::from_lessee_fd(fd, "Wayland lease")?.keep_alive(Box::new(WaylandKeepAlive {
                _lease: lease_proxy,
                _queue: queue,
                _conn: conn,
            }));
        Ok((lease, Some(headset)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_is_a_clear_error() {
        let mut src = WaylandLease {
            socket: Some("/nonexistent/wayland-9".into()),
            connector: None,
        };
        let err = src.acquire().expect_err("must fail").to_string();
        assert!(
            err.contains("no Wayland compositor at /nonexistent/wayland-9"),
            "{err}"
        );
    }
}
