//! What a camera's `source` says: where frames come from and how to reach them.
//! Invariant: validated once by `config` (credentials moved out of the URL, no `rtsps://`).

use std::path::PathBuf;
use std::time::Duration;

/// A camera's `source`, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// The bundled demo clip, replayed in real time and looped.
    Demo,
    /// An RTSP camera.
    Rtsp {
        /// The stream's URL, without credentials (so it can be logged).
        url: url::Url,
        /// The user name, from the `username` key or the URL.
        username: Option<String>,
        /// The password, from the `password` key or the URL; never logged or shown.
        password: Option<String>,
        /// How RTP travels.
        transport: RtspTransport,
    },
    /// A local V4L2 capture device (`v4l2:/dev/video0`), captured and encoded in-process.
    V4l2(V4l2Spec),
    /// A camera of a remote edgerec mirrored by `edgerec pull` (issue 16, IC-4b): no session of
    /// its own; the `pull` module writes the remote's frames with the remote's wall times into
    /// the camera's storage. Made by `config` from `[[remote_site.camera]]`, never written.
    Mirror {
        /// The `[[remote_site]]` name.
        site: String,
        /// The camera's id on the remote.
        remote: String,
    },
}

/// How RTP travels from an RTSP camera (`transport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspTransport {
    /// RTP interleaved in the RTSP TCP connection (default: reliable, in order).
    Tcp,
    /// RTP over UDP; retina marks this experimental (no reordering).
    Udp,
}

/// A V4L2 camera: the device and what to ask it for (`[camera.v4l2]`), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4l2Spec {
    /// The device node: `/dev/videoN` or a stable `/dev/v4l/by-id/…` link (an absolute path
    /// under `/dev/`).
    pub device: PathBuf,
    /// The pixel format to ask for; `None` takes the first one the device lists that edgerec
    /// can record.
    pub format: Option<PixelFormat>,
    /// The picture size to ask for, in pixels (both even); `None` keeps the device's current size.
    pub size: Option<(u32, u32)>,
    /// The frame rate to ask for (S_PARM), in frames per second; `None` asks for the highest
    /// rate the device lists for the negotiated format and size.
    pub fps: Option<u32>,
    /// The H.264 encoder's target bitrate, in kbit/s.
    pub bitrate_kbps: u32,
    /// The time between two key frames of the encoded stream (the GOP length).
    pub keyframe_interval: Duration,
}

/// The pixel formats a V4L2 camera may deliver that edgerec records: raw ones are converted to
/// I420 and encoded; MJPEG and H.264 (UVC H.264 cameras) are recorded as delivered (issue 14,
/// DEV-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V (`YUYV`): vivid's default, most UVC webcams.
    Yuyv,
    /// Packed 4:2:2, U Y0 V Y1 (`UYVY`): many HDMI/SDI capture cards.
    Uyvy,
    /// Planar Y then interleaved UV at 4:2:0 (`NV12`): capture cards and ISPs.
    Nv12,
    /// Planar I420 (`YU12`): what the encoder takes, copied as it is.
    Yu12,
    /// Motion JPEG (`MJPG`): one JPEG per buffer, recorded as it is (issue 14, DEV-1). Drivers
    /// that list `JPEG` (V4L2_PIX_FMT_JPEG: gspca-based and older ones) deliver the same and are
    /// asked for `JPEG` (review-b 8).
    Mjpeg,
    /// H.264 (`H264`): one Annex B access unit per buffer, recorded as it is (issue 14, DEV-1).
    H264,
}

impl PixelFormat {
    /// Every format edgerec records, in the order it prefers them when the config names none: raw
    /// first (the bitrate is the config's), then MJPEG, then H.264 when the device offers nothing
    /// raw (issue 14).
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Uyvy,
        PixelFormat::Yu12,
        PixelFormat::Mjpeg,
        PixelFormat::H264,
    ];

    /// True for the formats recorded as delivered, without the encoder (issue 14).
    pub fn is_compressed(self) -> bool {
        matches!(self, PixelFormat::Mjpeg | PixelFormat::H264)
    }

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Uyvy => *b"UYVY",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Yu12 => *b"YU12",
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::H264 => *b"H264",
        }
    }

    /// Every four-character code a device may list for this format, `fourcc()` first: `JPEG`
    /// is an alias of `MJPG` (review-b 8).
    pub fn fourccs(self) -> &'static [[u8; 4]] {
        const YUYV: [[u8; 4]; 1] = [*b"YUYV"];
        const UYVY: [[u8; 4]; 1] = [*b"UYVY"];
        const NV12: [[u8; 4]; 1] = [*b"NV12"];
        const YU12: [[u8; 4]; 1] = [*b"YU12"];
        const MJPG: [[u8; 4]; 2] = [*b"MJPG", *b"JPEG"];
        const H264: [[u8; 4]; 1] = [*b"H264"];
        match self {
            PixelFormat::Yuyv => &YUYV,
            PixelFormat::Uyvy => &UYVY,
            PixelFormat::Nv12 => &NV12,
            PixelFormat::Yu12 => &YU12,
            PixelFormat::Mjpeg => &MJPG,
            PixelFormat::H264 => &H264,
        }
    }

    /// The format with this four-character code (or an alias, `JPEG`), if edgerec records it.
    pub fn from_fourcc(code: &[u8]) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.fourccs().iter().any(|c| c == code))
    }

    /// The four-character code as text, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yu12 => "YU12",
            PixelFormat::Mjpeg => "MJPG",
            PixelFormat::H264 => "H264",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, review-b 8 (DEV-1): `JPEG` (V4L2_PIX_FMT_JPEG) is the MJPEG path, like `MJPG`;
    /// every other code names one format, and codes edgerec does not record name none.
    #[test]
    fn dev1_jpeg_fourcc_is_an_alias_of_mjpg() {
        assert_eq!(PixelFormat::from_fourcc(b"JPEG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc(b"MJPG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::Mjpeg.fourcc(), *b"MJPG");
        for f in PixelFormat::ALL {
            assert_eq!(f.fourccs()[0], f.fourcc());
            assert_eq!(PixelFormat::from_fourcc(&f.fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_fourcc(b"HEVC"), None);
    }
}
