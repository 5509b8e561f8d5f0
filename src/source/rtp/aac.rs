//! AAC over RTP in RFC 3640's AAC-hbr mode (13-bit AU sizes, 3-bit indices: the only mode retina's
//! SDP parser gives parameters for): raw AAC frames out.
//! Invariant: a fragmented frame holds at most the 8191 bytes its 13-bit size field can declare.

use std::collections::VecDeque;

use super::{malformed, Packet, Rejected};

/// Bits of one AU-header in AAC-hbr: `sizelength=13` plus `indexlength=3` (and
/// `indexdeltalength=3` for the headers after the first).
const AU_HEADER_BITS: u16 = 16;

/// One complete AAC frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioFrame {
    /// Time since the session's start, in the stream's sample rate.
    pub elapsed: i64,
    /// The raw AAC frame (no ADTS header).
    pub data: Vec<u8>,
}

/// A frame split over several packets, being reassembled.
#[derive(Debug)]
struct Fragment {
    /// Extended RTP timestamp of the frame's packets.
    timestamp: i64,
    /// Time since the session's start of the frame.
    elapsed: i64,
    /// The size its AU-header declared (at most 8191 bytes).
    size_bytes: usize,
    /// What arrived so far. Invariant: `data.len() < size_bytes`.
    data: Vec<u8>,
    /// The first piece followed a sequence gap, so it may be the middle of a lost frame.
    after_loss: bool,
}

/// Turns one AAC stream's RTP packets into frames. Call `pull` until it returns `None` after every
/// `push`.
#[derive(Debug)]
pub struct Depacketizer {
    /// Samples per AAC frame (1024 for AAC-LC), which spaces the frames of one packet in time.
    frame_length: u32,
    /// The fragmented frame in progress.
    fragment: Option<Fragment>,
    /// Finished frames waiting for `pull`: at most the AU-header count of one packet.
    ready: VecDeque<AudioFrame>,
}

impl Depacketizer {
    /// `frame_length` comes from the SDP's AudioSpecificConfig (retina's `AudioParameters`).
    pub fn new(frame_length: u32) -> Self {
        Depacketizer { frame_length, fragment: None, ready: VecDeque::new() }
    }

    /// The next finished frame.
    pub fn pull(&mut self) -> Option<AudioFrame> {
        self.ready.pop_front()
    }

    /// Takes one packet. An error ends the session.
    pub fn push(&mut self, pkt: &Packet<'_>) -> Result<(), Rejected> {
        if pkt.loss > 0 {
            // A frame in progress lost a piece; it cannot be completed.
            self.fragment = None;
        }
        let payload = pkt.payload;
        let Some(&[hi, lo]) = payload.get(..2) else {
            return Err(malformed("AAC packet too short for its AU-headers-length"));
        };
        let headers_bits = u16::from_be_bytes([hi, lo]);
        if headers_bits % AU_HEADER_BITS != 0 {
            return Err(malformed(format!("AU-headers-length of {headers_bits} bits is not a multiple of 16")));
        }
        let count = usize::from(headers_bits / AU_HEADER_BITS);
        let data_at = 2 + 2 * count;
        let (Some(headers), Some(mut data)) = (payload.get(2..data_at), payload.get(data_at..)) else {
            return Err(malformed(format!("AAC packet of {} bytes too short for {count} AU-headers", payload.len())));
        };
        // AU-header `i` as (size in bytes, index); `headers` holds exactly `count` of them.
        let header = |i: usize| -> (usize, u8) {
            let h = match headers.get(2 * i..2 * i + 2) {
                Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
                _ => 0,
            };
            (usize::from(h >> 3), (h & 0x7) as u8)
        };
        if let Some(mut f) = self.fragment.take() {
            if count != 1 || pkt.timestamp != f.timestamp || header(0).0 != f.size_bytes {
                return Err(malformed("AAC fragment continues with another frame"));
            }
            let would_be = f.data.len() + data.len();
            if would_be > f.size_bytes {
                return Err(malformed(format!("AAC fragment grows to {would_be} bytes, declared {}", f.size_bytes)));
            }
            f.data.extend_from_slice(data);
            if f.data.len() == f.size_bytes {
                self.ready.push_back(AudioFrame { elapsed: f.elapsed, data: f.data });
            } else if pkt.mark && f.after_loss {
                // The frame began in a packet that followed a loss: it was a lost frame's tail.
            } else if pkt.mark {
                return Err(malformed("AAC fragment marked complete before its declared size"));
            } else {
                self.fragment = Some(f);
            }
            return Ok(());
        }
        if count == 0 {
            return Err(malformed("AAC packet without AU-headers"));
        }
        let mut elapsed = pkt.elapsed;
        for i in 0..count {
            let (size_bytes, index) = header(i);
            if index != 0 {
                return Err(malformed("interleaved AAC (non-zero AU index) is not supported"));
            }
            if size_bytes > data.len() {
                if count != 1 {
                    return Err(malformed("a fragmented AAC frame shares its packet with others"));
                }
                if pkt.loss > 0 && pkt.mark {
                    // The end of a frame whose start was lost.
                    return Ok(());
                }
                self.fragment = Some(Fragment {
                    timestamp: pkt.timestamp,
                    elapsed,
                    size_bytes,
                    data: data.to_vec(),
                    after_loss: pkt.loss > 0,
                });
                return Ok(());
            }
            self.ready.push_back(AudioFrame { elapsed, data: data[..size_bytes].to_vec() });
            data = &data[size_bytes..];
            elapsed = elapsed
                .checked_add(i64::from(self.frame_length))
                .ok_or_else(|| malformed("AAC timestamp overflows"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ts: i64, mark: bool, loss: u16, payload: &[u8]) -> Packet<'_> {
        Packet { sequence_number: 1, timestamp: ts, elapsed: ts, mark, loss, payload }
    }

    /// AU-headers-length and 16-bit AU-headers (13-bit size, index 0) for `sizes`.
    fn headers(sizes: &[u16]) -> Vec<u8> {
        let mut v = ((sizes.len() * 16) as u16).to_be_bytes().to_vec();
        for s in sizes {
            v.extend_from_slice(&(s << 3).to_be_bytes());
        }
        v
    }

    #[test]
    fn aggregated_frames_are_spaced_by_the_frame_length() {
        let mut d = Depacketizer::new(1024);
        let payload = [headers(&[2, 3]), vec![1, 2, 3, 4, 5]].concat();
        d.push(&pkt(480, true, 0, &payload)).unwrap();
        assert_eq!(d.pull(), Some(AudioFrame { elapsed: 480, data: vec![1, 2] }));
        assert_eq!(d.pull(), Some(AudioFrame { elapsed: 1504, data: vec![3, 4, 5] }));
        assert_eq!(d.pull(), None);
    }

    #[test]
    fn fragmented_frame_is_reassembled_and_a_lost_piece_drops_it() {
        let mut d = Depacketizer::new(1024);
        let first = [headers(&[5]), vec![1, 2]].concat();
        let last = [headers(&[5]), vec![3, 4, 5]].concat();
        d.push(&pkt(0, false, 0, &first)).unwrap();
        assert_eq!(d.pull(), None);
        d.push(&pkt(0, true, 0, &last)).unwrap();
        assert_eq!(d.pull(), Some(AudioFrame { elapsed: 0, data: vec![1, 2, 3, 4, 5] }));
        // The first piece of the next frame is lost: its tail alone is dropped without an error.
        d.push(&pkt(1024, true, 1, &last)).unwrap();
        assert_eq!(d.pull(), None);
    }

    #[test]
    fn hostile_packets_are_refused() {
        let cases: [(&str, Vec<u8>); 5] = [
            ("too short", vec![0]),
            ("odd header bits", vec![0, 15, 0, 0]),
            ("headers past the end", vec![0, 64, 0, 8]),
            ("no headers", vec![0, 0, 1]),
            ("interleaved", [vec![0, 16], vec![0, 0x11], vec![1, 2]].concat()),
        ];
        for (name, payload) in cases {
            let mut d = Depacketizer::new(1024);
            assert!(d.push(&pkt(0, true, 0, &payload)).is_err(), "{name}");
        }
        // A fragment that overruns the size it declared.
        let mut d = Depacketizer::new(1024);
        d.push(&pkt(0, false, 0, &[headers(&[3]), vec![1, 2]].concat())).unwrap();
        assert!(d.push(&pkt(0, true, 0, &[headers(&[3]), vec![3, 4]].concat())).is_err());
    }
}
