//! Bringing a leased headset output up: mode decision → scanout ring → modeset (checked
//! with TEST_ONLY) or adoption of the lessor's mode. The one bring-up the runtime's
//! compositor and `leasehold bench frame-timing` share.

use super::discovery::{HeadsetOutput, ModeDecision, ModeRequest, choose_mode, period_ns};
use super::{Card, KmsError, Lease, Mode, Output, ScanoutRing};

/// A lit output, ready for flips.
pub struct Lit<'c> {
    pub output: Output<'c>,
    pub ring: ScanoutRing<'c>,
    pub mode: Mode,
    /// Frame period of `mode`, ns.
    pub period_ns: u64,
    /// The lessor's mode was kept (no modeset of ours).
    pub kept: bool,
}

impl std::fmt::Debug for Lit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lit")
            .field("mode", &self.mode_name())
            .field("kept", &self.kept)
            .finish()
    }
}

impl Lit<'_> {
    /// `WxH@Hz`, with millihertz precision.
    pub fn mode_name(&self) -> String {
        let (w, h) = self.mode.size();
        format!("{w}x{h}@{:.3}", 1e9 / self.period_ns.max(1) as f64)
    }
}

/// Why a leased output could not be lit.
#[derive(Debug, thiserror::Error)]
pub enum BringUpError {
    #[error(transparent)]
    Mode(#[from] super::discovery::ModeError),
    #[error("{connector} cannot run {w}x{h}@{hz}{custom}: {source}", custom = if *.custom { " (a custom mode: not in its EDID)" } else { "" })]
    Refused {
        connector: String,
        w: u16,
        h: u16,
        hz: u32,
        custom: bool,
        source: KmsError,
    },
    #[error("the leased output: {0}")]
    Kms(#[from] KmsError),
}

/// Lights the leased output: keeps the mode the lessor set on its CRTC (only flips
/// follow), else modesets to `requested` or the headset's preferred mode, after a
/// TEST_ONLY commit accepts it, showing a cleared buffer of a fresh `buffers`-deep ring.
pub fn bring_up<'c>(
    lessee: &'c Card,
    lease: &Lease,
    headset: &HeadsetOutput,
    requested: Option<ModeRequest>,
    buffers: usize,
) -> Result<Lit<'c>, BringUpError> {
    let current = lessee.crtc_mode(lease.crtc)?;
    let decision = choose_mode(&headset.connector, headset.profile, requested, current)?;
    let (mode, custom) = match decision {
        ModeDecision::Keep(m) => (m, false),
        ModeDecision::Set { mode, custom } => (mode, custom),
    };
    let (w, h) = mode.size();
    let refused = |source: KmsError| BringUpError::Refused {
        connector: headset.connector.name.clone(),
        w,
        h,
        hz: mode.vrefresh(),
        custom,
        source,
    };
    lessee.check_fb_size((w, h)).map_err(refused)?;
    let mut output = Output::new(lessee, lease.connector, lease.crtc, lease.plane)?;
    let mut ring = ScanoutRing::new(lessee, (u32::from(w), u32::from(h)), buffers)?;
    let kept = matches!(decision, ModeDecision::Keep(_));
    if kept {
        output.adopt_mode(&mode);
    } else {
        let first = ring.acquire().ok_or_else(|| KmsError::Lessor {
            why: "a fresh scanout ring has no free buffer".into(),
        })?;
        ring.buffer(first).write_with(|b| b.fill(0))?;
        ring.queue(first).map_err(KmsError::from)?;
        output
            .modeset(&mode, ring.buffer(first).fb)
            .map_err(refused)?;
        ring.flipped(first).map_err(KmsError::from)?;
    }
    let period_ns = period_ns(&mode);
    tracing::info!(
        connector = %headset.connector.name,
        mode = %format!("{w}x{h}@{:.3}", 1e9 / period_ns.max(1) as f64),
        kept, "headset output lit"
    );
    Ok(Lit {
        output,
        ring,
        mode,
        period_ns,
        kept,
    })
}
