//! A stage's identity and availability (ARCHITECTURE.md "Archives", procedure "create stage"):
//! the `STAGE` file in the stage directory and `data_dir/archive-<storage>-<stage>.uuid`.
//! Invariant: a stage this recorder created once is never created again; without its `STAGE`
//! file (an unmounted share, a bare mount point) it is unavailable (AR-8, as S8 for storages).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fsutil;
use crate::store;

use super::index::StageIndex;
use super::StageConfig;

/// The identity file's name in a stage directory.
pub const STAGE_FILE: &str = "STAGE";
/// First line of a `STAGE` file: what it is and its format version.
const STAGE_MAGIC: &str = "edgerec archive stage 1";

/// The stage directory of `stage` for storage `storage_id`: `<stage path>/<storage id>` (AR-5).
pub fn stage_dir(stage: &StageConfig, storage_id: &str) -> PathBuf {
    stage.path.join(storage_id)
}

/// `data_dir/archive-<storage id>-<stage name>.uuid`: written last when this recorder created the
/// stage, so its presence says "this stage exists; never create it again".
pub fn uuid_path(data_dir: &Path, storage_id: &str, stage: &StageConfig) -> PathBuf {
    data_dir.join(format!("archive-{storage_id}-{}.uuid", stage.name))
}

/// The identity a `STAGE` file holds.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    /// The stage's own uuid, also in the `data_dir` uuid file.
    stage_uuid: u128,
    /// The recorder that created it (a stage belongs to one recorder's storage).
    recorder_uuid: u128,
}

impl Identity {
    fn encode(&self, stage: &StageConfig, storage_id: &str) -> String {
        format!(
            "{STAGE_MAGIC}\nstage_uuid {:032x}\nrecorder_uuid {:032x}\nstage {}\nstorage {storage_id}\n",
            self.stage_uuid, self.recorder_uuid, stage.name
        )
    }

    /// Parses a `STAGE` file read from disk (untrusted: a share another box wrote); the error
    /// says why it is not one.
    fn decode(text: &str) -> Result<Identity, String> {
        let mut lines = text.lines();
        if lines.next() != Some(STAGE_MAGIC) {
            return Err(format!("not a STAGE file of this format (first line is not {STAGE_MAGIC:?})"));
        }
        let mut stage_uuid = None;
        let mut recorder_uuid = None;
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let parsed = || u128::from_str_radix(value, 16).map_err(|_| format!("{key} {value:?} is not a uuid"));
            match key {
                "stage_uuid" => stage_uuid = Some(parsed()?),
                "recorder_uuid" => recorder_uuid = Some(parsed()?),
                _ => {}
            }
        }
        match (stage_uuid, recorder_uuid) {
            (Some(stage_uuid), Some(recorder_uuid)) => Ok(Identity { stage_uuid, recorder_uuid }),
            _ => Err("the STAGE file lacks stage_uuid or recorder_uuid".to_owned()),
        }
    }
}

/// Reads `dir/STAGE`: None when it is missing, the reason when it is not a sound `STAGE` file.
fn read_identity(dir: &Path) -> Result<Option<Identity>, String> {
    let path = dir.join(STAGE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Identity::decode(&text).map(Some).map_err(|why| format!("{}: {why}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Whether this recorder created `stage` once and finds its `STAGE` file with the same identity
/// now; the reason when not. Creates nothing (used for the stages before and after the one a
/// round fills).
pub fn check(data_dir: &Path, storage_id: &str, stage: &StageConfig) -> Result<PathBuf, String> {
    let uuid_file = uuid_path(data_dir, storage_id, stage);
    let text = match std::fs::read_to_string(&uuid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("stage {} has not been created yet", stage.name))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", uuid_file.display())),
    };
    let expected = u128::from_str_radix(text.trim(), 16)
        .map_err(|_| format!("{} does not hold a stage uuid", uuid_file.display()))?;
    let dir = stage_dir(stage, storage_id);
    match read_identity(&dir)? {
        None => Err(format!(
            "{} is missing (an unmounted share or a bare mount point?); the stage is not created again",
            dir.join(STAGE_FILE).display()
        )),
        Some(id) if id.stage_uuid != expected => Err(format!(
            "{} belongs to another stage ({:032x}, expected {expected:032x}); is the right share mounted?",
            dir.join(STAGE_FILE).display(),
            id.stage_uuid
        )),
        Some(_) => Ok(dir),
    }
}

/// The device (`st_dev`) a stage directory is on, taken at a round's start for `still_same`.
pub fn device(dir: &Path) -> Result<u64, Error> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).map(|m| m.dev()).map_err(|e| Error::io(format!("stat {}", dir.display()), e))
}

/// Whether the stage directory a round opened is still that stage before it copies the next
/// slice: its `STAGE` file is there and the directory is on the device it was on at the round's
/// start. A share lazily unmounted mid-round fails this (issue 13 review High 1), so the round
/// ends as unavailable instead of writing onto what is under the mount point. The reason when not.
pub fn still_same(dir: &Path, device_at_start: u64) -> Result<(), String> {
    if read_identity(dir)?.is_none() {
        return Err(format!("{} is missing", dir.join(STAGE_FILE).display()));
    }
    match device(dir) {
        Ok(dev) if dev == device_at_start => Ok(()),
        Ok(dev) => Err(format!("{} moved to another device ({dev}, was {device_at_start})", dir.display())),
        Err(e) => Err(e.to_string()),
    }
}

/// The stage directory of `stage`, available for a round: checked as `check` when this recorder
/// created it before, otherwise created by procedure "create stage" (1. `mkdir -p`; 2. `STAGE`
/// atomically; 3. the index, FULL; 4. fsync the directory; 5. the `data_dir` uuid file
/// atomically). A crash before step 5 leaves a stage without the uuid file: its `STAGE`, when it
/// names this recorder, is taken over and the steps after it are done again. The reason when the
/// stage is unavailable (an I/O error while creating it included).
pub fn open_or_create(
    data_dir: &Path,
    storage_id: &str,
    stage: &StageConfig,
    recorder_uuid: u128,
) -> Result<PathBuf, String> {
    if uuid_path(data_dir, storage_id, stage).exists() {
        return check(data_dir, storage_id, stage);
    }
    create(data_dir, storage_id, stage, recorder_uuid).map_err(|e| e.to_string())
}

fn create(data_dir: &Path, storage_id: &str, stage: &StageConfig, recorder_uuid: u128) -> Result<PathBuf, Error> {
    let dir = stage_dir(stage, storage_id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let stage_uuid = match read_identity(&dir).map_err(|why| crate::err!(FailedPrecondition, "{why}"))? {
        Some(id) if id.recorder_uuid == recorder_uuid => id.stage_uuid,
        Some(id) => {
            return Err(crate::err!(
                FailedPrecondition,
                "{} belongs to recorder {:032x}, not this one; choose another path for stage {}",
                dir.join(STAGE_FILE).display(),
                id.recorder_uuid,
                stage.name
            ))
        }
        None => {
            let id = Identity { stage_uuid: store::random_uuid()?, recorder_uuid };
            fsutil::write_atomic(&dir.join(STAGE_FILE), id.encode(stage, storage_id).as_bytes(), 0o644)?;
            id.stage_uuid
        }
    };
    drop(StageIndex::open(&dir)?);
    fsutil::fsync_dir(&dir)?;
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io(format!("create {}", data_dir.display()), e))?;
    fsutil::write_atomic(&uuid_path(data_dir, storage_id, stage), format!("{stage_uuid:032x}\n").as_bytes(), 0o644)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::archive::Schedule;

    fn stage(path: &Path) -> StageConfig {
        StageConfig {
            name: "nas".to_owned(),
            path: path.to_owned(),
            retention: Duration::from_secs(86_400),
            max_size_bytes: 1 << 30,
            schedule: Schedule::parse("hourly").expect("valid schedule"),
            reduce_fps: None,
        }
    }

    /// Issue 13 point 3 (AR-8, procedure "create stage"): a stage is created once with its
    /// `STAGE` file and the `data_dir` uuid file; without its `STAGE` file (a bare mount point)
    /// it is unavailable and not created again; another stage's `STAGE` or another recorder's is
    /// refused; when the files come back it is available again; a crash before step 5 is finished.
    #[test]
    fn a_stage_is_created_once_and_unavailable_without_its_stage_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let s = stage(&tmp.path().join("share"));
        assert!(check(&data, "main", &s).expect_err("not created").contains("not been created"));
        let dir = open_or_create(&data, "main", &s, 7).expect("created");
        assert!(dir.join(STAGE_FILE).is_file() && dir.join(super::super::index::STAGE_INDEX_FILE).is_file());
        assert!(uuid_path(&data, "main", &s).is_file());
        assert_eq!(check(&data, "main", &s), Ok(dir.clone()));
        assert_eq!(open_or_create(&data, "main", &s, 7), Ok(dir.clone()), "opened, not created again");

        // Issue 13 review High 1: a round checks before each slice that the stage it opened is
        // still there; without its `STAGE` file it is not.
        let device_at_start = device(&dir).expect("stat");
        assert_eq!(still_same(&dir, device_at_start), Ok(()));
        assert!(still_same(&dir, device_at_start.wrapping_add(1)).expect_err("other device").contains("device"));

        // The share is gone: the mount point is bare.
        let away = tmp.path().join("away");
        std::fs::rename(tmp.path().join("share"), &away).expect("unmounted");
        std::fs::create_dir_all(tmp.path().join("share")).expect("bare mount point");
        let why = open_or_create(&data, "main", &s, 7).expect_err("unavailable");
        assert!(why.contains("STAGE") && why.contains("not created again"), "{why}");
        assert!(!dir.exists(), "nothing is created on the bare mount point");
        assert!(still_same(&dir, device_at_start).is_err(), "a round that opened it stops before its next slice");

        // Another stage's share mounted there instead.
        let other = stage(&tmp.path().join("other"));
        open_or_create(&tmp.path().join("data2"), "main", &other, 7).expect("another stage");
        std::fs::remove_dir(tmp.path().join("share")).expect("rmdir");
        std::fs::rename(tmp.path().join("other"), tmp.path().join("share")).expect("wrong share");
        assert!(check(&data, "main", &s).expect_err("refused").contains("another stage"));
        std::fs::remove_dir_all(tmp.path().join("share")).expect("rm");

        // The right share is back.
        std::fs::rename(&away, tmp.path().join("share")).expect("mounted again");
        assert_eq!(check(&data, "main", &s), Ok(dir.clone()));

        // A crash before step 5 (no uuid file): the STAGE of this recorder is taken over, one of
        // another recorder is refused.
        std::fs::remove_file(uuid_path(&data, "main", &s)).expect("step 5 undone");
        let before = std::fs::read_to_string(dir.join(STAGE_FILE)).expect("STAGE");
        assert_eq!(open_or_create(&data, "main", &s, 7), Ok(dir.clone()));
        assert_eq!(std::fs::read_to_string(dir.join(STAGE_FILE)).expect("STAGE"), before, "same identity");
        std::fs::remove_file(uuid_path(&data, "main", &s)).expect("step 5 undone");
        let why = open_or_create(&data, "main", &s, 8).expect_err("another recorder's");
        assert!(why.contains("belongs to recorder"), "{why}");
    }
}
