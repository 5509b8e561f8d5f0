//! Fragmented MP4 for live view: an init segment (ftyp + moov with mvex) and one `moof` + `mdat`
//! fragment per sample, plus the RFC 6381 codec string a browser's MSE asks about.
//! Invariant: the sample entries go into `stsd` verbatim, exactly as export writes them; no I/O.
//!
//! Each fragment carries one sample of one track with its own `tfdt`, so a fragment is built once
//! per frame and the same bytes serve every viewer, whichever fragment it starts with.

use super::boxes::BoxWriter;
use super::moov::{
    put_unity_matrix, write_hdlr, write_mdhd, write_media_header_and_dinf, write_stsd, FIXED_16_16_ONE, FIXED_8_8_ONE,
    TKHD_FLAGS,
};
use super::{parse_box_header, Sample, MOVIE_TIMESCALE_HZ};
use crate::media::{Codec, SampleEntry, StreamKind};

/// tfhd flag: offsets in `trun` count from the start of the `moof` (ISO/IEC 14496-12 8.8.7), which
/// is what MSE requires and what makes a fragment independent of where it lands in a stream.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// trun flags: data offset, then per sample its duration, size and flags.
const TRUN_DATA_OFFSET: u32 = 0x000_001;
const TRUN_SAMPLE_DURATION: u32 = 0x000_100;
const TRUN_SAMPLE_SIZE: u32 = 0x000_200;
const TRUN_SAMPLE_FLAGS: u32 = 0x000_400;
/// Sample flags of a sync sample: `sample_depends_on` = 2 (depends on no other sample).
const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// Sample flags of a non-sync video sample: `sample_depends_on` = 1 and `is_non_sync_sample`.
const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// Bytes of the `mdat` header that follows each `moof` (32-bit size: one sample is far below 4 GiB).
const MDAT_HEADER_BYTES: usize = 8;
/// The fixed part of a `VisualSampleEntry` before its child boxes (`avcC`, `hvcC`, `pasp`...).
const VISUAL_SAMPLE_ENTRY_BYTES: usize = 8 + 78;
/// The fixed part of an `AudioSampleEntry` before its child boxes (`esds`).
const AUDIO_SAMPLE_ENTRY_BYTES: usize = 8 + 28;

/// Builds the init segment of a live stream: `ftyp` and a `moov` whose tracks have empty sample
/// tables and an `mvex` with one `trex` per track. Track IDs are index + 1, so the video track
/// given first is track 1 and an audio track given second is track 2.
pub fn build_init_segment(tracks: &[&SampleEntry]) -> Result<Vec<u8>, String> {
    if tracks.is_empty() {
        return Err("an init segment needs at least one track".to_owned());
    }
    let mut w = BoxWriter::with_capacity(1024 + tracks.iter().map(|t| t.box_bytes().len()).sum::<usize>());
    /// Minor version as ffmpeg writes it for fragmented files; readers ignore it.
    const ISO5_MINOR_VERSION: u32 = 512;
    let ftyp = w.open(*b"ftyp");
    // `iso5` is the first brand that knows movie fragments with `default-base-is-moof`, which is
    // what every fragment uses; `iso6` and `mp41` are what ffmpeg lists beside it for MSE streams.
    w.bytes(b"iso5");
    w.u32(ISO5_MINOR_VERSION);
    for brand in [b"iso5", b"iso6", b"mp41"] {
        w.bytes(brand);
    }
    w.close(ftyp)?;

    let moov = w.open(*b"moov");
    let mvhd = w.open_full(*b"mvhd", 0, 0);
    w.u32(0); // creation_time: a live stream has no fixed creation time
    w.u32(0); // modification_time
    w.u32(MOVIE_TIMESCALE_HZ);
    w.u32(0); // duration: unknown, the fragments carry the samples
    w.u32(FIXED_16_16_ONE); // rate
    w.u16(FIXED_8_8_ONE); // volume
    w.zeros(2 + 2 * 4); // reserved
    put_unity_matrix(&mut w);
    w.zeros(6 * 4); // pre_defined
    w.u32(track_id(tracks.len())?.saturating_add(1)); // next_track_id
    w.close(mvhd)?;
    for (i, entry) in tracks.iter().enumerate() {
        write_trak(&mut w, track_id(i)?, entry)?;
    }
    let mvex = w.open(*b"mvex");
    for i in 0..tracks.len() {
        let trex = w.open_full(*b"trex", 0, 0);
        w.u32(track_id(i)?);
        w.u32(1); // default_sample_description_index
        w.u32(0); // default_sample_duration: each trun gives its own
        w.u32(0); // default_sample_size
        w.u32(0); // default_sample_flags
        w.close(trex)?;
    }
    w.close(mvex)?;
    w.close(moov)?;
    Ok(w.into_bytes())
}

/// The track ID of the track at `index` (IDs start at 1).
fn track_id(index: usize) -> Result<u32, String> {
    u32::try_from(index).ok().and_then(|i| i.checked_add(1)).ok_or_else(|| format!("track index {index} too large"))
}

/// One track of the init segment: headers and an `stbl` whose tables are empty.
fn write_trak(w: &mut BoxWriter, track_id: u32, entry: &SampleEntry) -> Result<(), String> {
    let kind = entry.codec().kind();
    let trak = w.open(*b"trak");
    let tkhd = w.open_full(*b"tkhd", 0, TKHD_FLAGS);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(track_id);
    w.u32(0); // reserved
    w.u32(0); // duration
    w.zeros(2 * 4); // reserved
    w.i16(0); // layer
    w.i16(0); // alternate_group
    w.u16(if kind == StreamKind::Audio { FIXED_8_8_ONE } else { 0 });
    w.u16(0); // reserved
    put_unity_matrix(w);
    w.u32(u32::from(entry.width()) << 16);
    w.u32(u32::from(entry.height()) << 16);
    w.close(tkhd)?;

    let mdia = w.open(*b"mdia");
    // No times and no duration: every sample is in a fragment.
    write_mdhd(w, 0, entry.timescale_hz(), 0)?;
    write_hdlr(w, kind)?;
    let minf = w.open(*b"minf");
    write_media_header_and_dinf(w, kind)?;
    let stbl = w.open(*b"stbl");
    write_stsd(w, entry.box_bytes())?;
    // Empty sample tables: every sample is in a fragment.
    for fourcc in [*b"stts", *b"stsc", *b"stco"] {
        let table = w.open_full(fourcc, 0, 0);
        w.u32(0); // entry_count
        w.close(table)?;
    }
    let stsz = w.open_full(*b"stsz", 0, 0);
    w.u32(0); // sample_size: per sample
    w.u32(0); // sample_count
    w.close(stsz)?;
    w.close(stbl)?;
    w.close(minf)?;
    w.close(mdia)?;
    w.close(trak)
}

/// Builds the `moof` and the `mdat` header of a fragment holding `sample` of track `track_id`,
/// decoded at `base_decode_time` (the track's timescale). The caller sends the sample's
/// `sample.size_bytes` bytes right after these. `sequence_number` goes into `mfhd`; it should
/// grow from fragment to fragment.
pub fn build_fragment_head(
    sequence_number: u32,
    track_id: u32,
    base_decode_time: u64,
    sample: &Sample,
) -> Result<Vec<u8>, String> {
    /// A moof of one sample is 104 bytes; the mdat header follows.
    const HEAD_BYTES: usize = 104 + MDAT_HEADER_BYTES;
    let mut w = BoxWriter::with_capacity(HEAD_BYTES);
    let moof = w.open(*b"moof");
    let mfhd = w.open_full(*b"mfhd", 0, 0);
    w.u32(sequence_number);
    w.close(mfhd)?;
    let traf = w.open(*b"traf");
    let tfhd = w.open_full(*b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
    w.u32(track_id);
    w.close(tfhd)?;
    let tfdt = w.open_full(*b"tfdt", 1, 0);
    w.u64(base_decode_time);
    w.close(tfdt)?;
    let trun = w.open_full(*b"trun", 0, TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS);
    w.u32(1); // sample_count
    let data_offset_at = w.len();
    w.u32(0); // data_offset, patched once the moof's size is known
    w.u32(sample.duration);
    w.u32(sample.size_bytes);
    w.u32(if sample.key { SAMPLE_FLAGS_SYNC } else { SAMPLE_FLAGS_NON_SYNC });
    w.close(trun)?;
    w.close(traf)?;
    w.close(moof)?;
    let data_offset = w.len() + MDAT_HEADER_BYTES;
    w.patch_u32(data_offset_at, u32::try_from(data_offset).map_err(|_| "moof too large".to_owned())?);
    let mdat_size = u32::try_from(MDAT_HEADER_BYTES)
        .ok()
        .and_then(|h| h.checked_add(sample.size_bytes))
        .ok_or_else(|| format!("a sample of {} bytes does not fit one small mdat", sample.size_bytes))?;
    w.u32(mdat_size);
    w.bytes(b"mdat");
    Ok(w.into_bytes())
}

/// The RFC 6381 `codecs` parameter of a sample entry, as MSE's `isTypeSupported` and HLS's
/// `CODECS` take it: `avc1.PPCCLL` (from `avcC`), `hvc1.P.C.TL.B` (from `hvcC`, ISO/IEC 14496-15
/// annex E), `mp4v.6c` (MJPEG) or `mp4a.40.AOT` (from the `esds` AudioSpecificConfig). A box too short to read falls
/// back to the codec's most common string, so a browser still gets a sensible question.
pub fn rfc6381_codec(entry: &SampleEntry) -> String {
    let b = entry.box_bytes();
    let fourcc = String::from_utf8_lossy(b.get(4..8).unwrap_or(b"????")).into_owned();
    match entry.codec() {
        Codec::H264 => child_box(b, VISUAL_SAMPLE_ENTRY_BYTES, b"avcC")
            .and_then(|c| c.get(1..4))
            .map_or_else(|| format!("{fourcc}.42e01e"), |p| format!("{fourcc}.{:02x}{:02x}{:02x}", p[0], p[1], p[2])),
        Codec::H265 => child_box(b, VISUAL_SAMPLE_ENTRY_BYTES, b"hvcC")
            .and_then(|c| hevc_codec(&fourcc, c))
            .unwrap_or_else(|| format!("{fourcc}.1.6.L93.B0")),
        // Issue 14: no browser's MSE takes MJPEG, and the string says so: `mp4v.6c` (RFC 6381,
        // objectTypeIndication 0x6C), which `isTypeSupported` answers false for.
        Codec::Mjpeg => format!("mp4v.{:02x}", crate::media::MJPEG_OBJECT_TYPE),
        Codec::Aac => {
            let aot = child_box(b, AUDIO_SAMPLE_ENTRY_BYTES, b"esds").and_then(aac_object_type).unwrap_or(2);
            format!("mp4a.40.{aot}")
        }
    }
}

/// The content (after the header) of the first child box `fourcc` of a sample entry whose child
/// boxes start at `children_at`.
fn child_box<'a>(entry: &'a [u8], children_at: usize, fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    let mut rest = entry.get(children_at..)?;
    while let Some(h) = parse_box_header(rest) {
        let len = usize::try_from(h.total_len).ok()?;
        let whole = rest.get(..len)?;
        if &h.fourcc == fourcc {
            return whole.get(h.header_len..);
        }
        rest = rest.get(len..)?;
    }
    None
}

/// `hvc1.P.C.TL.B` from an `hvcC` body: profile space and IDC, the compatibility flags in reverse
/// bit order, tier and level, then the constraint bytes without trailing zeros.
fn hevc_codec(fourcc: &str, hvcc: &[u8]) -> Option<String> {
    let head = hvcc.get(..13)?;
    let space = match head[1] >> 6 {
        0 => "",
        1 => "A",
        2 => "B",
        _ => "C",
    };
    let tier = if head[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile_idc = head[1] & 0x1f;
    let compat = u32::from_be_bytes([head[2], head[3], head[4], head[5]]).reverse_bits();
    let mut constraints: Vec<&u8> = head[6..12].iter().collect();
    while constraints.last().is_some_and(|b| **b == 0) {
        constraints.pop();
    }
    let mut s = format!("{fourcc}.{space}{profile_idc}.{compat:x}.{tier}{}", head[12]);
    for c in constraints {
        s.push_str(&format!(".{c:x}"));
    }
    Some(s)
}

/// The audio object type of the AudioSpecificConfig inside an `esds` body (full box, then an
/// ES_Descriptor holding a DecoderConfigDescriptor holding the DecoderSpecificInfo).
fn aac_object_type(esds: &[u8]) -> Option<u8> {
    /// Descriptor tags of ISO/IEC 14496-1.
    const ES_DESCR: u8 = 0x03;
    const DECODER_CONFIG: u8 = 0x04;
    const DECODER_SPECIFIC: u8 = 0x05;
    // Reads a descriptor header at `at`: its tag, and where its content starts and ends.
    let descriptor = |at: usize| -> Option<(u8, usize, usize)> {
        let tag = *esds.get(at)?;
        let mut len = 0usize;
        let mut i = at + 1;
        for _ in 0..4 {
            let b = *esds.get(i)?;
            i += 1;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        Some((tag, i, i.checked_add(len)?))
    };
    let (tag, start, _) = descriptor(4)?;
    if tag != ES_DESCR {
        return None;
    }
    let flags = *esds.get(start + 2)?;
    let mut at = start + 3;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*esds.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_Id
    }
    let (tag, start, _) = descriptor(at)?;
    if tag != DECODER_CONFIG {
        return None;
    }
    // objectTypeIndication, streamType, bufferSizeDB (3), maxBitrate (4), avgBitrate (4).
    let (tag, start, _) = descriptor(start + 13)?;
    if tag != DECODER_SPECIFIC {
        return None;
    }
    let aot = esds.get(start)? >> 3;
    Some(aot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::parse_box_header;

    /// A minimal `avc1` entry with an `avcC` of High profile level 3.1 and the given size.
    fn avc1(width: u16, height: u16) -> SampleEntry {
        let mut b = vec![0u8; VISUAL_SAMPLE_ENTRY_BYTES];
        b[4..8].copy_from_slice(b"avc1");
        b[32..34].copy_from_slice(&width.to_be_bytes());
        b[34..36].copy_from_slice(&height.to_be_bytes());
        let avcc = [1u8, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00];
        b.extend_from_slice(&(8 + avcc.len() as u32).to_be_bytes());
        b.extend_from_slice(b"avcC");
        b.extend_from_slice(&avcc);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_be_bytes());
        SampleEntry::new(b, 90_000).unwrap()
    }

    /// The boxes directly inside `content`, as (fourcc, whole box).
    fn children(mut content: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        while !content.is_empty() {
            let h = parse_box_header(content).unwrap();
            let len = h.total_len as usize;
            out.push((h.fourcc, &content[..len]));
            content = &content[len..];
        }
        out
    }

    // Issue 12 point 4 (LV, live view): the init segment is ftyp + moov, and moov ends with an mvex
    // that has one trex per track; track IDs are 1 for video.
    #[test]
    fn init_segment_has_ftyp_moov_and_mvex() {
        let entry = avc1(1280, 720);
        let init = build_init_segment(&[&entry]).unwrap();
        let top = children(&init);
        assert_eq!(top.iter().map(|(f, _)| *f).collect::<Vec<_>>(), [*b"ftyp", *b"moov"]);
        let moov = children(&top[1].1[8..]);
        let names: Vec<[u8; 4]> = moov.iter().map(|(f, _)| *f).collect();
        assert_eq!(names, [*b"mvhd", *b"trak", *b"mvex"]);
        let trex = children(&moov[2].1[8..]);
        assert_eq!(trex.len(), 1);
        assert_eq!(&trex[0].1[12..16], &1u32.to_be_bytes(), "track_id 1");
        // The sample entry is carried verbatim.
        let at = init.windows(entry.box_bytes().len()).position(|w| w == entry.box_bytes());
        assert!(at.is_some());
    }

    // Issue 12 point 4: a fragment's trun data offset points at the first byte after the mdat header,
    // counted from the start of the moof (default-base-is-moof), and mdat's size covers the sample.
    #[test]
    fn fragment_offsets_point_at_the_sample() {
        let sample = Sample { size_bytes: 1000, duration: 3600, key: true };
        let head = build_fragment_head(7, 1, 123_456_789_000, &sample).unwrap();
        let top = children(&head[..head.len() - 8]);
        assert_eq!(top.len(), 1);
        let moof_len = top[0].1.len();
        assert_eq!(head.len(), moof_len + 8);
        assert_eq!(&head[moof_len..], &[&1008u32.to_be_bytes()[..], b"mdat"].concat()[..]);
        let trun_at = head.windows(4).position(|w| w == b"trun").unwrap() - 4;
        let data_offset = u32::from_be_bytes(head[trun_at + 16..trun_at + 20].try_into().unwrap());
        assert_eq!(data_offset as usize, head.len());
        let tfdt_at = head.windows(4).position(|w| w == b"tfdt").unwrap() - 4;
        assert_eq!(head[tfdt_at + 8], 1, "tfdt version 1 (64-bit time)");
        assert_eq!(u64::from_be_bytes(head[tfdt_at + 12..tfdt_at + 20].try_into().unwrap()), 123_456_789_000);
        let non_key = build_fragment_head(8, 1, 0, &Sample { key: false, ..sample }).unwrap();
        let flags_at = non_key.len() - 8 - 4;
        assert_eq!(u32::from_be_bytes(non_key[flags_at..flags_at + 4].try_into().unwrap()), SAMPLE_FLAGS_NON_SYNC);
    }

    // Issue 12 point 4: the codec string MSE takes comes from avcC (profile, compatibility, level).
    #[test]
    fn rfc6381_codec_of_h264_and_hevc_and_aac() {
        assert_eq!(rfc6381_codec(&avc1(1280, 720)), "avc1.64001f");
        // hvcC of Main profile, Main tier, level 3.1 (93), progressive/frame-only constraint bits.
        let hvcc = [1u8, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93];
        assert_eq!(hevc_codec("hvc1", &hvcc).unwrap(), "hvc1.1.6.L93.90");
        // esds of AAC-LC 48 kHz mono as ffmpeg writes it.
        let esds = [
            0u8, 0, 0, 0, 0x03, 0x19, 0x00, 0x01, 0x00, 0x04, 0x11, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05,
            0x02, 0x11, 0x88,
        ];
        assert_eq!(aac_object_type(&esds), Some(2));
    }
}
