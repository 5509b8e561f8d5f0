//! Export MP4 header tests: real ffmpeg clips are taken apart into samples, rebuilt with
//! `build_header` plus their sample bytes, and the result must satisfy the `mp4` crate, ffprobe and
//! ffmpeg's decoder; synthetic inputs cover validation, 64-bit limits and the golden checksum.

use std::fs::File;
use std::io::{BufReader, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use edgerec::media::SampleEntry;
use edgerec::mp4::{
    build_fragment_head, build_header, build_init_segment, parse_box_header, rfc6381_codec, ChunkLayout, Edit, Header,
    Sample, TrackInput,
};

/// Creation time used where the exact value does not matter: 2026-11-23T10:00:00Z.
const CREATION_TIME_UNIX_SEC: i64 = 1_795_428_000;

/// Seconds from the ISO-BMFF epoch (1904) to the Unix epoch (1970).
const UNIX_EPOCH_IN_1904_SEC: u64 = 2_082_844_800;

/// One track of a source clip, as far as rebuilding it needs.
struct SourceTrack {
    /// The track's `avc1`/`hvc1`/`mp4a` box, taken verbatim from the source's stsd.
    entry: SampleEntry,
    /// Sizes, durations and sync flags as the `mp4` crate read them.
    samples: Vec<Sample>,
    /// Each sample's bytes, parallel to `samples`, to lay out in the rebuilt mdat.
    data: Vec<bytes::Bytes>,
    /// The source's own single-entry edit list converted to media units, carried over so that
    /// ffprobe's view of source and rebuilt file can be compared one to one.
    edit: Option<Edit>,
}

impl SourceTrack {
    fn input(&self) -> TrackInput<'_> {
        TrackInput { sample_entry: &self.entry, samples: &self.samples, edit: self.edit }
    }

    fn media_duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// Runs ffmpeg on lavfi's test pattern and a 440 Hz sine for four seconds with the given video
/// encoder arguments, as the brief for these tests specifies.
fn ffmpeg_testsrc_clip(dir: &Path, name: &str, video_args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "4"])
        .args(video_args)
        .args(["-c:a", "aac", "-shortest"])
        .arg(&path)
        .output()
        .expect("ffmpeg must be installed to run the MP4 export tests");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    path
}

fn h264_clip(dir: &Path) -> PathBuf {
    ffmpeg_testsrc_clip(dir, "testsrc_h264_aac.mp4", &["-c:v", "libx264", "-g", "25", "-bf", "0"])
}

/// x265 is told not to use B-frames because export writes no composition offsets (no ctts), just
/// like the cameras whose streams it exports.
fn h265_clip(dir: &Path) -> PathBuf {
    ffmpeg_testsrc_clip(
        dir,
        "testsrc_h265_aac.mp4",
        &["-c:v", "libx265", "-x265-params", "open-gop=0:keyint=25:bframes=0:log-level=error", "-tag:v", "hvc1"],
    )
}

/// Returns the children of the box whose content is `content`, as (fourcc, whole box bytes).
fn child_boxes(mut content: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut children = Vec::new();
    while !content.is_empty() {
        let header = parse_box_header(content).expect("well-formed box header");
        let len = usize::try_from(header.total_len).expect("box fits memory");
        children.push((header.fourcc, &content[..len]));
        content = &content[len..];
    }
    children
}

/// The content of the single child of type `fourcc`.
fn child<'a>(content: &'a [u8], fourcc: &[u8; 4]) -> &'a [u8] {
    let matches: Vec<_> = child_boxes(content).into_iter().filter(|(f, _)| f == fourcc).collect();
    assert_eq!(matches.len(), 1, "expected one {} box", String::from_utf8_lossy(fourcc));
    let whole = matches[0].1;
    let header = parse_box_header(whole).expect("checked by child_boxes");
    &whole[header.header_len..]
}

/// Walks moov/trak/mdia/minf/stbl/stsd of a whole file and returns each track's sample entry box,
/// in trak order.
fn sample_entry_boxes(file: &[u8]) -> Vec<Vec<u8>> {
    let moov = child(file, b"moov");
    child_boxes(moov)
        .into_iter()
        .filter(|(f, _)| f == b"trak")
        .map(|(_, trak)| {
            let trak = &trak[8..];
            let stbl = child(child(child(trak, b"mdia"), b"minf"), b"stbl");
            let stsd = child(stbl, b"stsd");
            // stsd content: version and flags (4 bytes), entry_count (4 bytes), then the entries.
            let entries = child_boxes(&stsd[8..]);
            assert_eq!(entries.len(), 1, "one sample entry per track");
            entries[0].1.to_vec()
        })
        .collect()
}

fn open_mp4(path: &Path) -> mp4::Mp4Reader<BufReader<File>> {
    let file = File::open(path).expect("open mp4");
    let size = file.metadata().expect("stat mp4").len();
    mp4::Mp4Reader::read_header(BufReader::new(file), size).expect("mp4 crate parses the file")
}

/// Reads every track of an MP4 file into samples and sample bytes.
fn read_source(path: &Path) -> Vec<SourceTrack> {
    let file_bytes = std::fs::read(path).expect("read source clip");
    let entries = sample_entry_boxes(&file_bytes);
    let mut reader = open_mp4(path);
    let movie_timescale = u64::from(reader.moov.mvhd.timescale);
    let traks: Vec<_> = reader.moov.traks.clone();
    assert_eq!(traks.len(), entries.len());
    traks
        .iter()
        .zip(entries)
        .map(|(trak, entry_box)| {
            let track_id = trak.tkhd.track_id;
            let timescale = trak.mdia.mdhd.timescale;
            let entry = SampleEntry::new(entry_box, timescale).expect("source sample entry is valid");
            let count = reader.sample_count(track_id).expect("sample count");
            let mut samples = Vec::new();
            let mut data = Vec::new();
            for id in 1..=count {
                let s = reader.read_sample(track_id, id).expect("read sample").expect("sample exists");
                assert_eq!(s.rendering_offset, 0, "export has no ctts, so the source must not reorder frames");
                samples.push(Sample {
                    size_bytes: u32::try_from(s.bytes.len()).expect("sample under 4 GiB"),
                    duration: s.duration,
                    key: s.is_sync,
                });
                data.push(s.bytes);
            }
            let media_duration: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
            let edit = trak.edts.as_ref().and_then(|edts| match edts.elst.as_ref()?.entries.as_slice() {
                [e] => {
                    let skip = e.media_time;
                    let duration = e.segment_duration * u64::from(timescale) / movie_timescale;
                    Some(Edit { skip, duration: duration.min(media_duration - skip) })
                }
                _ => None,
            });
            SourceTrack { entry, samples, data, edit }
        })
        .collect()
}

/// Splits each track into chunks of about one second and interleaves them by start time, the way
/// the store's chunks of a recording follow each other.
fn one_second_chunks(tracks: &[SourceTrack]) -> Vec<ChunkLayout> {
    // (start time in track units, track timescale, chunk)
    let mut chunks: Vec<(u64, u64, ChunkLayout)> = Vec::new();
    for (t, track) in tracks.iter().enumerate() {
        let timescale = u64::from(track.entry.timescale_hz());
        let mut first = 0;
        let mut start = 0u64;
        while first < track.samples.len() {
            let mut end = first;
            let mut duration = 0u64;
            let mut byte_len = 0u64;
            while end < track.samples.len() && duration < timescale {
                duration += u64::from(track.samples[end].duration);
                byte_len += u64::from(track.samples[end].size_bytes);
                end += 1;
            }
            chunks.push((
                start,
                timescale,
                ChunkLayout { track: t, first_sample: first, sample_count: end - first, byte_len },
            ));
            start += duration;
            first = end;
        }
    }
    chunks.sort_by(|a, b| {
        let a_time = u128::from(a.0) * u128::from(b.1);
        let b_time = u128::from(b.0) * u128::from(a.1);
        a_time.cmp(&b_time).then(a.2.track.cmp(&b.2.track))
    });
    chunks.into_iter().map(|(_, _, c)| c).collect()
}

/// Writes the virtual file to disk: the header, then every chunk's sample bytes in layout order.
fn write_rebuilt(path: &Path, tracks: &[SourceTrack], chunks: &[ChunkLayout]) -> Header {
    let inputs: Vec<_> = tracks.iter().map(SourceTrack::input).collect();
    let header = build_header(&inputs, chunks, CREATION_TIME_UNIX_SEC).expect("build_header");
    assert_eq!(header.media_offset, header.bytes.len() as u64);
    let mut out = std::io::BufWriter::new(File::create(path).expect("create rebuilt mp4"));
    out.write_all(&header.bytes).expect("write header");
    for c in chunks {
        for data in &tracks[c.track].data[c.first_sample..c.first_sample + c.sample_count] {
            out.write_all(data).expect("write sample");
        }
    }
    out.flush().expect("flush rebuilt mp4");
    drop(out);
    assert_eq!(std::fs::metadata(path).expect("stat rebuilt").len(), header.total_len);
    header
}

/// Checks the top-level layout is faststart: ftyp, moov, then an mdat that runs to the end.
fn assert_faststart(path: &Path, header: &Header) {
    let file = std::fs::read(path).expect("read rebuilt");
    let mut at = 0usize;
    let mut order = Vec::new();
    while at < file.len() {
        let h = parse_box_header(&file[at..]).expect("top-level box header");
        order.push(h.fourcc);
        if &h.fourcc == b"mdat" {
            assert_eq!((at + h.header_len) as u64, header.media_offset);
        }
        at += usize::try_from(h.total_len).expect("box fits memory");
    }
    assert_eq!(at, file.len(), "top-level boxes end exactly at the end of file");
    assert_eq!(order, [*b"ftyp", *b"moov", *b"mdat"]);
}

/// Checks the `mp4` crate reads back every sample unchanged, with the same timing and sync flags.
fn assert_mp4_crate_sees_source(path: &Path, tracks: &[SourceTrack]) {
    let mut reader = open_mp4(path);
    let traks = reader.moov.traks.clone();
    assert_eq!(traks.len(), tracks.len());
    for (trak, track) in traks.iter().zip(tracks) {
        let id = trak.tkhd.track_id;
        assert_eq!(trak.mdia.mdhd.timescale, track.entry.timescale_hz());
        assert_eq!(trak.mdia.mdhd.duration, track.media_duration());
        assert_eq!(reader.sample_count(id).expect("sample count") as usize, track.samples.len());
        for (i, (sample, data)) in track.samples.iter().zip(&track.data).enumerate() {
            let read =
                reader.read_sample(id, i as u32 + 1).expect("read rebuilt sample").expect("rebuilt sample exists");
            assert_eq!(read.bytes, *data, "track {id} sample {i} bytes");
            assert_eq!(read.duration, sample.duration, "track {id} sample {i} duration");
            assert_eq!(read.is_sync, sample.key, "track {id} sample {i} sync");
        }
        let rebuilt_skip = trak
            .edts
            .as_ref()
            .and_then(|e| e.elst.as_ref())
            .map(|elst| elst.entries.iter().map(|e| e.media_time).collect::<Vec<_>>());
        assert_eq!(rebuilt_skip, track.edit.map(|e| vec![e.skip]));
    }
}

/// ffprobe's per-stream report, counting decoded frames.
fn ffprobe_streams(path: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe must be installed to run the MP4 export tests");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "ffprobe complained: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    json["streams"].as_array().expect("streams array").clone()
}

fn stream_str<'a>(stream: &'a serde_json::Value, key: &str) -> &'a str {
    stream[key].as_str().unwrap_or_else(|| panic!("ffprobe stream lacks {key}: {stream}"))
}

fn stream_number(stream: &serde_json::Value, key: &str) -> f64 {
    stream_str(stream, key).parse().unwrap_or_else(|e| panic!("ffprobe {key} is not a number: {e}"))
}

/// Decodes the whole file with ffmpeg, which must neither fail nor print anything.
fn assert_ffmpeg_decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg decode failed");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "ffmpeg printed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The full round trip for one clip: rebuild it interleaved in one-second chunks and compare what
/// every reader sees with the source.
fn assert_round_trip(source: &Path, codec_tag: &str) {
    let dir = source.parent().expect("clip has a directory");
    let tracks = read_source(source);
    assert_eq!(tracks.len(), 2, "a video and an audio track");
    let chunks = one_second_chunks(&tracks);
    let rebuilt = dir.join("rebuilt.mp4");
    let header = write_rebuilt(&rebuilt, &tracks, &chunks);

    assert_faststart(&rebuilt, &header);
    assert_mp4_crate_sees_source(&rebuilt, &tracks);

    let source_streams = ffprobe_streams(source);
    let rebuilt_streams = ffprobe_streams(&rebuilt);
    assert_eq!(rebuilt_streams.len(), tracks.len());
    assert_eq!(stream_str(&rebuilt_streams[0], "codec_tag_string"), codec_tag);
    assert_eq!(stream_str(&rebuilt_streams[1], "codec_name"), "aac");
    for ((src, out), track) in source_streams.iter().zip(&rebuilt_streams).zip(&tracks) {
        for key in ["codec_name", "codec_tag_string", "width", "height", "sample_rate", "channels"] {
            assert_eq!(src[key], out[key], "ffprobe {key}");
        }
        assert_eq!(stream_number(out, "nb_frames") as usize, track.samples.len());
        assert_eq!(
            stream_str(src, "nb_read_frames"),
            stream_str(out, "nb_read_frames"),
            "decoded frames of {}",
            stream_str(out, "codec_name")
        );
        assert_eq!(stream_str(src, "duration"), stream_str(out, "duration"));
    }
    assert_ffmpeg_decodes_cleanly(&rebuilt);
}

#[test]
fn ffmpeg_testsrc_h264_aac_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_round_trip(&h264_clip(dir.path()), "avc1");
}

#[test]
fn ffmpeg_testsrc_h265_aac_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_round_trip(&h265_clip(dir.path()), "hvc1");
}

/// Exporting from a start time after a key frame: the first ten video frames are pre-roll that
/// must be decoded but not presented, and the audio skips the same span.
/// Issue 12 point 4 (live view, fMP4): writes `source` as the live hub does, an init segment
/// followed by one moof + mdat per sample, tracks interleaved by decode time, and checks that
/// ffprobe sees every frame of every track and that ffmpeg decodes it without a complaint.
fn assert_fragmented_round_trip(source: &Path, name: &str, codec_prefix: &str) {
    let dir = source.parent().expect("clip has a directory");
    let tracks = read_source(source);
    let entries: Vec<&SampleEntry> = tracks.iter().map(|t| &t.entry).collect();
    let mut out = build_init_segment(&entries).expect("init segment");
    // (decode time in seconds, track index, sample index, decode time in track units)
    let mut order = Vec::new();
    for (t, track) in tracks.iter().enumerate() {
        let mut at = 0u64;
        for (i, s) in track.samples.iter().enumerate() {
            order.push((at as f64 / f64::from(track.entry.timescale_hz()), t, i, at));
            at += u64::from(s.duration);
        }
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (sequence, (_, t, i, at)) in (1u32..).zip(&order) {
        let track = &tracks[*t];
        let head = build_fragment_head(sequence, *t as u32 + 1, *at, &track.samples[*i]).expect("fragment");
        out.extend_from_slice(&head);
        out.extend_from_slice(&track.data[*i]);
    }
    let path = dir.join(name);
    std::fs::write(&path, &out).expect("write fragmented file");
    assert_ffmpeg_decodes_cleanly(&path);
    let streams = ffprobe_streams(&path);
    assert_eq!(streams.len(), tracks.len());
    for (stream, track) in streams.iter().zip(&tracks) {
        let frames = stream_number(stream, "nb_read_frames") as usize;
        assert_eq!(frames, track.samples.len(), "every sample of {} is decoded", stream_str(stream, "codec_name"));
    }
    assert!(rfc6381_codec(&tracks[0].entry).starts_with(codec_prefix), "{}", rfc6381_codec(&tracks[0].entry));
    assert_eq!(rfc6381_codec(&tracks[1].entry), "mp4a.40.2");
}

// Issue 12 point 4 (live view): the demo camera's real H.264 + AAC frames as fragments.
#[test]
fn demo_camera_frames_as_fragmented_mp4_decode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = dir.path().join("demo_clip.mp4");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/source/demo_clip.mp4"), &clip).expect("copy");
    assert_fragmented_round_trip(&clip, "demo_live.mp4", "avc1.");
}

// Issue 12 point 4 (live view): H.265 (hvc1) frames as fragments.
#[test]
fn ffmpeg_testsrc_h265_as_fragmented_mp4_decodes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = h265_clip(dir.path());
    // testsrc is 4:4:4, so x265 chooses the Range Extensions profile (4).
    assert_fragmented_round_trip(&clip, "h265_live.mp4", "hvc1.4.");
}

#[test]
fn ffmpeg_testsrc_h264_edit_skips_ten_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracks = read_source(&h264_clip(dir.path()));
    let video_timescale = u64::from(tracks[0].entry.timescale_hz());
    let audio_timescale = u64::from(tracks[1].entry.timescale_hz());
    let frame_duration = u64::from(tracks[0].samples[0].duration);
    let video_skip: u64 = tracks[0].samples[..10].iter().map(|s| u64::from(s.duration)).sum();
    let video_edit = Edit { skip: video_skip, duration: tracks[0].media_duration() - video_skip };
    let audio_skip = video_skip * audio_timescale / video_timescale;
    let audio_edit = Edit {
        skip: audio_skip,
        duration: (video_edit.duration * audio_timescale / video_timescale)
            .min(tracks[1].media_duration() - audio_skip),
    };
    tracks[0].edit = Some(video_edit);
    tracks[1].edit = Some(audio_edit);
    let chunks = one_second_chunks(&tracks);
    let rebuilt = dir.path().join("edited.mp4");
    let header = write_rebuilt(&rebuilt, &tracks, &chunks);
    assert_faststart(&rebuilt, &header);
    assert_mp4_crate_sees_source(&rebuilt, &tracks);

    let streams = ffprobe_streams(&rebuilt);
    let video_seconds = stream_number(&streams[0], "duration");
    let expected_video_seconds = video_edit.duration as f64 / video_timescale as f64;
    let frame_seconds = frame_duration as f64 / video_timescale as f64;
    assert!(
        (video_seconds - expected_video_seconds).abs() <= frame_seconds,
        "video lasts {video_seconds} s, edit presents {expected_video_seconds} s"
    );
    assert_eq!(
        stream_number(&streams[0], "nb_read_frames") as usize,
        tracks[0].samples.len() - 10,
        "the ten pre-roll frames are decoded but not output"
    );
    let audio_seconds = stream_number(&streams[1], "duration");
    let expected_audio_seconds = audio_edit.duration as f64 / audio_timescale as f64;
    let audio_frame_seconds = f64::from(tracks[1].samples[0].duration) / audio_timescale as f64;
    assert!(
        (audio_seconds - expected_audio_seconds).abs() <= audio_frame_seconds,
        "audio lasts {audio_seconds} s, edit presents {expected_audio_seconds} s"
    );
    assert_ffmpeg_decodes_cleanly(&rebuilt);
}

/// Builds a synthetic `avc1` entry: a VisualSampleEntry with an `avcC` holding one made-up SPS
/// and PPS. It need not decode; it must only be well formed and never change.
fn synthetic_avc1(width: u16, height: u16) -> SampleEntry {
    let sps = [0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
    let pps = [0x68, 0xeb, 0xe3, 0xcb];
    let mut avcc = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&sps);
    avcc.push(1);
    avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&pps);

    let mut body = vec![0u8; 6]; // reserved
    body.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    body.extend_from_slice(&[0u8; 16]); // pre_defined and reserved
    body.extend_from_slice(&width.to_be_bytes());
    body.extend_from_slice(&height.to_be_bytes());
    body.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi horizontally
    body.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi vertically
    body.extend_from_slice(&[0u8; 4]); // reserved
    body.extend_from_slice(&1u16.to_be_bytes()); // frame_count
    body.extend_from_slice(&[0u8; 32]); // compressorname
    body.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
    body.extend_from_slice(&(-1i16).to_be_bytes()); // pre_defined
    body.extend_from_slice(&wrap_box(b"avcC", &avcc));
    SampleEntry::new(wrap_box(b"avc1", &body), 90_000).expect("synthetic avc1")
}

/// Builds a synthetic `mp4a` entry for 48 kHz stereo AAC-LC with a complete `esds`.
fn synthetic_mp4a() -> SampleEntry {
    let audio_specific_config = [0x11, 0x90];
    let mut decoder_config = vec![0x40, 0x15, 0, 0, 0];
    decoder_config.extend_from_slice(&128_000u32.to_be_bytes()); // max bitrate
    decoder_config.extend_from_slice(&128_000u32.to_be_bytes()); // average bitrate
    decoder_config.push(0x05);
    decoder_config.push(audio_specific_config.len() as u8);
    decoder_config.extend_from_slice(&audio_specific_config);
    let mut es = vec![0, 1, 0]; // ES_ID 1, no flags
    es.push(0x04);
    es.push(decoder_config.len() as u8);
    es.extend_from_slice(&decoder_config);
    es.extend_from_slice(&[0x06, 0x01, 0x02]); // SLConfigDescriptor, predefined MP4
    let mut esds = vec![0u8; 4]; // version and flags
    esds.push(0x03);
    esds.push(es.len() as u8);
    esds.extend_from_slice(&es);

    let mut body = vec![0u8; 6]; // reserved
    body.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    body.extend_from_slice(&[0u8; 8]); // reserved
    body.extend_from_slice(&2u16.to_be_bytes()); // channelcount
    body.extend_from_slice(&16u16.to_be_bytes()); // samplesize
    body.extend_from_slice(&[0u8; 4]); // pre_defined and reserved
    body.extend_from_slice(&(48_000u32 << 16).to_be_bytes()); // samplerate, 16.16
    body.extend_from_slice(&wrap_box(b"esds", &esds));
    SampleEntry::new(wrap_box(b"mp4a", &body), 48_000).expect("synthetic mp4a")
}

fn wrap_box(fourcc: &[u8; 4], content: &[u8]) -> Vec<u8> {
    let mut b = ((content.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(fourcc);
    b.extend_from_slice(content);
    b
}

/// Deterministic sample sizes (a linear congruential generator) so synthetic tables are not uniform.
fn pseudo_random_sizes(n: usize, seed: u32, min_bytes: u32, spread_bytes: u32) -> Vec<u32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            min_bytes + (state >> 8) % spread_bytes
        })
        .collect()
}

/// A synthetic recording of `seconds` seconds: 25 fps video at 90 kHz with a key frame every
/// `gop` frames, 48 kHz AAC in 1024-sample frames, stored in one-second chunks per track.
struct SyntheticRecording {
    /// The video track's entry.
    video_entry: SampleEntry,
    /// The audio track's entry.
    audio_entry: SampleEntry,
    /// Video samples in decode order.
    video: Vec<Sample>,
    /// Audio samples in decode order.
    audio: Vec<Sample>,
    /// Interleaved one-second chunks: video then audio for each second.
    chunks: Vec<ChunkLayout>,
}

impl SyntheticRecording {
    fn new(seconds: usize, gop: usize, uniform_audio_size: Option<u32>) -> Self {
        const FPS: usize = 25;
        const VIDEO_FRAME_90K: u32 = 90_000 / 25;
        const AAC_FRAME_SAMPLES: u32 = 1024;
        let video: Vec<Sample> = pseudo_random_sizes(seconds * FPS, 7, 2_000, 30_000)
            .into_iter()
            .enumerate()
            .map(|(i, size_bytes)| Sample { size_bytes, duration: VIDEO_FRAME_90K, key: i % gop == 0 })
            .collect();
        // 48000 / 1024 = 46.875 frames a second; round up so audio covers the video.
        let audio_frames = (seconds * 48_000).div_ceil(AAC_FRAME_SAMPLES as usize);
        let audio: Vec<Sample> = pseudo_random_sizes(audio_frames, 11, 300, 200)
            .into_iter()
            .map(|size| Sample {
                size_bytes: uniform_audio_size.unwrap_or(size),
                duration: AAC_FRAME_SAMPLES,
                key: true,
            })
            .collect();
        let mut chunks = Vec::new();
        let mut audio_next = 0usize;
        for second in 0..seconds {
            let video_first = second * FPS;
            chunks.push(chunk_of(0, &video, video_first, FPS));
            let audio_end =
                if second + 1 == seconds { audio.len() } else { ((second + 1) * 48_000) / AAC_FRAME_SAMPLES as usize };
            chunks.push(chunk_of(1, &audio, audio_next, audio_end - audio_next));
            audio_next = audio_end;
        }
        SyntheticRecording {
            video_entry: synthetic_avc1(1920, 1080),
            audio_entry: synthetic_mp4a(),
            video,
            audio,
            chunks,
        }
    }

    fn inputs(&self, video_edit: Option<Edit>) -> Vec<TrackInput<'_>> {
        vec![
            TrackInput { sample_entry: &self.video_entry, samples: &self.video, edit: video_edit },
            TrackInput { sample_entry: &self.audio_entry, samples: &self.audio, edit: None },
        ]
    }
}

fn chunk_of(track: usize, samples: &[Sample], first_sample: usize, sample_count: usize) -> ChunkLayout {
    ChunkLayout {
        track,
        first_sample,
        sample_count,
        byte_len: samples[first_sample..first_sample + sample_count].iter().map(|s| u64::from(s.size_bytes)).sum(),
    }
}

/// Parses a header alone with the `mp4` crate; the mdat payload is never read, so the reader is
/// told the file has its full length and seeks past the end of the header bytes.
fn parse_header_only(header: &Header) -> mp4::Mp4Reader<Cursor<Vec<u8>>> {
    mp4::Mp4Reader::read_header(Cursor::new(header.bytes.clone()), header.total_len)
        .expect("mp4 crate parses the header")
}

/// Byte-for-byte stability of the generated header. A change of this checksum means the exported
/// file format changed: that must be a conscious decision (checked with real players), not a side
/// effect of a refactor.
#[test]
fn synthetic_recording_header_golden_crc32c() {
    let rec = SyntheticRecording::new(3, 25, Some(371));
    let edit = Some(Edit { skip: 3_600 * 5, duration: 3_600 * 60 });
    let header = build_header(&rec.inputs(edit), &rec.chunks, CREATION_TIME_UNIX_SEC).expect("build_header");
    assert_eq!(crc32c::crc32c(&header.bytes), 0xd87a_ae6f, "header of {} bytes changed", header.bytes.len());
}

/// The header's tables say what the input said: checked field by field through the `mp4` crate.
#[test]
fn synthetic_recording_header_tables() {
    let rec = SyntheticRecording::new(3, 10, Some(371));
    let edit = Edit { skip: 3_600 * 5, duration: 3_600 * 60 };
    let header = build_header(&rec.inputs(Some(edit)), &rec.chunks, CREATION_TIME_UNIX_SEC).expect("build_header");
    let reader = parse_header_only(&header);
    assert_eq!(reader.ftyp.major_brand.value, *b"isom");
    let brands: Vec<[u8; 4]> = reader.ftyp.compatible_brands.iter().map(|b| b.value).collect();
    assert!(brands.contains(b"avc1") && brands.contains(b"mp4a") && brands.contains(b"iso2"));

    let creation_1904 = CREATION_TIME_UNIX_SEC as u64 + UNIX_EPOCH_IN_1904_SEC;
    let mvhd = &reader.moov.mvhd;
    assert_eq!(mvhd.creation_time, creation_1904);
    assert_eq!(mvhd.next_track_id, 3);
    let audio_duration_90k: u64 = rec.audio.iter().map(|s| u64::from(s.duration)).sum::<u64>() * 90_000 / 48_000;
    assert_eq!(
        mvhd.duration * 1_000_000 / u64::from(mvhd.timescale),
        audio_duration_90k * 1_000_000 / 90_000,
        "movie lasts as long as the longest presented track (audio, unedited)"
    );

    let [video, audio] = reader.moov.traks.as_slice() else {
        panic!("two traks");
    };
    assert_eq!(video.tkhd.track_id, 1);
    assert_eq!(video.tkhd.flags, 7);
    assert_eq!(video.tkhd.width.value(), 1920);
    assert_eq!(video.tkhd.height.value(), 1080);
    assert_eq!(video.tkhd.creation_time, creation_1904);
    assert_eq!(
        video.tkhd.duration * 90_000 / u64::from(mvhd.timescale),
        edit.duration,
        "tkhd says what the edit presents"
    );
    assert_eq!(audio.tkhd.volume.value(), 1);
    let elst = video.edts.as_ref().and_then(|e| e.elst.as_ref()).expect("video elst");
    assert_eq!(elst.entries.len(), 1);
    assert_eq!(elst.entries[0].media_time, edit.skip);
    assert_eq!(elst.entries[0].segment_duration * 90_000 / u64::from(mvhd.timescale), edit.duration);
    assert!(audio.edts.is_none());

    assert_eq!(video.mdia.mdhd.timescale, 90_000);
    assert_eq!(video.mdia.mdhd.language, "und");
    assert_eq!(video.mdia.mdhd.duration, rec.video.iter().map(|s| u64::from(s.duration)).sum::<u64>());
    assert_eq!(video.mdia.hdlr.handler_type.value, *b"vide");
    assert_eq!(audio.mdia.hdlr.handler_type.value, *b"soun");
    assert!(video.mdia.minf.vmhd.is_some() && audio.mdia.minf.smhd.is_some());

    let v = &video.mdia.minf.stbl;
    let expected_keys: Vec<u32> = (1u32..).zip(&rec.video).filter(|(_, s)| s.key).map(|(n, _)| n).collect();
    assert_eq!(v.stss.as_ref().expect("video has non-key frames").entries, expected_keys);
    assert_eq!(v.stts.entries.len(), 1, "constant frame rate is one stts run");
    assert_eq!(v.stsz.sample_size, 0);
    assert_eq!(v.stsz.sample_sizes, rec.video.iter().map(|s| s.size_bytes).collect::<Vec<_>>());
    assert_eq!(v.stsc.entries.len(), 1, "every video chunk holds 25 frames");

    let a = &audio.mdia.minf.stbl;
    assert!(a.stss.is_none(), "audio samples are all sync samples");
    assert_eq!(a.stsz.sample_size, 371, "uniform sizes are compacted");
    assert!(a.stsz.sample_sizes.is_empty());
    assert_eq!(a.stsz.sample_count as usize, rec.audio.len());
    // Audio chunks alternate between 46 and 47 frames (or so), so stsc needs several runs, and
    // together they must assign every sample.
    let mut counted = 0u64;
    let audio_chunks: Vec<&ChunkLayout> = rec.chunks.iter().filter(|c| c.track == 1).collect();
    for (i, e) in a.stsc.entries.iter().enumerate() {
        let next_first = a.stsc.entries.get(i + 1).map_or(audio_chunks.len() as u32 + 1, |n| n.first_chunk);
        counted += u64::from(next_first - e.first_chunk) * u64::from(e.samples_per_chunk);
    }
    assert_eq!(counted, rec.audio.len() as u64);

    // Chunk offsets: walk the layout in file order and compare with both tracks' stco.
    let mut expected: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut offset = header.media_offset;
    for c in &rec.chunks {
        expected[c.track].push(offset as u32);
        offset += c.byte_len;
    }
    assert_eq!(offset, header.total_len);
    assert_eq!(v.stco.as_ref().expect("stco").entries, expected[0]);
    assert_eq!(a.stco.as_ref().expect("stco").entries, expected[1]);
}

/// One hour as the brief sizes it (90,000 video and ~170,000 audio samples): the header must still
/// be parseable with 32-bit offsets and carry every sample.
#[test]
fn synthetic_one_hour_recording_header() {
    let rec = SyntheticRecording::new(3_600, 50, None);
    assert_eq!(rec.video.len(), 90_000);
    let header = build_header(&rec.inputs(None), &rec.chunks, CREATION_TIME_UNIX_SEC).expect("build_header");
    let reader = parse_header_only(&header);
    let counts: Vec<u32> = reader.moov.traks.iter().map(|t| t.mdia.minf.stbl.stsz.sample_count).collect();
    assert_eq!(counts, [rec.video.len() as u32, rec.audio.len() as u32]);
    assert!(reader.moov.traks.iter().all(|t| t.mdia.minf.stbl.stco.is_some()));
}

/// A single audio track whose first chunk is `first_bytes` long followed by a 4 GiB - 1 chunk,
/// so the payload always needs a 64-bit mdat size.
fn large_audio_export(entry: &SampleEntry, first_bytes: u32) -> (Vec<Sample>, Vec<ChunkLayout>) {
    let samples = vec![
        Sample { size_bytes: first_bytes, duration: 1024, key: true },
        Sample { size_bytes: u32::MAX, duration: 1024, key: true },
    ];
    let chunks = vec![chunk_of(0, &samples, 0, 1), chunk_of(0, &samples, 1, 1)];
    assert_eq!(entry.timescale_hz(), 48_000);
    (samples, chunks)
}

/// Offsets switch from stco to co64 exactly when the last chunk starts beyond `u32::MAX`, including
/// when it is the header's own length that pushes it over, and mdat gets a 64-bit size.
#[test]
fn chunk_offsets_switch_to_co64_past_4_gib() {
    let entry = synthetic_mp4a();
    let header_for = |first_bytes: u32| {
        let (samples, chunks) = large_audio_export(&entry, first_bytes);
        let tracks = [TrackInput { sample_entry: &entry, samples: &samples, edit: None }];
        let header = build_header(&tracks, &chunks, CREATION_TIME_UNIX_SEC).expect("build_header");
        let reader = parse_header_only(&header);
        let stbl = reader.moov.traks[0].mdia.minf.stbl.clone();
        (header, stbl, chunks)
    };

    // A probe with a small first chunk gives the header length when stco is used.
    let (probe, probe_stbl, _) = header_for(4096);
    assert!(probe_stbl.stco.is_some() && probe_stbl.co64.is_none());
    let stco_header_len = u32::try_from(probe.media_offset).expect("small header");

    // The second chunk then starts at exactly u32::MAX: still representable in stco.
    let (at_limit, stbl, _) = header_for(u32::MAX - stco_header_len);
    assert_eq!(at_limit.media_offset, probe.media_offset);
    assert_eq!(stbl.stco.expect("stco").entries, [stco_header_len, u32::MAX]);

    // One byte more and only co64 can hold it; the co64 header is longer than the stco one.
    let (past_limit, stbl, chunks) = header_for(u32::MAX - stco_header_len + 1);
    assert!(stbl.stco.is_none());
    assert!(past_limit.media_offset > probe.media_offset);
    let first = past_limit.media_offset;
    assert_eq!(stbl.co64.expect("co64").entries, [first, first + chunks[0].byte_len]);

    let payload: u64 = chunks.iter().map(|c| c.byte_len).sum();
    let mdat_at = (past_limit.media_offset - 16) as usize;
    let mdat = parse_box_header(&past_limit.bytes[mdat_at..]).expect("mdat header");
    assert_eq!(mdat.fourcc, *b"mdat");
    assert_eq!(mdat.header_len, 16);
    assert_eq!(mdat.total_len, payload + 16);
    assert_eq!(past_limit.total_len, past_limit.media_offset + payload);
}

#[test]
fn chunk_byte_len_mismatch_is_rejected() {
    let rec = SyntheticRecording::new(2, 25, None);
    let mut chunks = rec.chunks.clone();
    chunks[2].byte_len += 1;
    let err = build_header(&rec.inputs(None), &chunks, CREATION_TIME_UNIX_SEC).expect_err("must reject");
    assert!(err.contains("chunk 2"), "{err}");
}

#[test]
fn uncovered_samples_are_rejected() {
    let rec = SyntheticRecording::new(2, 25, None);
    // The last audio chunk is missing.
    let chunks = &rec.chunks[..rec.chunks.len() - 1];
    let err = build_header(&rec.inputs(None), chunks, CREATION_TIME_UNIX_SEC).expect_err("must reject");
    assert!(err.contains("track 1") && err.contains("in no chunk"), "{err}");

    // A chunk that runs past the end of its track.
    let mut chunks = rec.chunks.clone();
    let last = chunks.len() - 1;
    chunks[last].sample_count += 1;
    assert!(build_header(&rec.inputs(None), &chunks, CREATION_TIME_UNIX_SEC).is_err());
}

#[test]
fn out_of_order_or_repeated_chunks_are_rejected() {
    let rec = SyntheticRecording::new(3, 25, None);
    let mut swapped = rec.chunks.clone();
    swapped.swap(0, 2); // the two first video chunks
    let err = build_header(&rec.inputs(None), &swapped, CREATION_TIME_UNIX_SEC).expect_err("must reject");
    assert!(err.contains("chunk 0 of track 0"), "{err}");

    let mut repeated = rec.chunks.clone();
    repeated.insert(1, repeated[0]);
    assert!(build_header(&rec.inputs(None), &repeated, CREATION_TIME_UNIX_SEC).is_err());

    let mut unknown_track = rec.chunks.clone();
    unknown_track[0].track = 2;
    assert!(build_header(&rec.inputs(None), &unknown_track, CREATION_TIME_UNIX_SEC).is_err());
}

#[test]
fn edit_beyond_media_is_rejected() {
    let rec = SyntheticRecording::new(2, 25, None);
    let media: u64 = rec.video.iter().map(|s| u64::from(s.duration)).sum();
    let edit = Edit { skip: 3_600, duration: media };
    let err = build_header(&rec.inputs(Some(edit)), &rec.chunks, CREATION_TIME_UNIX_SEC).expect_err("must reject");
    assert!(err.contains("edit"), "{err}");
}

#[test]
fn creation_time_before_1904_is_rejected() {
    let rec = SyntheticRecording::new(1, 25, None);
    let before_1904 = -(UNIX_EPOCH_IN_1904_SEC as i64) - 1;
    assert!(build_header(&rec.inputs(None), &rec.chunks, before_1904).is_err());
}
