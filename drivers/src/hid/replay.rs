//! A transport that plays a captured report stream back, for unit tests of protocol code.
//!
//! Input reports come out in order; feature reads are answered from per-report-id queues
//! (a repeated read of the same id takes the next answer, as the Vive config transfer
//! does); writes are recorded. A capture can end with the device vanishing.

use super::{HidError, HidTransport};
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEvent {
    /// An input report (report id first).
    Input(Vec<u8>),
    /// No report for one read (a timeout).
    Silence,
    /// The device is unplugged here: every later call fails with `Disconnected`.
    Unplug,
}

#[derive(Debug, Default)]
pub struct ReplayTransport {
    name: String,
    inputs: VecDeque<ReplayEvent>,
    features: HashMap<u8, VecDeque<Vec<u8>>>,
    /// Every output and feature report written, in order (report id first).
    pub written: Vec<Vec<u8>>,
    gone: bool,
}

impl ReplayTransport {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn input(mut self, report: &[u8]) -> Self {
        self.inputs.push_back(ReplayEvent::Input(report.to_vec()));
        self
    }

    pub fn event(mut self, e: ReplayEvent) -> Self {
        self.inputs.push_back(e);
        self
    }

    /// Queues one answer to a feature read of `report[0]`.
    pub fn feature(mut self, report: &[u8]) -> Self {
        let id = report.first().copied().unwrap_or(0);
        self.features
            .entry(id)
            .or_default()
            .push_back(report.to_vec());
        self
    }

    fn check(&self) -> Result<(), HidError> {
        if self.gone {
            Err(HidError::Disconnected {
                path: self.name.clone(),
            })
        } else {
            Ok(())
        }
    }
}

impl HidTransport for ReplayTransport {
    fn path(&self) -> &str {
        &self.name
    }

    fn read_input(&mut self, buf: &mut [u8], _timeout_ms: i32) -> Result<usize, HidError> {
        self.check()?;
        match self.inputs.pop_front() {
            Some(ReplayEvent::Input(r)) => {
                let n = r.len().min(buf.len());
                buf[..n].copy_from_slice(&r[..n]);
                Ok(n)
            }
            Some(ReplayEvent::Silence) | None => Ok(0),
            Some(ReplayEvent::Unplug) => {
                self.gone = true;
                self.check().map(|_| 0)
            }
        }
    }

    fn write_output(&mut self, data: &[u8]) -> Result<(), HidError> {
        self.check()?;
        self.written.push(data.to_vec());
        Ok(())
    }

    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, HidError> {
        self.check()?;
        let id = buf.first().copied().unwrap_or(0);
        let answer = self
            .features
            .get_mut(&id)
            .and_then(|q| q.pop_front())
            .ok_or_else(|| HidError::Io {
                op: "get feature report",
                path: self.name.clone(),
                detail: format!("no answer to feature report {id:#04x} in the capture"),
            })?;
        let n = answer.len().min(buf.len());
        buf[..n].copy_from_slice(&answer[..n]);
        Ok(n)
    }

    fn send_feature(&mut self, data: &[u8]) -> Result<(), HidError> {
        self.check()?;
        self.written.push(data.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_back_in_order_then_unplugs() {
        let mut t = ReplayTransport::new("capture")
            .input(&[0x20, 1, 2])
            .event(ReplayEvent::Silence)
            .event(ReplayEvent::Unplug)
            .feature(&[0x11, 5])
            .feature(&[0x11, 0]);
        let mut buf = [0u8; 64];
        assert_eq!(t.read_input(&mut buf, 10).unwrap(), 3);
        assert_eq!(&buf[..3], &[0x20, 1, 2]);
        buf[0] = 0x11;
        assert_eq!(t.get_feature(&mut buf).unwrap(), 2);
        assert_eq!(buf[1], 5);
        buf[0] = 0x11;
        t.get_feature(&mut buf).unwrap();
        assert_eq!(buf[1], 0);
        buf[0] = 0x11;
        assert!(matches!(t.get_feature(&mut buf), Err(HidError::Io { .. })));
        assert_eq!(t.read_input(&mut buf, 10).unwrap(), 0);
        assert!(matches!(
            t.read_input(&mut buf, 10),
            Err(HidError::Disconnected { .. })
        ));
        assert!(matches!(
            t.send_feature(&[4]),
            Err(HidError::Disconnected { .. })
        ));
    }
}
