//! Our own RTP depacketizers (H.264, H.265, AAC): RTP packets in, access units and audio frames out.
//! Invariant: the bytes held for one stream never exceed `MAX_ACCESS_UNIT_BYTES`, whatever a camera sends.
//!
//! Retina still runs the RTSP session (DESCRIBE, SETUP, PLAY, authentication, keepalives, RTCP), but
//! its depacketizers grow an access unit without limit and cannot be fed from outside the crate
//! (`Depacketizer::push` is crate-private), so `source::rtsp` consumes retina's raw packet stream and
//! depacketizes here (issue 10 point 3).

pub mod aac;
pub mod h26x;

use std::fmt;

/// The most bytes one video access unit may reach while it is assembled. The store's chunk holds at
/// most 16 MiB (`store::chunk`), so a frame must stay well below that; a 4K I-frame from a camera
/// is about 1-2 MB, so 8 MiB leaves four times that as headroom for high bit-rate key frames. A
/// camera that sends more in one access unit (or never ends one) is broken or hostile, and the
/// session ends instead of the recorder's memory growing at the camera's send rate.
pub const MAX_ACCESS_UNIT_BYTES: usize = 8 << 20;

/// The most NAL units one video access unit may hold. Encoders split a picture into a few slices (at
/// most a few hundred even for 4K with one slice per macroblock row) plus parameter sets and SEI;
/// each NAL costs a length prefix and per-NAL work, so a flood of tiny NALs is bounded too.
pub const MAX_NALS_PER_ACCESS_UNIT: usize = 1024;

/// The largest parameter set (VPS, SPS or PPS) kept. Real ones are tens of bytes (a few hundred
/// with scaling lists); the sets are kept between access units, outside the access-unit cap, so
/// without this a camera could park three 8 MiB "parameter sets" in memory.
pub const MAX_PARAMETER_SET_BYTES: usize = 64 << 10;

/// One received RTP packet, as the depacketizers need it. Built from retina's `ReceivedPacket`,
/// whose header retina has already validated.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// The RTP sequence number, to name the packet in errors.
    pub sequence_number: u16,
    /// The RTP timestamp extended to 64 bits (retina's `Timestamp::timestamp`); access units are
    /// delimited by changes of it.
    pub timestamp: i64,
    /// Time since the session's start in the stream's clock (retina's `Timestamp::elapsed`), which
    /// becomes the frame's media time.
    pub elapsed: i64,
    /// The RTP marker bit: the last packet of a video access unit or of a fragmented audio frame.
    pub mark: bool,
    /// How many packets were lost just before this one (sequence number gap).
    pub loss: u16,
    /// The RTP payload: untrusted bytes from the camera.
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Views one of retina's received packets.
    pub fn of(pkt: &'a retina::rtp::ReceivedPacket) -> Self {
        Packet {
            sequence_number: pkt.sequence_number(),
            timestamp: pkt.timestamp().timestamp(),
            elapsed: pkt.timestamp().elapsed(),
            mark: pkt.mark(),
            loss: pkt.loss(),
            payload: pkt.payload(),
        }
    }
}

/// Why a depacketizer refused a packet. Every refusal ends the session; `source::rtsp` adds the
/// camera URL, stream, RTP sequence number and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The access unit in progress would grow past `MAX_ACCESS_UNIT_BYTES`.
    AccessUnitTooLarge {
        /// The size it would have reached with this packet, in bytes.
        would_be_bytes: usize,
    },
    /// The access unit in progress would hold more than `MAX_NALS_PER_ACCESS_UNIT` NAL units.
    TooManyNals,
    /// The payload breaks its RTP payload format (RFC 6184, RFC 7798 or RFC 3640).
    Malformed(String),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::AccessUnitTooLarge { would_be_bytes } => write!(
                f,
                "access unit would grow to {would_be_bytes} bytes, over the {MAX_ACCESS_UNIT_BYTES}-byte cap \
                 (a frame too large or never ended)"
            ),
            Rejected::TooManyNals => {
                write!(f, "access unit has more than the cap of {MAX_NALS_PER_ACCESS_UNIT} NAL units")
            }
            Rejected::Malformed(m) => write!(f, "malformed RTP payload: {m}"),
        }
    }
}

impl Rejected {
    /// True for the memory caps, which are reported as `ResourceExhausted` rather than bad input.
    pub fn is_cap(&self) -> bool {
        !matches!(self, Rejected::Malformed(_))
    }
}

fn malformed(m: impl Into<String>) -> Rejected {
    Rejected::Malformed(m.into())
}
