//! What a camera's `source` says: where frames come from and how to reach them.
//! Invariant: validated once by `config` (credentials moved out of the URL, no `rtsps://`).

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
}

/// How RTP travels from an RTSP camera (`transport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspTransport {
    /// RTP interleaved in the RTSP TCP connection (default: reliable, in order).
    Tcp,
    /// RTP over UDP; retina marks this experimental (no reordering).
    Udp,
}
