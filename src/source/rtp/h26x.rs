//! H.264 (RFC 6184) and H.265 (RFC 7798) RTP depacketizing into AVC/HEVC access units with 4-byte
//! length prefixes (what MP4 samples hold), with in-band parameter sets taken out and remembered.
//! Invariant: an access unit in progress never holds more than `MAX_ACCESS_UNIT_BYTES` (capacity
//! included) or `MAX_NALS_PER_ACCESS_UNIT` NAL units; the check comes before the buffer grows.

use std::collections::VecDeque;

use base64::Engine as _;

use super::{malformed, Packet, Rejected, MAX_ACCESS_UNIT_BYTES, MAX_NALS_PER_ACCESS_UNIT};

/// The two video codecs recorded from RTSP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// What a NAL unit is, as far as access-unit assembly cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NalRole {
    /// A coded slice. `idr` and `irap` say whether it belongs to a random access picture.
    Slice { idr: bool, irap: bool },
    /// H.265 video parameter set.
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
    /// Anything else kept in the sample (SEI, access unit delimiter, ...).
    Other,
}

impl VideoCodec {
    /// Bytes in a NAL unit header (and in an RTP payload header).
    fn header_bytes(self) -> usize {
        match self {
            VideoCodec::H264 => 1,
            VideoCodec::H265 => 2,
        }
    }

    /// The NAL unit type from the first header byte.
    fn nal_type(self, first: u8) -> u8 {
        match self {
            VideoCodec::H264 => first & 0x1f,
            VideoCodec::H265 => (first >> 1) & 0x3f,
        }
    }

    fn role(self, nal_type: u8) -> NalRole {
        match (self, nal_type) {
            (VideoCodec::H264, 1..=4) => NalRole::Slice { idr: false, irap: false },
            (VideoCodec::H264, 5) => NalRole::Slice { idr: true, irap: true },
            (VideoCodec::H264, 7) => NalRole::Sps,
            (VideoCodec::H264, 8) => NalRole::Pps,
            // H.265 IRAP pictures are NAL types 16..=23 (BLA, IDR, CRA and reserved IRAP); the IDR
            // ones are 19 and 20.
            (VideoCodec::H265, 19 | 20) => NalRole::Slice { idr: true, irap: true },
            (VideoCodec::H265, 16..=23) => NalRole::Slice { idr: false, irap: true },
            (VideoCodec::H265, 0..=31) => NalRole::Slice { idr: false, irap: false },
            (VideoCodec::H265, 32) => NalRole::Vps,
            (VideoCodec::H265, 33) => NalRole::Sps,
            (VideoCodec::H265, 34) => NalRole::Pps,
            _ => NalRole::Other,
        }
    }
}

/// The newest parameter sets the camera sent in band (each a whole NAL unit, header included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterSets {
    /// H.265 video parameter set; always `None` for H.264.
    pub vps: Option<Vec<u8>>,
    /// Sequence parameter set.
    pub sps: Option<Vec<u8>>,
    /// Picture parameter set.
    pub pps: Option<Vec<u8>>,
}

impl ParameterSets {
    fn slot(&mut self, role: NalRole) -> Option<&mut Option<Vec<u8>>> {
        match role {
            NalRole::Vps => Some(&mut self.vps),
            NalRole::Sps => Some(&mut self.sps),
            NalRole::Pps => Some(&mut self.pps),
            NalRole::Slice { .. } | NalRole::Other => None,
        }
    }

    /// Builds the `avc1`/`hvc1` sample entry box for these parameter sets, or `None` while one is
    /// still missing. Retina's parameter parser (the one that reads the SDP's
    /// `sprop-parameter-sets`) does the SPS parsing and box building, fed with the parameter sets
    /// as format-specific parameters, so one parser serves both the SDP and in-band parameters.
    pub fn sample_entry_box(&self, codec: VideoCodec) -> Result<Option<Vec<u8>>, String> {
        let b64 = |nal: &[u8]| base64::engine::general_purpose::STANDARD.encode(nal);
        let (encoding, fmtp) = match (codec, &self.vps, &self.sps, &self.pps) {
            (VideoCodec::H264, _, Some(sps), Some(pps)) => {
                ("h264", format!("packetization-mode=1;sprop-parameter-sets={},{}", b64(sps), b64(pps)))
            }
            (VideoCodec::H265, Some(vps), Some(sps), Some(pps)) => {
                ("h265", format!("sprop-vps={};sprop-sps={};sprop-pps={}", b64(vps), b64(sps), b64(pps)))
            }
            _ => return Ok(None),
        };
        let mut parser = retina::codec::Depacketizer::new("video", encoding, 90_000, None, Some(&fmtp))?;
        parser.set_frame_format(retina::codec::FrameFormat::MP4);
        match parser.parameters() {
            Some(retina::codec::ParametersRef::Video(v)) => {
                v.mp4_sample_entry().build().map(Some).map_err(|e| format!("sample entry: {e}"))
            }
            _ => Err(format!("{encoding} parameter sets in band do not parse")),
        }
    }
}

/// One complete video access unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// Time since the session's start, in the 90 kHz RTP clock.
    pub elapsed: i64,
    /// The access unit holds an IDR picture (a key frame for H.264).
    pub idr: bool,
    /// The access unit holds an IRAP picture (H.265 BLA, IDR or CRA; equal to `idr` for H.264).
    pub irap: bool,
    /// The NAL units, each behind a 4-byte big-endian length, without parameter sets.
    pub data: Vec<u8>,
    /// The parameter sets changed since the previous access unit handed out (or appeared for the
    /// first time), so the sample entry must be rebuilt from `Depacketizer::parameters`.
    pub new_parameters: bool,
}

/// A NAL unit split over FU packets, being reassembled at the end of the access unit's data.
#[derive(Debug)]
struct Fragment {
    /// Offset in `InProgress::data` of the NAL's 4-byte length prefix, filled in at the end.
    length_at: usize,
    /// The NAL type reconstructed from the FU header.
    nal_type: u8,
}

/// The access unit being assembled.
#[derive(Debug)]
struct InProgress {
    /// Extended RTP timestamp shared by the access unit's packets.
    timestamp: i64,
    /// Time since the session's start, 90 kHz.
    elapsed: i64,
    /// Length-prefixed NAL units so far. Invariant: `capacity() <= MAX_ACCESS_UNIT_BYTES`.
    data: Vec<u8>,
    /// NAL units counted against `MAX_NALS_PER_ACCESS_UNIT`, parameter sets included.
    nals: usize,
    /// A coded slice has been seen: only then may a marker bit or timestamp change end the unit.
    has_slice: bool,
    /// See `AccessUnit::idr`.
    idr: bool,
    /// See `AccessUnit::irap`.
    irap: bool,
    /// The FU-fragmented NAL unit in progress, if any.
    fragment: Option<Fragment>,
}

impl InProgress {
    fn new(pkt: &Packet<'_>) -> Self {
        InProgress {
            timestamp: pkt.timestamp,
            elapsed: pkt.elapsed,
            data: Vec::new(),
            nals: 0,
            has_slice: false,
            idr: false,
            irap: false,
            fragment: None,
        }
    }

    /// Makes room for `additional` bytes, or refuses if the access unit would pass the cap. The
    /// capacity never passes the cap either (growth is doubling, clamped to the cap).
    fn reserve(&mut self, additional: usize) -> Result<(), Rejected> {
        let would_be_bytes = self.data.len().saturating_add(additional);
        if would_be_bytes > MAX_ACCESS_UNIT_BYTES {
            return Err(Rejected::AccessUnitTooLarge { would_be_bytes });
        }
        if would_be_bytes > self.data.capacity() {
            let target = self.data.capacity().saturating_mul(2).max(would_be_bytes).min(MAX_ACCESS_UNIT_BYTES);
            self.data.reserve_exact(target - self.data.len());
        }
        Ok(())
    }

    fn count_nal(&mut self) -> Result<(), Rejected> {
        if self.nals >= MAX_NALS_PER_ACCESS_UNIT {
            return Err(Rejected::TooManyNals);
        }
        self.nals += 1;
        Ok(())
    }

    fn note_slice(&mut self, role: NalRole) {
        if let NalRole::Slice { idr, irap } = role {
            self.has_slice = true;
            self.idr |= idr;
            self.irap |= irap;
        }
    }
}

/// Where the depacketizer is between access units.
#[derive(Debug)]
enum State {
    /// Between access units: the next packet starts one.
    Idle,
    /// Assembling an access unit.
    Assembling(InProgress),
    /// Dropping the rest of an access unit that lost packets (or whose start was never seen),
    /// until its timestamp changes or its marker bit arrives.
    Discarding { timestamp: i64 },
}

/// Turns one stream's RTP packets into access units. Call `pull` until it returns `None` after
/// every `push`.
#[derive(Debug)]
pub struct Depacketizer {
    /// Which payload format (RFC 6184 or RFC 7798) the packets follow.
    codec: VideoCodec,
    /// What the next packet continues.
    state: State,
    /// A packet has started an access unit since the session began; before that, a fragment
    /// without its start (the camera began mid-NAL) is skipped instead of refused.
    started: bool,
    /// The newest parameter sets seen in band.
    params: ParameterSets,
    /// The parameter sets changed since the last access unit was handed out.
    params_changed: bool,
    /// Finished access units waiting for `pull`; at most two per `push` (the one a timestamp
    /// change ends and a one-packet unit ended by its marker bit).
    ready: VecDeque<AccessUnit>,
}

impl Depacketizer {
    pub fn new(codec: VideoCodec) -> Self {
        Depacketizer {
            codec,
            state: State::Idle,
            started: false,
            params: ParameterSets::default(),
            params_changed: false,
            ready: VecDeque::with_capacity(2),
        }
    }

    /// The newest in-band parameter sets.
    pub fn parameters(&self) -> &ParameterSets {
        &self.params
    }

    /// The next finished access unit.
    pub fn pull(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Bytes held by the access unit in progress (its buffer's capacity), for the cap's tests.
    #[cfg(test)]
    fn buffered_bytes(&self) -> usize {
        match &self.state {
            State::Assembling(au) => au.data.capacity(),
            State::Idle | State::Discarding { .. } => 0,
        }
    }

    /// Takes one packet. An error ends the session: the access unit in progress is dropped.
    pub fn push(&mut self, pkt: &Packet<'_>) -> Result<(), Rejected> {
        let r = self.push_inner(pkt);
        if r.is_err() {
            self.state = State::Idle;
        }
        r
    }

    fn push_inner(&mut self, pkt: &Packet<'_>) -> Result<(), Rejected> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        // Sequence loss: the access unit in progress is incomplete, so drop it and everything else
        // with its timestamp.
        let state = match state {
            State::Assembling(au) if pkt.loss > 0 => {
                if au.timestamp == pkt.timestamp {
                    State::Discarding { timestamp: au.timestamp }
                } else {
                    State::Idle
                }
            }
            other => other,
        };
        let mut au = match state {
            State::Discarding { timestamp } if timestamp == pkt.timestamp => {
                self.state = if pkt.mark { State::Idle } else { State::Discarding { timestamp } };
                return Ok(());
            }
            State::Idle | State::Discarding { .. } => InProgress::new(pkt),
            State::Assembling(mut au) => {
                if au.timestamp != pkt.timestamp {
                    if au.fragment.is_some() {
                        return Err(malformed(format!(
                            "timestamp changed from {} to {} in the middle of a fragmented NAL unit",
                            au.timestamp, pkt.timestamp
                        )));
                    }
                    if au.has_slice {
                        self.finish(au);
                        au = InProgress::new(pkt);
                    } else {
                        // Quirk: some cameras send parameter sets or SEI with a timestamp of their
                        // own before the picture; they belong to the picture that follows.
                        au.timestamp = pkt.timestamp;
                        au.elapsed = pkt.elapsed;
                    }
                }
                au
            }
        };
        let payload = pkt.payload;
        let header_bytes = self.codec.header_bytes();
        let Some(header) = payload.get(..header_bytes) else {
            return Err(malformed(format!("payload of {} bytes has no NAL header", payload.len())));
        };
        if header[0] & 0x80 != 0 {
            return Err(malformed(format!("NAL header {:02x} has the forbidden bit set", header[0])));
        }
        let body = &payload[header_bytes..];
        let kind = self.codec.nal_type(header[0]);
        match (self.codec, kind) {
            (VideoCodec::H264, 1..=23) | (VideoCodec::H265, 0..=47) => {
                if au.fragment.is_some() {
                    return Err(malformed("unfragmented NAL unit while a fragmented one is in progress"));
                }
                self.add_nal(&mut au, payload)?;
            }
            // STAP-A (RFC 6184 5.7.1) and H.265 aggregation packets (RFC 7798 4.4.2): 16-bit
            // sizes, each followed by a NAL unit. DONL fields are not supported (no
            // sprop-max-don-diff is negotiated).
            (VideoCodec::H264, 24) | (VideoCodec::H265, 48) => {
                if au.fragment.is_some() {
                    return Err(malformed("aggregation packet while a fragmented NAL unit is in progress"));
                }
                let mut rest = body;
                if rest.is_empty() {
                    return Err(malformed("empty aggregation packet"));
                }
                while !rest.is_empty() {
                    let Some(&[hi, lo]) = rest.get(..2) else {
                        return Err(malformed("aggregation packet ends inside a NAL size"));
                    };
                    let size = usize::from(u16::from_be_bytes([hi, lo]));
                    let Some(nal) = rest.get(2..2 + size) else {
                        return Err(malformed(format!(
                            "aggregated NAL of {size} bytes but only {} remain",
                            rest.len() - 2
                        )));
                    };
                    self.add_nal(&mut au, nal)?;
                    rest = &rest[2 + size..];
                }
            }
            // FU-A (RFC 6184 5.8) and H.265 FU (RFC 7798 4.4.3).
            (VideoCodec::H264, 28) | (VideoCodec::H265, 49) => {
                let Some((&fu_header, data)) = body.split_first() else {
                    return Err(malformed("fragmentation unit without an FU header"));
                };
                let start = fu_header & 0x80 != 0;
                let end = fu_header & 0x40 != 0;
                let (nal_header, nal_type) = match self.codec {
                    VideoCodec::H264 => {
                        let h = (header[0] & 0xe0) | (fu_header & 0x1f);
                        (vec![h], fu_header & 0x1f)
                    }
                    VideoCodec::H265 => {
                        let t = fu_header & 0x3f;
                        (vec![(header[0] & 0x81) | (t << 1), header[1]], t)
                    }
                };
                if pkt.mark && !end {
                    return Err(malformed("fragment with the marker bit but without the end bit"));
                }
                match (start, au.fragment.take()) {
                    (true, Some(_)) => {
                        return Err(malformed("fragment start while another fragmented NAL unit is in progress"));
                    }
                    (true, None) => {
                        // Start and end together violate RFC 6184 5.8, but some cameras wrap small
                        // NAL units this way; the result is one whole NAL unit, which is fine.
                        au.count_nal()?;
                        au.reserve(4 + nal_header.len() + data.len())?;
                        let length_at = au.data.len();
                        au.data.extend_from_slice(&[0; 4]);
                        au.data.extend_from_slice(&nal_header);
                        au.data.extend_from_slice(data);
                        au.fragment = Some(Fragment { length_at, nal_type });
                    }
                    (false, Some(f)) => {
                        au.reserve(data.len())?;
                        au.data.extend_from_slice(data);
                        au.fragment = Some(f);
                    }
                    (false, None) => {
                        if au.nals == 0 && (pkt.loss > 0 || !self.started) {
                            // The start of this NAL unit was lost, or the session began in the
                            // middle of it: skip to the next access unit.
                            self.state =
                                if pkt.mark { State::Idle } else { State::Discarding { timestamp: pkt.timestamp } };
                            return Ok(());
                        }
                        return Err(malformed("fragment continuation without its start"));
                    }
                }
                if end {
                    self.end_fragment(&mut au)?;
                }
            }
            (_, t) => {
                return Err(malformed(format!("unsupported NAL unit type {t} (interleaved mode, PACI or reserved)")))
            }
        }
        self.started = true;
        if pkt.mark && au.fragment.is_none() && au.has_slice {
            self.finish(au);
            self.state = State::Idle;
        } else {
            // A marker bit before any slice is a camera bug; keep assembling.
            self.state = State::Assembling(au);
        }
        Ok(())
    }

    /// Adds one whole NAL unit to the access unit (or to the parameter sets).
    fn add_nal(&mut self, au: &mut InProgress, nal: &[u8]) -> Result<(), Rejected> {
        let Some(&first) = nal.first() else {
            return Err(malformed("empty NAL unit"));
        };
        if nal.len() < self.codec.header_bytes() {
            return Err(malformed("NAL unit shorter than its header"));
        }
        au.count_nal()?;
        let role = self.codec.role(self.codec.nal_type(first));
        if let Some(slot) = self.params.slot(role) {
            if nal.len() > super::MAX_PARAMETER_SET_BYTES {
                return Err(malformed("parameter set over the 64 KiB cap"));
            }
            if slot.as_deref() != Some(nal) {
                *slot = Some(nal.to_vec());
                self.params_changed = true;
            }
            return Ok(());
        }
        let len = u32::try_from(nal.len()).map_err(|_| malformed("NAL unit over 4 GiB"))?;
        au.reserve(4 + nal.len())?;
        au.data.extend_from_slice(&len.to_be_bytes());
        au.data.extend_from_slice(nal);
        au.note_slice(role);
        Ok(())
    }

    /// Completes the fragmented NAL unit at the end of the access unit's data.
    fn end_fragment(&mut self, au: &mut InProgress) -> Result<(), Rejected> {
        let Some(f) = au.fragment.take() else {
            return Ok(());
        };
        let nal_start = f.length_at + 4;
        let nal_len = au.data.len().saturating_sub(nal_start);
        let len = u32::try_from(nal_len).map_err(|_| malformed("NAL unit over 4 GiB"))?;
        let role = self.codec.role(f.nal_type);
        if let Some(slot) = self.params.slot(role) {
            let nal = au.data.get(nal_start..).unwrap_or_default();
            if nal.len() > super::MAX_PARAMETER_SET_BYTES {
                return Err(malformed("parameter set over the 64 KiB cap"));
            }
            if slot.as_deref() != Some(nal) {
                *slot = Some(nal.to_vec());
                self.params_changed = true;
            }
            au.data.truncate(f.length_at);
            return Ok(());
        }
        if let Some(prefix) = au.data.get_mut(f.length_at..nal_start) {
            prefix.copy_from_slice(&len.to_be_bytes());
        }
        au.note_slice(role);
        Ok(())
    }

    fn finish(&mut self, au: InProgress) {
        self.ready.push_back(AccessUnit {
            elapsed: au.elapsed,
            idr: au.idr,
            irap: au.irap,
            data: au.data,
            new_parameters: std::mem::take(&mut self.params_changed),
        });
    }
}

#[cfg(test)]
mod tests {
    //! Issue 10 point 3: packet sequences through the depacketizer, real ones (the bundled demo
    //! clip packetized by retina's own `h264::Packetizer`) and hostile ones.

    use std::num::NonZeroU32;

    use proptest::prelude::*;

    use super::*;

    const CLOCK_HZ: u32 = 90_000;

    /// A packet owned by a test: payload plus the fields the depacketizer reads.
    #[derive(Clone, Debug)]
    struct TestPacket {
        seq: u16,
        ts: i64,
        mark: bool,
        loss: u16,
        payload: Vec<u8>,
    }

    impl TestPacket {
        fn new(seq: u16, ts: i64, mark: bool, payload: Vec<u8>) -> Self {
            TestPacket { seq, ts, mark, loss: 0, payload }
        }
        fn view(&self) -> Packet<'_> {
            Packet {
                sequence_number: self.seq,
                timestamp: self.ts,
                elapsed: self.ts,
                mark: self.mark,
                loss: self.loss,
                payload: &self.payload,
            }
        }
    }

    /// Pushes every packet and collects what comes out, stopping at the first refusal.
    fn run(d: &mut Depacketizer, pkts: &[TestPacket]) -> (Vec<AccessUnit>, Result<(), Rejected>) {
        let mut out = Vec::new();
        for p in pkts {
            let r = d.push(&p.view());
            assert!(d.buffered_bytes() <= MAX_ACCESS_UNIT_BYTES, "cap holds after seq {}", p.seq);
            while let Some(au) = d.pull() {
                out.push(au);
            }
            if r.is_err() {
                return (out, r);
            }
        }
        (out, Ok(()))
    }

    /// A length-prefixed sample and whether it is a sync sample.
    type Sample = (Vec<u8>, bool);

    /// The bundled demo clip's video: its SPS, PPS and length-prefixed samples with their sync flags.
    fn demo_clip_video() -> (Vec<u8>, Vec<u8>, Vec<Sample>) {
        let clip: &[u8] = include_bytes!("../demo_clip.mp4");
        let mut reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(clip), clip.len() as u64).unwrap();
        let (id, track) = reader
            .tracks()
            .iter()
            .find(|(_, t)| t.track_type().ok() == Some(mp4::TrackType::Video))
            .map(|(id, t)| (*id, t))
            .unwrap();
        let sps = track.sequence_parameter_set().unwrap().to_vec();
        let pps = track.picture_parameter_set().unwrap().to_vec();
        let count = track.sample_count();
        let samples = (1..=count)
            .map(|i| {
                let s = reader.read_sample(id, i).unwrap().unwrap();
                (s.bytes.to_vec(), s.is_sync)
            })
            .collect();
        (sps, pps, samples)
    }

    fn length_prefixed(nal: &[u8]) -> Vec<u8> {
        let mut v = (nal.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(nal);
        v
    }

    /// Packetizes access units with retina's H.264 packetizer (single NAL and FU-A packets).
    fn retina_packets(aus: &[(i64, Vec<u8>)], max_payload_bytes: u16) -> Vec<TestPacket> {
        let mut p = retina::codec::h264::Packetizer::new(max_payload_bytes, 0, 1000, 96, 0x1234).unwrap();
        let mut out = Vec::new();
        for (ts, data) in aus {
            let t = retina::Timestamp::new(*ts, NonZeroU32::new(CLOCK_HZ).unwrap(), 0).unwrap();
            p.push(t, bytes::Bytes::from(data.clone())).unwrap();
            while let Some(pkt) = p.pull().unwrap() {
                let v = Packet::of(&pkt);
                out.push(TestPacket::new(v.sequence_number, v.timestamp, v.mark, v.payload.to_vec()));
            }
        }
        out
    }

    #[test]
    fn demo_clip_round_trips_through_retina_packetizer() {
        let (sps, pps, samples) = demo_clip_video();
        // Parameter sets go in band before every key frame, as cameras send them.
        let aus: Vec<(i64, Vec<u8>)> = samples
            .iter()
            .enumerate()
            .map(|(i, (data, key))| {
                let mut au = Vec::new();
                if *key {
                    au.extend(length_prefixed(&sps));
                    au.extend(length_prefixed(&pps));
                }
                au.extend_from_slice(data);
                (i as i64 * 3600, au)
            })
            .collect();
        let pkts = retina_packets(&aus, 1400);
        assert!(pkts.iter().any(|p| p.payload[0] & 0x1f == 28), "the clip's key frames need FU-A");
        let mut d = Depacketizer::new(VideoCodec::H264);
        let (out, r) = run(&mut d, &pkts);
        r.unwrap();
        assert_eq!(out.len(), samples.len());
        for (i, (au, (data, key))) in out.iter().zip(&samples).enumerate() {
            assert_eq!(&au.data, data, "access unit {i} is the sample without parameter sets");
            assert_eq!(au.idr, *key, "access unit {i}");
            assert_eq!(au.elapsed, i as i64 * 3600);
            assert_eq!(au.new_parameters, i == 0, "parameters are new only the first time");
        }
        assert_eq!(d.parameters().sps.as_deref(), Some(&sps[..]));
        assert_eq!(d.parameters().pps.as_deref(), Some(&pps[..]));
        // The in-band parameter sets give a valid `avc1` entry with the clip's 640x360.
        let b = d.parameters().sample_entry_box(VideoCodec::H264).unwrap().unwrap();
        let e = crate::media::SampleEntry::new(b, CLOCK_HZ).unwrap();
        assert_eq!((e.codec(), e.width(), e.height()), (crate::media::Codec::H264, 640, 360));
    }

    #[test]
    fn stap_a_and_single_fragment_fu_a() {
        // STAP-A with an SPS-less SEI and a non-IDR slice, then an IDR slice as a one-piece FU-A
        // (start and end set, which some cameras send).
        let sei = [0x06, 0x05, 0x01, 0x80];
        let slice = [0x41, 0x9a, 0x00, 0x11];
        let mut stap = vec![0x18];
        for nal in [&sei[..], &slice[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        let fu = vec![0x7c, 0xc5, 0x88, 0x84];
        let pkts = [TestPacket::new(1, 0, true, stap), TestPacket::new(2, 3000, true, fu)];
        let (out, r) = run(&mut Depacketizer::new(VideoCodec::H264), &pkts);
        r.unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data, [length_prefixed(&sei), length_prefixed(&slice)].concat());
        assert!(!out[0].idr);
        assert_eq!(out[1].data, length_prefixed(&[0x65, 0x88, 0x84]));
        assert!(out[1].idr);
    }

    #[test]
    fn h265_fu_and_aggregation_packets() {
        // An AP with VPS, SPS, PPS (kept aside) and a CRA slice split over three FU packets.
        let (vps, sps, pps) = (vec![0x40, 0x01, 0x0c], vec![0x42, 0x01, 0x01], vec![0x44, 0x01, 0xc1]);
        let mut ap = vec![48 << 1, 0x01];
        for nal in [&vps, &sps, &pps] {
            ap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            ap.extend_from_slice(nal);
        }
        let cra_header = [21 << 1, 0x01];
        let fu = |flags: u8, body: &[u8]| [vec![49 << 1, 0x01, flags | 21], body.to_vec()].concat();
        let pkts = [
            TestPacket::new(7, 90, false, ap),
            TestPacket::new(8, 90, false, fu(0x80, &[1, 2])),
            TestPacket::new(9, 90, false, fu(0, &[3])),
            TestPacket::new(10, 90, true, fu(0x40, &[4, 5])),
        ];
        let mut d = Depacketizer::new(VideoCodec::H265);
        let (out, r) = run(&mut d, &pkts);
        r.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, length_prefixed(&[&cra_header[..], &[1, 2, 3, 4, 5]].concat()));
        assert!(out[0].irap && !out[0].idr && out[0].new_parameters);
        assert_eq!(d.parameters(), &ParameterSets { vps: Some(vps), sps: Some(sps), pps: Some(pps) });
    }

    /// A camera that starts an IDR NAL unit in FU-A fragments and never ends it: same timestamp,
    /// consecutive sequence numbers, no end bit, no marker (the case measured in issue 10).
    fn endless_fu_a(fragment_bytes: usize) -> impl Iterator<Item = TestPacket> {
        (0u32..).map(move |i| {
            let fu_header = if i == 0 { 0x85 } else { 0x05 };
            let mut payload = vec![0x7c, fu_header];
            payload.resize(2 + fragment_bytes, 0xab);
            TestPacket::new(i as u16, 9000, false, payload)
        })
    }

    #[test]
    fn endless_fu_a_hits_the_byte_cap() {
        let mut d = Depacketizer::new(VideoCodec::H264);
        let mut sent_bytes = 0usize;
        let err = endless_fu_a(1400)
            .take(MAX_ACCESS_UNIT_BYTES / 1400 + 10)
            .find_map(|p| {
                sent_bytes += p.payload.len();
                let r = d.push(&p.view()).err();
                assert!(d.buffered_bytes() <= MAX_ACCESS_UNIT_BYTES);
                r
            })
            .expect("the cap ends the access unit");
        assert!(
            matches!(err, Rejected::AccessUnitTooLarge { would_be_bytes } if would_be_bytes > MAX_ACCESS_UNIT_BYTES)
        );
        // Refused at the first packet past the cap (the FU headers make what was sent ~0.15% more).
        assert!(sent_bytes > MAX_ACCESS_UNIT_BYTES && sent_bytes < MAX_ACCESS_UNIT_BYTES / 1400 * 1402 + 2 * 1402);
        assert_eq!(d.buffered_bytes(), 0, "the refused access unit is freed");
        assert!(err.to_string().contains("8388608-byte cap"), "{err}");
    }

    /// Hostile sequences and what each must end in.
    #[test]
    fn hostile_sequences() {
        let big_stap = |seq: u16| {
            let mut p = vec![0x18];
            for _ in 0..4 {
                p.extend_from_slice(&16000u16.to_be_bytes());
                p.push(0x41);
                p.resize(p.len() + 15999, 0);
            }
            TestPacket::new(seq, 0, false, p)
        };
        let tiny_nal = |seq: u16| TestPacket::new(seq, 0, false, vec![0x06, 0x01]);
        let fu = |seq: u16, ts: i64, fu_header: u8| TestPacket::new(seq, ts, false, vec![0x7c, fu_header, 1, 2, 3]);
        let cases: Vec<(&str, Vec<TestPacket>, Option<&str>)> = vec![
            ("giant STAP-A never ended", (0..200).map(big_stap).collect(), Some("cap")),
            (
                // Parameter sets are kept between access units, so they have their own cap.
                "fragmented 100 KB SPS",
                vec![
                    TestPacket::new(1, 0, false, [vec![0x7c, 0x87], vec![1; 50_000]].concat()),
                    TestPacket::new(2, 0, false, [vec![0x7c, 0x47], vec![1; 50_000]].concat()),
                ],
                Some("parameter set over the 64 KiB cap"),
            ),
            ("NAL count flood", (0..2000).map(tiny_nal).collect(), Some("NAL units")),
            (
                "timestamp change mid-FU",
                vec![fu(1, 0, 0x85), fu(2, 3000, 0x05)],
                Some("timestamp changed from 0 to 3000 in the middle"),
            ),
            ("FU start inside FU", vec![fu(1, 0, 0x85), fu(2, 0, 0x85)], Some("another fragmented")),
            ("continuation after a whole AU", vec![tiny_nal(0), fu(1, 0, 0x05)], Some("without its start")),
            ("F bit", vec![TestPacket::new(1, 0, true, vec![0xe5, 0])], Some("forbidden bit")),
            ("STAP-A overrun", vec![TestPacket::new(1, 0, true, vec![0x18, 0x00, 0x09, 0x65])], Some("only 1 remain")),
            ("empty payload", vec![TestPacket::new(1, 0, true, vec![])], Some("no NAL header")),
            (
                "interleaved mode",
                vec![TestPacket::new(1, 0, true, vec![0x19, 0])],
                Some("unsupported NAL unit type 25"),
            ),
            // The session began inside a NAL unit: skipped, then the next access unit is fine.
            ("mid-NAL start", vec![fu(1, 0, 0x05), fu(2, 0, 0x45), TestPacket::new(3, 9, true, vec![0x65, 1])], None),
        ];
        for (name, pkts, want) in cases {
            let mut d = Depacketizer::new(VideoCodec::H264);
            let (_, r) = run(&mut d, &pkts);
            match (want, r) {
                (None, Ok(())) => {}
                (Some(w), Err(e)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (w, r) => panic!("{name}: expected {w:?}, got {r:?}"),
            }
            assert_eq!(d.buffered_bytes(), 0, "{name}: nothing held after the sequence ends or fails");
        }
    }

    #[test]
    fn loss_mid_fu_discards_only_that_access_unit() {
        let fu = |seq: u16, ts: i64, fu_header: u8, mark: bool| {
            TestPacket::new(seq, ts, mark, vec![0x7c, fu_header, 1, 2, 3])
        };
        let mut lost = fu(3, 0, 0x05, false);
        lost.loss = 1;
        let pkts =
            [fu(1, 0, 0x85, false), lost, fu(4, 0, 0x45, true), fu(5, 3000, 0x85, false), fu(6, 3000, 0x45, true)];
        let (out, r) = run(&mut Depacketizer::new(VideoCodec::H264), &pkts);
        r.unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].elapsed, 3000);
        assert_eq!(out[0].data, length_prefixed(&[0x65, 1, 2, 3, 1, 2, 3]));
    }

    /// Any packet: a random NAL header byte (so every payload type is tried), random FU bits and
    /// random sizes, with a timestamp from a small set so access units grow and end at random.
    fn any_packet() -> impl Strategy<Value = TestPacket> {
        (any::<u8>(), any::<u8>(), 0usize..3000, 0i64..3, any::<bool>(), 0u16..2, any::<u16>()).prop_map(
            |(hdr, second, len, ts, mark, loss, seq)| {
                let mut payload = vec![hdr & 0x7f, second];
                payload.resize(2 + len, (len % 251) as u8);
                TestPacket { seq, ts: ts * 3000, mark, loss, payload }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever arrives, the depacketizer never holds more than the cap, never panics, and every
        /// access unit it hands out is a well-formed sequence of length-prefixed NAL units.
        #[test]
        fn random_packets_stay_bounded(pkts in proptest::collection::vec(any_packet(), 1..600),
                                       h265 in any::<bool>()) {
            let codec = if h265 { VideoCodec::H265 } else { VideoCodec::H264 };
            let mut d = Depacketizer::new(codec);
            for p in &pkts {
                let _ = d.push(&p.view());
                prop_assert!(d.buffered_bytes() <= MAX_ACCESS_UNIT_BYTES);
                while let Some(au) = d.pull() {
                    prop_assert!(au.data.len() <= MAX_ACCESS_UNIT_BYTES);
                    let mut rest = &au.data[..];
                    let mut nals = 0;
                    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                        let len = u32::from_be_bytes(*len) as usize;
                        prop_assert!(len > 0 && len <= tail.len());
                        rest = &tail[len..];
                        nals += 1;
                    }
                    prop_assert!(rest.is_empty() && nals <= MAX_NALS_PER_ACCESS_UNIT);
                }
            }
        }
    }
}
