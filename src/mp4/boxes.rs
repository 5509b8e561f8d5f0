//! A small ISO-BMFF box writer: big-endian fields appended to one buffer, box sizes patched on close.
//! Invariant: it knows box framing (size, type, version and flags) only, never what a box means.

/// Appends boxes and their fields to one growable buffer.
///
/// Boxes nest by opening a child before closing its parent; `close` writes the size that
/// `open` left as a placeholder, so callers never compute a box size by hand.
pub(super) struct BoxWriter {
    /// The bytes written so far; boxes that are still open hold a zero placeholder size.
    buf: Vec<u8>,
}

/// A box whose 32-bit size field is still a placeholder, to be passed to [`BoxWriter::close`].
#[must_use = "an open box must be closed, or its size field stays zero"]
pub(super) struct OpenBox {
    /// Offset in the writer's buffer of the box's first byte (its size field).
    start: usize,
    /// The box type, kept so an oversized box can be named in the error.
    fourcc: [u8; 4],
}

/// Bytes of a plain box header: 32-bit size and four-character type.
const BOX_HEADER_BYTES: usize = 8;

impl BoxWriter {
    /// Starts an empty buffer; `capacity_bytes` is a hint that avoids regrowing a large moov.
    pub(super) fn with_capacity(capacity_bytes: usize) -> Self {
        BoxWriter { buf: Vec::with_capacity(capacity_bytes) }
    }

    /// How many bytes have been written, which is also the offset of the next byte.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Drops everything written after `len` bytes, so a caller can retry a part with other choices.
    pub(super) fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// Opens a plain box: a placeholder size and the type.
    pub(super) fn open(&mut self, fourcc: [u8; 4]) -> OpenBox {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(&fourcc);
        OpenBox { start, fourcc }
    }

    /// Opens a full box: a plain box header followed by an 8-bit version and 24-bit flags.
    pub(super) fn open_full(&mut self, fourcc: [u8; 4], version: u8, flags: u32) -> OpenBox {
        debug_assert!(flags <= 0x00FF_FFFF, "full box flags are 24 bits");
        let open = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        open
    }

    /// Writes the final size of a box opened earlier; everything written since is its content.
    ///
    /// Only `mdat` may need a 64-bit size, and its header is written separately, so a box beyond
    /// `u32::MAX` bytes here means an input far outside what export produces and is an error.
    pub(super) fn close(&mut self, open: OpenBox) -> Result<(), String> {
        let size_bytes = self.buf.len() - open.start;
        debug_assert!(size_bytes >= BOX_HEADER_BYTES);
        let size = u32::try_from(size_bytes).map_err(|_| {
            format!(
                "{} box of {size_bytes} bytes does not fit a 32-bit box size",
                String::from_utf8_lossy(&open.fourcc)
            )
        })?;
        self.patch_u32(open.start, size);
        Ok(())
    }

    pub(super) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends `n` zero bytes, for the many reserved fields of ISO-BMFF headers.
    pub(super) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Overwrites four bytes written earlier, for counts and offsets known only later.
    pub(super) fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Overwrites eight bytes written earlier, for 64-bit chunk offsets known only later.
    pub(super) fn patch_u64(&mut self, at: usize, v: u64) {
        self.buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}
