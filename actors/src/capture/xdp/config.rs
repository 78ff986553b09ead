//! What an AF_XDP capture is asked to do: [`XdpConfig`] and its checks.

use super::abi;
use super::XdpError;

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native when the driver supports it, else generic.
    #[default]
    Auto,
    /// In the driver (XDP_FLAGS_DRV_MODE): fastest; fails if the driver lacks XDP.
    Native,
    /// In the kernel stack after the skb is built (XDP_FLAGS_SKB_MODE): any interface.
    Generic,
}

/// What the program does with the packets of a bypassed flow (never redirect them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BypassAction {
    /// XDP_PASS: the kernel stack still receives them (a host that is also an endpoint).
    #[default]
    Pass,
    /// XDP_DROP: a dedicated sensor interface, where nobody else needs them.
    Drop,
}

impl BypassAction {
    /// The `fm_config.bypass_action` value.
    pub(super) fn abi(self) -> u32 {
        match self {
            BypassAction::Pass => abi::BYPASS_PASS,
            BypassAction::Drop => abi::BYPASS_DROP,
        }
    }
}

/// Settings of an AF_XDP capture on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface name, in the opening thread's network namespace.
    pub interface: String,
    /// Attach mode.
    pub mode: XdpMode,
    /// Queues 0..n to capture; `None` = all receive queues of the interface.
    pub queues: Option<u32>,
    /// UMEM frame size: 2048 or 4096.
    pub frame_size: u32,
    /// UMEM frames per queue (64..=1Mi); the rings are this rounded up to a power of two.
    pub frames_per_queue: u32,
    /// Busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET).
    pub busy_poll: bool,
    /// Maximum entries of the bypass map (at least 1).
    pub bypass_capacity: u32,
    /// What happens to packets of bypassed flows.
    pub bypass_action: BypassAction,
}

impl XdpConfig {
    /// Defaults for `interface`: all queues, automatic mode, 4096 frames of 2048 bytes per
    /// queue, no busy polling, 65536 bypassed flows passed to the kernel.
    pub fn new(interface: impl Into<String>) -> Self {
        XdpConfig {
            interface: interface.into(),
            mode: XdpMode::Auto,
            queues: None,
            frame_size: 2048,
            frames_per_queue: 4096,
            busy_poll: false,
            bypass_capacity: 65536,
            bypass_action: BypassAction::Pass,
        }
    }

    /// Rejects values the kernel would refuse or that make no sense.
    pub(super) fn check(&self) -> Result<(), XdpError> {
        let bad = |what: String| Err(XdpError::Config(what));
        if !matches!(self.frame_size, 2048 | 4096) {
            return bad(format!(
                "frame_size {} is not 2048 or 4096",
                self.frame_size
            ));
        }
        if !(64..=1 << 20).contains(&self.frames_per_queue) {
            return bad(format!(
                "frames_per_queue {} is not in 64..=1048576",
                self.frames_per_queue
            ));
        }
        if self.bypass_capacity == 0 {
            return bad("bypass_capacity is 0".into());
        }
        if self.queues == Some(0) {
            return bad("queues is 0".into());
        }
        if self.interface.is_empty() || self.interface.len() >= libc::IFNAMSIZ {
            return bad(format!(
                "interface name {:?} is empty or too long",
                self.interface
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_the_checks_and_bad_values_do_not() {
        let ok = XdpConfig::new("eth0");
        assert!(ok.check().is_ok());
        for bad in [
            XdpConfig {
                frame_size: 3000,
                ..ok.clone()
            },
            XdpConfig {
                frames_per_queue: 8,
                ..ok.clone()
            },
            XdpConfig {
                bypass_capacity: 0,
                ..ok.clone()
            },
            XdpConfig {
                queues: Some(0),
                ..ok.clone()
            },
            XdpConfig::new("an-interface-name-too-long"),
        ] {
            assert!(matches!(bad.check(), Err(XdpError::Config(_))), "{bad:?}");
        }
    }
}
