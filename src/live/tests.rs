//! The hub's invariants: bounded memory, never waiting for a viewer, skipping counted, and viewers
//! starting at a key frame.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::media::{Frame, SampleEntry, StreamKind};
use crate::mp4::parse_box_header;

/// 25 fps in 90 kHz units.
const FRAME_90K: i64 = 3600;

/// A minimal `avc1` sample entry (High profile, level 3.1) of the given width.
fn avc1(width: u16) -> Arc<SampleEntry> {
    let mut b = vec![0u8; 86];
    b[4..8].copy_from_slice(b"avc1");
    b[32..34].copy_from_slice(&width.to_be_bytes());
    b[34..36].copy_from_slice(&720u16.to_be_bytes());
    let avcc = [1u8, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00];
    b.extend_from_slice(&(8 + avcc.len() as u32).to_be_bytes());
    b.extend_from_slice(b"avcC");
    b.extend_from_slice(&avcc);
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_be_bytes());
    Arc::new(SampleEntry::new(b, 90_000).unwrap())
}

/// The monotonic time frame `n` arrives at: 25 fps, in real time.
fn at(n: i64) -> Duration {
    Duration::from_millis(40 * n as u64)
}

fn video(n: i64, key: bool, size: usize) -> Frame {
    Frame { kind: StreamKind::Video, media_time: n * FRAME_90K, key, data: Bytes::from(vec![n as u8; size]) }
}

/// Publishes frames `from..to` of a stream with a key frame every `gop` frames.
fn publish_gops(hub: &Hub, entry: &Arc<SampleEntry>, from: i64, to: i64, gop: i64, size: usize) {
    for n in from..to {
        hub.publish(entry, &video(n, n % gop == 0, size), at(n));
    }
}

/// Like `publish_gops`, with an HLS player asking for the playlist every second (25 frames), as
/// a player does at least once per target duration; returns the last playlist it got.
fn publish_watched(hub: &Hub, entry: &Arc<SampleEntry>, from: i64, to: i64, gop: i64, size: usize) -> Option<String> {
    let mut last = None;
    for n in from..to {
        if n % 25 == 0 {
            last = hub.playlist(false, at(n), Duration::ZERO).or(last);
        }
        hub.publish(entry, &video(n, n % gop == 0, size), at(n));
    }
    last
}

/// The top-level boxes of a byte stream: (fourcc, whole box).
fn boxes(mut b: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(h) = parse_box_header(b) {
        let len = h.total_len as usize;
        out.push((h.fourcc, b[..len].to_vec()));
        b = &b[len..];
    }
    out
}

/// The sample flags and decode time of each moof in `stream`, in order.
fn fragments_of(stream: &[u8]) -> Vec<(bool, u64)> {
    boxes(stream)
        .iter()
        .filter(|(f, _)| f == b"moof")
        .map(|(_, moof)| {
            let tfdt = moof.windows(4).position(|w| w == b"tfdt").unwrap() - 4;
            let time = u64::from_be_bytes(moof[tfdt + 12..tfdt + 20].try_into().unwrap());
            let flags = u32::from_be_bytes(moof[moof.len() - 4..].try_into().unwrap());
            (flags == 0x0200_0000, time)
        })
        .collect()
}

/// Everything a viewer has queued (never waits: only called with something queued).
fn read_queued(v: &mut Viewer) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 20];
    let n = v.read(&mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
    out
}

// Issue 12 point 4: a new viewer gets the init segment and then the cached GOP from the latest
// key frame on, so the first picture comes at once.
#[test]
fn a_new_viewer_starts_at_the_latest_key_frame() {
    let hub = Hub::new();
    let entry = avc1(1280);
    assert!(hub.subscribe(false, Duration::ZERO).is_none(), "no picture yet");
    publish_gops(&hub, &entry, 0, 13, 5, 1000); // key frames at 0, 5, 10; frame 12 is pending
    let mut v = hub.subscribe(false, Duration::ZERO).unwrap();
    let stream = read_queued(&mut v);
    let top: Vec<[u8; 4]> = boxes(&stream).iter().map(|(f, _)| *f).take(2).collect();
    assert_eq!(top, [*b"ftyp", *b"moov"]);
    let frags = fragments_of(&stream);
    assert_eq!(frags, [(true, 10 * 3600), (false, 11 * 3600)], "frames 10 and 11 of the GOP at 10");
    // New frames follow as they come.
    hub.publish(&entry, &video(13, false, 1000), at(13));
    assert_eq!(fragments_of(&read_queued(&mut v)), [(false, 12 * 3600)]);
}

// Issue 12 point 4 (never blocks ingest, bounded): a viewer that never reads does not hold ingest
// back; its queue stays within its caps, it skips to the next key frame, and that is counted.
#[test]
fn a_viewer_that_does_not_read_is_skipped_to_the_next_key_frame_and_counted() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_gops(&hub, &entry, 0, 2, 50, 100_000);
    let mut v = hub.subscribe(false, Duration::ZERO).unwrap();
    // 4000 frames of 100 kB (400 MB) at a viewer that reads nothing: publish returns every time.
    publish_gops(&hub, &entry, 2, 4002, 50, 100_000);
    assert!(hub.skipped_frames() > 3000, "skipped {}", hub.skipped_frames());
    let q = v.queue.inner.lock().unwrap();
    assert!(q.bytes <= VIEWER_QUEUE_MAX_BYTES && q.fragments.len() <= VIEWER_QUEUE_MAX_FRAGMENTS);
    drop(q);
    // What the viewer reads after the overflow starts with a key frame.
    let stream = read_queued(&mut v);
    let frags = fragments_of(&stream);
    assert!(frags[0].0, "after the skip the stream continues at a key frame: {:?}", &frags[..3]);
    assert!(frags.windows(2).all(|w| w[1].1 > w[0].1), "decode times increase");
    assert!(hub.held_bytes() <= GOP_CACHE_MAX_BYTES + HLS_MAX_BYTES);
}

// Issue 12 point 4 (memory bound): a GOP larger than the cache cap is dropped from the cache until
// the next key frame; a viewer joining meanwhile starts at that key frame.
#[test]
fn a_gop_larger_than_the_cache_is_dropped_until_the_next_key_frame() {
    let hub = Hub::new();
    let entry = avc1(1280);
    // One 10 MB GOP (100 frames of 100 kB) beyond the 8 MiB cap.
    publish_gops(&hub, &entry, 0, 101, 1000, 100_000);
    assert_eq!(hub.gop_overflows(), 1);
    assert!(hub.held_bytes() <= GOP_CACHE_MAX_BYTES);
    let mut v = hub.subscribe(false, Duration::ZERO).unwrap();
    assert_eq!(v.queue.inner.lock().unwrap().fragments.len(), 0);
    publish_gops(&hub, &entry, 101, 1003, 1000, 1000);
    let frags = fragments_of(&read_queued(&mut v));
    assert_eq!(frags[0], (true, 1000 * 3600), "the viewer starts at the next key frame");
    assert_eq!(frags.len(), 2);
}

// Issue 12 point 4: every viewer receives the same fragment object, built once per frame.
#[test]
fn a_fragment_is_built_once_and_shared_by_all_viewers() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_gops(&hub, &entry, 0, 2, 25, 1000);
    let a = hub.subscribe(false, Duration::ZERO).unwrap();
    let b = hub.subscribe(false, Duration::ZERO).unwrap();
    publish_gops(&hub, &entry, 2, 4, 25, 1000);
    let qa = a.queue.inner.lock().unwrap();
    let qb = b.queue.inner.lock().unwrap();
    assert_eq!(qa.fragments.len(), 3);
    assert!(qa.fragments.iter().zip(&qb.fragments).all(|(x, y)| Arc::ptr_eq(&x.0, &y.0)));
}

// Issue 12 point 4 (HLS): completed GOPs become the segments of a live playlist, at most
// `HLS_SEGMENTS` of them, each starting with its key frame.
#[test]
fn completed_gops_become_hls_segments() {
    let hub = Hub::new();
    let entry = avc1(1280);
    assert!(hub.playlist(false, at(0), Duration::ZERO).is_none(), "no picture yet (a player asked)");
    publish_gops(&hub, &entry, 0, 7 * 50 + 2, 50, 1000);
    let playlist = hub.playlist(false, at(352), Duration::ZERO).unwrap();
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{playlist}");
    assert!(playlist.contains("#EXT-X-MAP:URI=\"init.mp4?v=0\""), "{playlist}");
    assert!(playlist.contains("#EXTINF:2.000,\n6.m4s\n"), "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"), "{playlist}");
    assert_eq!(playlist.matches(".m4s").count(), HLS_SEGMENTS);
    assert!(!playlist.contains("EXT-X-DISCONTINUITY\n"), "{playlist}");
    let mut reader = hub.segment(4, false, at(352)).unwrap();
    let len = reader.len();
    // Issue 12 point 4, review: the segment is the ring's own fragments (no copy), read in
    // pieces of any size, and its length is known before it is read (Content-Length).
    {
        let s = hub.state.lock().unwrap();
        let ring = &s.hls.segments.iter().find(|g| g.sequence == 4).unwrap().fragments;
        assert!(ring.iter().zip(&reader.fragments).all(|(a, b)| Arc::ptr_eq(a, b)));
    }
    let mut seg = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seg.extend_from_slice(&buf[..n]);
    }
    assert_eq!(seg.len() as u64, len);
    let frags = fragments_of(&seg);
    assert_eq!(frags.len(), 50);
    assert_eq!(frags[0], (true, 200 * 3600));
}

// Issue 12 point 4, review (RFC 8216 section 6.2.2): a segment that left the playlist stays
// fetchable for its duration plus the playlist's (2 s + 3 × 2 s here, players fetch late), then
// goes.
#[test]
fn a_segment_stays_fetchable_for_a_playlist_duration_after_it_left_the_list() {
    let hub = Hub::new();
    let entry = avc1(1280);
    // 2 s GOPs; segment k completes when key frame 50 (k + 1) is emitted, at frame 50 (k + 1) + 1.
    publish_watched(&hub, &entry, 0, 4 * 50 + 2, 50, 1000);
    // Segment 3 completed at 8.04 s: segment 0 left the playlist then, fetchable until 16.04 s.
    let playlist = hub.playlist(false, at(202), Duration::ZERO).unwrap();
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{playlist}");
    publish_watched(&hub, &entry, 202, 7 * 50 + 2, 50, 1000);
    // 14.08 s: segments 0 to 3 left the playlist and are all still held.
    for n in 0..7 {
        assert!(hub.segment(n, false, at(352)).is_some(), "segment {n} at 14.08 s");
    }
    publish_watched(&hub, &entry, 352, 9 * 50 + 2, 50, 1000);
    // 18.08 s: 0 (until 16.04 s) and 1 (until 18.04 s) are gone; 2 (unlisted at 12.04 s) is not.
    assert!(hub.segment(0, false, at(452)).is_none() && hub.segment(1, false, at(452)).is_none());
    assert!(hub.segment(2, false, at(452)).is_some());
}

// Issue 12 point 4: a camera session that restarts (media time steps back) continues the
// viewer's timeline instead of jumping back.
#[test]
fn a_new_session_continues_the_timeline() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_gops(&hub, &entry, 0, 3, 25, 1000);
    let mut v = hub.subscribe(false, Duration::ZERO).unwrap();
    for n in 0..3 {
        hub.publish(&entry, &video(n - 1_000_000, n == 0, 1000), at(3 + n));
    }
    let frags = fragments_of(&read_queued(&mut v));
    let times: Vec<u64> = frags.iter().map(|f| f.1).collect();
    assert_eq!(times, [0, 3600, 7200, 10_800, 14_400]);
}

// Issue 12 point 4: new stream parameters end the viewers (their init segment is stale) and a
// viewer that went away leaves the hub.
#[test]
fn changed_parameters_end_viewers_and_gone_viewers_leave() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_gops(&hub, &entry, 0, 3, 25, 1000);
    let mut v = hub.subscribe(false, Duration::ZERO).unwrap();
    let gone = hub.subscribe(false, Duration::ZERO).unwrap();
    assert_eq!(hub.viewers(), 2);
    drop(gone);
    hub.publish(&entry, &video(3, false, 1000), at(3));
    assert_eq!(hub.viewers(), 1);
    let _ = read_queued(&mut v);
    hub.publish(&avc1(640), &video(4, true, 1000), at(4));
    let mut buf = [0u8; 1024];
    assert_eq!(v.read(&mut buf).unwrap(), 0, "the stream ends");
    assert_eq!(hub.viewers(), 0);
    assert_eq!(hub.info().unwrap().video.width(), 640);
    // Issue 12 point 4, review: a viewer names the tracks of its own init segment (its
    // Content-Type), whatever the hub has since.
    assert_eq!(v.stream_info().video.width(), 1280);
    assert!(v.stream_info().audio.is_none(), "audio not asked");
    let again = hub.subscribe(true, at(4));
    assert!(again.is_none() || again.unwrap().stream_info().video.width() == 640);
}

// Issue 12 point 4: a viewer whose oldest unread fragment waited longer than `VIEWER_MAX_LAG` on
// the ingest clock is skipped to the next key frame, though its queue is far from full; one that
// reads keeps everything. Time comes from the `Clocks` seam, so nothing waits.
#[test]
fn a_viewer_too_far_behind_live_is_skipped_on_the_ingest_clock() {
    use crate::clocks::{Clocks, SimulatedClocks};
    let clocks = SimulatedClocks::new(0);
    let hub = Hub::new();
    let entry = avc1(1280);
    let tick = |hub: &Hub, n: i64| {
        hub.publish(&entry, &video(n, n % 50 == 0, 1000), clocks.monotonic());
        clocks.advance(Duration::from_millis(40));
    };
    for n in 0..2 {
        tick(&hub, n);
    }
    let mut reading = hub.subscribe(false, clocks.monotonic()).unwrap();
    let stalled = hub.subscribe(false, clocks.monotonic()).unwrap();
    let mut read_by_reader = fragments_of(&read_queued(&mut reading)).len();
    // 3 s of frames: within the allowed lag, nobody skips.
    for n in 2..77 {
        tick(&hub, n);
        read_by_reader += fragments_of(&read_queued_nowait(&mut reading)).len();
    }
    assert_eq!(hub.skipped_frames(), 0);
    // 1.2 s more: the stalled viewer's oldest fragment is now older than 3 s.
    for n in 77..107 {
        tick(&hub, n);
        read_by_reader += fragments_of(&read_queued_nowait(&mut reading)).len();
    }
    assert!(hub.skipped_frames() > 70, "skipped {}", hub.skipped_frames());
    let q = stalled.queue.inner.lock().unwrap();
    assert!(q.fragments.front().is_some_and(|(f, _)| f.key), "the stalled viewer continues at the key frame 100");
    drop(q);
    assert_eq!(read_by_reader, 106, "the reading viewer lost nothing");
}

/// What a viewer has queued now, or nothing (never waits).
fn read_queued_nowait(v: &mut Viewer) -> Vec<u8> {
    if v.queue.inner.lock().unwrap().fragments.is_empty() {
        return Vec::new();
    }
    read_queued(v)
}

// Review 1 finding 11 (issue 12 point 4): a key frame that does not decode (`DataLoss`) is
// decoded once per GOP however often a page asks, but a passing failure (`Internal`, e.g. the
// decoder could not start) is not remembered: the next request decodes again and may succeed.
#[test]
fn a_passing_snapshot_error_is_retried_and_a_broken_frame_is_not() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_gops(&hub, &entry, 0, 10, 25, 100);
    let internal = |_: &SampleEntry, _: &[u8]| Err(crate::err!(Internal, "cannot start the H.264 decoder"));
    let err = hub.snapshot_jpeg(internal).unwrap().unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Internal);
    let jpeg = hub.snapshot_jpeg(|_, f| Ok(vec![f[0], 0xd8])).unwrap().unwrap();
    assert_eq!(*jpeg, vec![0, 0xd8], "the same key frame decodes again after a passing failure");
    assert_eq!(hub.snapshot_decodes(), 2);
    // The next key frame (25) does not decode: that error stands until the one after.
    publish_gops(&hub, &entry, 10, 27, 25, 100);
    let broken = |_: &SampleEntry, _: &[u8]| Err(crate::err!(DataLoss, "the latest key frame does not decode"));
    assert_eq!(hub.snapshot_jpeg(broken).unwrap().unwrap_err().kind(), crate::ErrorKind::DataLoss);
    let again = hub.snapshot_jpeg(|_, f| Ok(vec![f[0]])).unwrap().unwrap_err();
    assert_eq!(again.kind(), crate::ErrorKind::DataLoss, "a broken frame is not decoded twice");
    assert_eq!(hub.snapshot_decodes(), 3);
}

// Issue 12 point 4, review: N snapshot requests within one GOP cost one decode and get the same
// bytes; the next key frame is decoded once more; decodes run one at a time.
#[test]
fn snapshots_decode_once_per_key_frame() {
    let hub = Hub::new();
    let entry = avc1(1280);
    let decodes = std::sync::atomic::AtomicU64::new(0);
    let encode = |_: &SampleEntry, frame: &[u8]| {
        decodes.fetch_add(1, Ordering::SeqCst);
        Ok(vec![frame[0], 0xd8, decodes.load(Ordering::SeqCst) as u8])
    };
    assert!(hub.snapshot_jpeg(encode).is_none(), "no key frame yet");
    publish_gops(&hub, &entry, 0, 10, 25, 100);
    let first = hub.snapshot_jpeg(encode).unwrap().unwrap();
    let second = hub.snapshot_jpeg(encode).unwrap().unwrap();
    assert_eq!(first, second, "same GOP, same bytes");
    assert_eq!((decodes.load(Ordering::SeqCst), hub.snapshot_decodes()), (1, 1));
    // Callers at once get the cached bytes without a decode. (Callers that wait while a decode
    // runs and then take its result are not exercised here: nothing can tell when they block.)
    std::thread::scope(|t| {
        for _ in 0..4 {
            t.spawn(|| assert_eq!(hub.snapshot_jpeg(encode).unwrap().unwrap(), first));
        }
    });
    assert_eq!(hub.snapshot_decodes(), 1);
    // The next key frame (frame 25, emitted when frame 26 arrives) is a new picture.
    publish_gops(&hub, &entry, 10, 27, 25, 100);
    let third = hub.snapshot_jpeg(encode).unwrap().unwrap();
    assert_ne!(third, first);
    assert_eq!(third[0], 25);
    assert_eq!(hub.snapshot_decodes(), 2);
}

// Issue 12 point 4, review: when the camera's session ends, viewers end and nothing stale is
// served: no stream info, no playlist, no segment, no snapshot, until the next session's frames.
#[test]
fn a_reset_ends_viewers_and_clears_every_cache() {
    let hub = Hub::new();
    let entry = avc1(1280);
    assert!(hub.playlist(false, at(0), Duration::ZERO).is_none());
    publish_gops(&hub, &entry, 0, 3 * 25 + 2, 25, 100);
    let mut viewer = hub.subscribe(false, at(77)).unwrap();
    let playlist = hub.playlist(false, at(77), Duration::ZERO).unwrap();
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{playlist}");
    assert!(hub.snapshot_jpeg(|_, f| Ok(f.to_vec())).is_some());
    hub.reset();
    let mut rest = Vec::new();
    viewer.read_to_end(&mut rest).unwrap();
    assert_eq!(hub.viewers(), 0);
    assert!(hub.info().is_none());
    assert!(hub.playlist(false, at(78), Duration::ZERO).is_none());
    assert!(hub.segment(0, false, at(78)).is_none());
    assert_eq!(hub.init_segment(false, None, at(78)), Err(InitMissing::NoPicture));
    assert!(hub.snapshot_jpeg(|_, f| Ok(f.to_vec())).is_none());
    assert_eq!(hub.held_bytes(), 0);
    // The next session starts over; segment numbers keep counting.
    publish_watched(&hub, &entry, 1000, 1000 + 2 * 25 + 2, 25, 100);
    assert!(hub.info().is_some());
    let playlist = hub.playlist(false, at(1052), Duration::ZERO).unwrap();
    assert!(!playlist.contains("\n0.m4s") && playlist.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{playlist}");
}

// Issue 12 point 4, review (RFC 8216): the target duration never changes, a timeline break (GOP
// overflow, a new session) is an EXT-X-DISCONTINUITY counted by EXT-X-DISCONTINUITY-SEQUENCE once
// it left the list, and the byte cap never shortens the list.
#[test]
fn the_hls_playlist_follows_rfc_8216() {
    let hub = Hub::new();
    let entry = avc1(1280);
    // Two 4 s GOPs, then 1 s GOPs: the target stays 4, and four 1 s GOPs make one 4 s segment
    // (review 1 finding 2: short GOPs are joined up to the target).
    publish_watched(&hub, &entry, 0, 200, 100, 100);
    let playlist = publish_watched(&hub, &entry, 200, 200 + 6 * 25 + 2, 25, 100).unwrap();
    assert!(playlist.contains("#EXT-X-TARGETDURATION:4\n"), "{playlist}");
    assert!(playlist.contains("#EXTINF:4.000,\n2.m4s\n"), "{playlist}");
    let (sum, target) = extinf_sum_and_target(&playlist);
    assert!(sum >= 3.0 * target, "{playlist}");
    // A GOP that outgrows the cache: the segment after it is discontinuous.
    let big = GOP_CACHE_MAX_BYTES / 20 + 1;
    publish_watched(&hub, &entry, 352, 352 + 25, 25, big);
    publish_watched(&hub, &entry, 377, 377 + 4 * 25 + 2, 25, 100);
    let playlist = hub.playlist(false, at(479), Duration::ZERO).unwrap();
    assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{playlist}");
    let tag = playlist.find("#EXT-X-DISCONTINUITY\n").unwrap();
    let after_tag = &playlist[tag..];
    let next_uri = after_tag.lines().find(|l| l.ends_with(".m4s")).unwrap();
    let seg: u64 = next_uri.trim_end_matches(".m4s").parse().unwrap();
    // A new session (reset): the break moves out of the list into the sequence number.
    hub.reset();
    let playlist = publish_watched(&hub, &entry, 5000, 5000 + 5 * 25 + 2, 25, 100).unwrap();
    assert!(playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"), "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:4\n"), "sticky across sessions: {playlist}");
    assert!(!playlist.contains(&format!("\n{seg}.m4s")), "{playlist}");
    // Segments near the cap: the byte cap drops unlisted segments only, never listed ones.
    let hub = Hub::new();
    let near_cap = GOP_CACHE_MAX_BYTES / 26;
    let playlist = publish_watched(&hub, &entry, 0, 6 * 25 + 2, 25, near_cap).unwrap();
    assert_eq!(playlist.matches(".m4s").count(), HLS_SEGMENTS, "{playlist}");
    assert!(hub.held_bytes() <= GOP_CACHE_MAX_BYTES + HLS_MAX_BYTES + near_cap);
}

/// The sum of a playlist's `EXTINF` durations and its `EXT-X-TARGETDURATION`, in seconds.
fn extinf_sum_and_target(playlist: &str) -> (f64, f64) {
    let target = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:")).unwrap().parse().unwrap();
    let extinf = playlist.lines().filter_map(|l| l.strip_prefix("#EXTINF:"));
    (extinf.map(|d| d.trim_end_matches(',').parse::<f64>().unwrap()).sum(), target)
}

// Review 1 finding 2 (issue 12 point 4, RFC 8216 section 6.2.2): a live playlist never lasts less
// than three target durations. An all-intra camera's 40 ms GOPs are joined into segments of the
// 1 s target (not one segment per frame), and 3 s GOPs under a 4 s target (which cannot be
// joined) make the playlist list four segments rather than three.
#[test]
fn a_playlist_lasts_at_least_three_target_durations() {
    let entry = avc1(1280);
    let hub = Hub::new();
    publish_watched(&hub, &entry, 0, 10 * 25 + 2, 1, 100);
    let playlist = hub.playlist(false, at(252), Duration::ZERO).unwrap();
    let (sum, target) = extinf_sum_and_target(&playlist);
    assert_eq!(target, 1.0, "{playlist}");
    assert!(sum >= 3.0 * target, "sum(EXTINF) {sum} < 3 × {target}: {playlist}");
    assert!(playlist.contains("#EXTINF:1.000,"), "25 key frames make one segment: {playlist}");
    assert_eq!(playlist.matches(".m4s").count(), HLS_SEGMENTS, "{playlist}");
    assert!(hub.state.lock().unwrap().hls.segments.len() <= 12, "a segment per second, not per frame");
    // Two 4 s GOPs (the target is 4), then 3 s GOPs.
    let hub = Hub::new();
    for n in 0..652 {
        if n % 25 == 0 {
            hub.playlist(false, at(n), Duration::ZERO);
        }
        let key = if n < 200 { n % 100 == 0 } else { (n - 200) % 75 == 0 };
        hub.publish(&entry, &video(n, key, 100), at(n));
    }
    let playlist = hub.playlist(false, at(652), Duration::ZERO).unwrap();
    let (sum, target) = extinf_sum_and_target(&playlist);
    assert_eq!(target, 4.0, "{playlist}");
    assert!(sum >= 3.0 * target, "sum(EXTINF) {sum} < 3 × {target}: {playlist}");
    assert_eq!(playlist.matches("#EXTINF:3.000,").count(), 4, "{playlist}");
    // Every segment listed is still held, and the one before the list is held for a while.
    let first: u64 = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:")).unwrap().parse().unwrap();
    assert!(hub.segment(first - 1, false, at(652)).is_some(), "{playlist}");
}

// Issue 12 point 4, review (RFC 8216 section 6.2.1: EXT-X-TARGETDURATION must not change): a GOP
// longer than the target picked at the start is split into segments no longer than it; the
// pieces continue the GOP (the first is its key frame) and together hold every frame.
#[test]
fn a_gop_longer_than_the_target_duration_is_split() {
    let hub = Hub::new();
    let entry = avc1(1280);
    // 1 s GOPs: the target is 1 s. Then one 4.4 s GOP (frames 100 to 209), then 1 s GOPs again.
    for n in 0..287 {
        if n % 25 == 0 {
            hub.playlist(false, at(n), Duration::ZERO);
        }
        let key = if (100..210).contains(&n) { n == 100 } else { (n - 210).rem_euclid(25) == 0 };
        hub.publish(&entry, &video(n, key, 100), at(n));
    }
    let playlist = hub.playlist(false, at(287), Duration::ZERO).unwrap();
    assert!(playlist.contains("#EXT-X-TARGETDURATION:1\n"), "{playlist}");
    assert!(!playlist.contains("INDEPENDENT-SEGMENTS"), "a split segment does not start with a key frame");
    // Every segment the ring made is at most 1 s; the long GOP made 5 (1, 1, 1, 1, 0.4 s).
    let s = hub.state.lock().unwrap();
    let all: Vec<(u64, u8, u64)> =
        s.hls.segments.iter().map(|g| (g.sequence, g.fragments[0].data[0], g.duration_90k)).collect();
    assert!(s.hls.segments.iter().all(|g| g.duration_90k <= 90_000), "segments within the target: {all:?}");
    let long: Vec<&Segment> =
        s.hls.segments.iter().filter(|g| (100..210).any(|n| g.fragments[0].data[0] == n as u8)).collect();
    let durations: Vec<u64> = long.iter().map(|g| g.duration_90k).collect();
    assert_eq!(durations, [90_000, 90_000, 90_000, 90_000, 36_000], "the 4.4 s GOP: {all:?}");
    let firsts: Vec<bool> = long.iter().map(|g| g.fragments[0].key).collect();
    assert_eq!(firsts, [true, false, false, false, false]);
    let frames: usize = long.iter().map(|g| g.fragments.len()).sum();
    assert_eq!(frames, 110, "no frame lost between the pieces");
    let sequences: Vec<u64> = long.iter().map(|g| g.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(long.iter().all(|g| !g.discontinuity), "a split is no break in the timeline");
}

// Issue 12 point 4, review: new codec parameters keep the segments made so far (with their own
// init segment) and put the new ones after an EXT-X-DISCONTINUITY and a new EXT-X-MAP URI; each
// version's init segment describes its own parameters.
#[test]
fn a_parameter_change_gets_a_new_init_segment_uri() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_watched(&hub, &entry, 0, 3 * 25 + 2, 25, 100);
    let other = avc1(640);
    publish_watched(&hub, &other, 100, 100 + 25 + 2, 25, 100);
    let playlist = hub.playlist(false, at(127), Duration::ZERO).unwrap();
    assert!(playlist.contains("#EXT-X-MAP:URI=\"init.mp4?v=0\"\n"), "{playlist}");
    let change = "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init.mp4?v=1\"\n#EXTINF:1.000,\n3.m4s\n";
    assert!(playlist.ends_with(change), "{playlist}");
    assert_eq!(playlist.matches(".m4s").count(), HLS_SEGMENTS, "the old segments stay listed: {playlist}");
    // Each version's init segment: the width is in the avc1 sample entry (its bytes 32..34).
    let width = |init: Vec<u8>| {
        let at = init.windows(4).position(|w| w == b"avc1").unwrap() - 4;
        u16::from_be_bytes([init[at + 32], init[at + 33]])
    };
    assert_eq!(width(hub.init_segment(false, Some(0), at(127)).unwrap()), 1280);
    assert_eq!(width(hub.init_segment(false, Some(1), at(127)).unwrap()), 640);
    assert_eq!(width(hub.init_segment(false, None, at(127)).unwrap()), 640, "no version: the current one");
    assert_eq!(hub.init_segment(false, Some(7), at(127)), Err(InitMissing::NotHeld));
}

// Issue 12 point 4 (idle memory): a camera nobody watches holds one GOP (what `live.mp4` and
// the snapshot start from), not an HLS ring; a player's request starts the ring (its first
// playlist waits for the first segment), and 30 s without a request give the memory back.
#[test]
fn an_unwatched_hub_holds_one_gop_and_builds_hls_only_while_asked() {
    let hub = Hub::new();
    let entry = avc1(1280);
    let frame_bytes = 10_000;
    // 1 s GOPs of 25 × 10 kB: 250 kB a GOP plus ~100 bytes of header per fragment.
    let gop_bytes = 25 * (frame_bytes + 200);
    publish_gops(&hub, &entry, 0, 20 * 25 + 12, 25, frame_bytes);
    let idle = hub.held_bytes();
    assert!(idle <= gop_bytes + frame_bytes, "idle: {idle} bytes, one GOP is {gop_bytes}");
    assert!(idle >= 12 * frame_bytes, "the GOP from the latest key frame is kept: {idle}");
    assert!(hub.state.lock().unwrap().hls.segments.is_empty());
    // A player asks: no segment yet (it needs the next key frame), so the answer waits for it.
    assert!(hub.playlist(false, at(512), Duration::ZERO).is_none());
    std::thread::scope(|t| {
        let waiting = t.spawn(|| hub.playlist(false, at(512), Duration::from_secs(60)));
        publish_gops(&hub, &entry, 512, 527, 25, frame_bytes);
        let playlist = waiting.join().unwrap().expect("the first segment ends the wait");
        // The first segment is the GOP that was cached when the player asked, from its key frame.
        assert!(playlist.contains("#EXTINF:1.000,\n0.m4s\n"), "{playlist}");
    });
    // The player keeps asking for 10 s: the ring holds the listed segments and those that left
    // the list a moment ago.
    publish_watched(&hub, &entry, 527, 527 + 250, 25, frame_bytes);
    let watched = hub.held_bytes();
    assert!(watched >= 5 * gop_bytes, "watched: {watched} bytes");
    assert!(watched <= 9 * gop_bytes, "watched: {watched} bytes");
    // Nobody asks for 30 s: the ring and its memory go.
    publish_gops(&hub, &entry, 777, 777 + 31 * 25, 25, frame_bytes);
    let again = hub.held_bytes();
    assert!(again <= gop_bytes + frame_bytes, "idle again: {again} bytes");
    let s = hub.state.lock().unwrap();
    assert!(s.hls.segments.is_empty() && s.hls.segments.capacity() == 0 && s.hls.asked_at.is_none());
}

// Review 1 finding 10 (issue 12 point 4): with 40 s GOPs (a 40 s target duration) a player may
// ask only every 35 s, longer than `HLS_IDLE`; the ring must stay built between its requests
// (no fresh start, no discontinuity, every segment kept) instead of being dropped each time.
#[test]
fn a_player_asking_once_per_long_target_duration_keeps_the_ring() {
    let hub = Hub::new();
    let entry = avc1(1280);
    publish_gops(&hub, &entry, 0, 2001, 1000, 10);
    for n in 2001..6002 {
        if (n - 2001) % 875 == 0 {
            hub.playlist(false, at(n), Duration::ZERO);
        }
        hub.publish(&entry, &video(n, n % 1000 == 0, 10), at(n));
    }
    let playlist = hub.playlist(false, at(6002), Duration::ZERO).unwrap();
    assert!(playlist.contains("#EXT-X-TARGETDURATION:40\n"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "the ring was never dropped: {playlist}");
    let s = hub.state.lock().unwrap();
    let held: Vec<u64> = s.hls.segments.iter().map(|g| g.sequence).collect();
    assert_eq!(held, [0, 1, 2, 3, 4], "every 40 s GOP since the first request is a segment");
    assert_eq!(s.discontinuities, 0);
}

/// A minimal `mp4a` sample entry (8-byte header + 28 bytes of AudioSampleEntry fields), 48 kHz.
fn mp4a() -> Arc<SampleEntry> {
    let mut b = vec![0u8; 36];
    b[..4].copy_from_slice(&36u32.to_be_bytes());
    b[4..8].copy_from_slice(b"mp4a");
    Arc::new(SampleEntry::new(b, 48_000).unwrap())
}

// Review 1 finding 6 (issue 12 point 4, RFC 8216 section 6.2.2): audio that starts after the
// first segments adds a track: the next segments follow an EXT-X-DISCONTINUITY with a new init
// segment version that has audio, the lines already listed stay as they were (video only), and
// `init.mp4?v=0` keeps describing the segments of version 0.
#[test]
fn audio_that_starts_late_gets_a_new_init_segment_and_changes_no_listed_line() {
    let hub = Hub::new();
    let (entry, aac) = (avc1(1280), mp4a());
    publish_watched(&hub, &entry, 0, 3 * 25 + 2, 25, 100);
    let before = hub.playlist(true, at(77), Duration::ZERO).unwrap();
    assert!(before.contains("#EXT-X-MAP:URI=\"init.mp4?v=0\"\n") && before.contains("\n2.m4s\n"), "{before}");
    for n in 77..(127 + 2) {
        if n % 25 == 0 {
            hub.playlist(true, at(n), Duration::ZERO);
        }
        hub.publish(&entry, &video(n, n % 25 == 0, 100), at(n));
        let frame =
            Frame { kind: StreamKind::Audio, media_time: (n - 77) * 1920, key: true, data: Bytes::from(vec![7u8; 10]) };
        hub.publish(&aac, &frame, at(n));
    }
    let after = hub.playlist(true, at(129), Duration::ZERO).unwrap();
    assert!(after.contains("\n2.m4s\n"), "a listed line does not change: {after}");
    let change = "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init.mp4?v=1&audio=1\"\n#EXTINF:1.000,\n3.m4s?audio=1\n";
    assert!(after.contains(change), "{after}");
    let traks = |init: Vec<u8>| init.windows(4).filter(|w| w == b"trak").count();
    assert_eq!(traks(hub.init_segment(true, Some(0), at(129)).unwrap()), 1, "version 0 has no audio");
    assert_eq!(traks(hub.init_segment(true, Some(1), at(129)).unwrap()), 2, "version 1 has");
    let audio_fragments = |seq: u64| {
        let mut bytes = Vec::new();
        hub.segment(seq, true, at(129)).unwrap().read_to_end(&mut bytes).unwrap();
        bytes.windows(10).filter(|w| w == &[7u8; 10]).count()
    };
    assert_eq!(audio_fragments(2), 0);
    assert!(audio_fragments(3) > 0);
}
