//! Segment files: fixed-size, preallocated files that hold chunks back to back after a 4 KiB header.
//! Invariant: only `store/` does media file I/O; segment files never change size after creation.
//!
//! Segment header (first 4096 bytes, little-endian): magic `EDGRSEG1`, storage uuid (16),
//! recorder uuid (16), segment number (u32), segment bytes (u64), first_seq (u64; 0 = never used),
//! CRC32C of the preceding bytes. The rest of the 4 KiB block is zero.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

pub const SEGMENT_HEADER_BYTES: u64 = 4096;
const SEGMENT_MAGIC: &[u8; 8] = b"EDGRSEG1";
const HEADER_FIELDS_BYTES: usize = 8 + 16 + 16 + 4 + 8 + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub storage_uuid: u128,
    /// The recorder that created the storage: a disk from another box is refused (swapped disk).
    pub recorder_uuid: u128,
    pub segment_no: u32,
    pub segment_bytes: u64,
    /// Sequence number of the first chunk written since this segment was last (re)started; 0 = unused.
    pub first_seq: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
        b.extend_from_slice(SEGMENT_MAGIC);
        b.extend_from_slice(&self.storage_uuid.to_le_bytes());
        b.extend_from_slice(&self.recorder_uuid.to_le_bytes());
        b.extend_from_slice(&self.segment_no.to_le_bytes());
        b.extend_from_slice(&self.segment_bytes.to_le_bytes());
        b.extend_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.resize(SEGMENT_HEADER_BYTES as usize, 0);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER_FIELDS_BYTES + 4 || &b[..8] != SEGMENT_MAGIC {
            return Err("no segment header (magic missing)".to_owned());
        }
        let crc = u32::from_le_bytes(b[HEADER_FIELDS_BYTES..HEADER_FIELDS_BYTES + 4].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&b[..HEADER_FIELDS_BYTES]) {
            return Err("segment header checksum mismatch".to_owned());
        }
        Ok(SegmentHeader {
            storage_uuid: u128::from_le_bytes(b[8..24].try_into().expect("16 bytes")),
            recorder_uuid: u128::from_le_bytes(b[24..40].try_into().expect("16 bytes")),
            segment_no: u32::from_le_bytes(b[40..44].try_into().expect("4 bytes")),
            segment_bytes: u64::from_le_bytes(b[44..52].try_into().expect("8 bytes")),
            first_seq: u64::from_le_bytes(b[52..60].try_into().expect("8 bytes")),
        })
    }
}

pub fn segment_path(dir: &Path, segment_no: u32) -> PathBuf {
    dir.join(format!("seg-{segment_no:06}.blk"))
}

/// Creates (or re-creates) a segment file with its full size allocated on disk (DESIGN §3.1), writes
/// its header and fsyncs it. The caller fsyncs the directory.
pub fn create(dir: &Path, header: &SegmentHeader) -> Result<File, Error> {
    let path = segment_path(dir, header.segment_no);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot create segment {}", path.display()), e))?;
    nix::fcntl::fallocate(&f, nix::fcntl::FallocateFlags::empty(), 0, header.segment_bytes as i64).map_err(|e| {
        Error::io(
            format!("cannot preallocate {} bytes for segment {}", header.segment_bytes, path.display()),
            std::io::Error::from(e),
        )
    })?;
    f.write_all_at(&header.encode(), 0)
        .map_err(|e| Error::io(format!("cannot write header of segment {}", path.display()), e))?;
    f.sync_all().map_err(|e| Error::io(format!("cannot fsync segment {}", path.display()), e))?;
    Ok(f)
}

pub fn open(dir: &Path, segment_no: u32, write: bool) -> Result<File, Error> {
    let path = segment_path(dir, segment_no);
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open segment {}", path.display()), e))
}

pub fn read_header(f: &File, dir: &Path, segment_no: u32) -> Result<SegmentHeader, Error> {
    let mut b = vec![0u8; HEADER_FIELDS_BYTES + 4];
    f.read_exact_at(&mut b, 0)
        .map_err(|e| Error::io(format!("cannot read header of {}", segment_path(dir, segment_no).display()), e))?;
    SegmentHeader::decode(&b).map_err(|m| crate::err!(DataLoss, "{}: {m}", segment_path(dir, segment_no).display()))
}

/// fdatasync: media content and the metadata needed to read it back, not timestamps.
pub fn datasync(f: &File) -> std::io::Result<()> {
    nix::unistd::fdatasync(f).map_err(std::io::Error::from)
}
