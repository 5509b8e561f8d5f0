//! A stage's identity and availability (ARCHITECTURE.md "Archives", procedure "create stage"):
//! the `STAGE` file in the stage directory and `data_dir/archive-<storage>-<stage>.uuid`.
//! Invariant: a stage this recorder created once is never created again; without its `STAGE`
//! file (an unmounted share, a bare mount point) it is unavailable (AR-8, as S8 for storages).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use crate::error::Error;
use crate::fsutil;
use crate::store;

use super::index::StageIndex;
use super::StageConfig;

/// Stage directories the archive threads of this process last found unavailable, not
/// answering, or blocked behind such a stage (stop 23 point 3, review-tiers High 1): readers skip
/// these instead of opening them per request, where a hung share would hang the request. Kept
/// outside the request path, by the probe thread of each storage; empty in processes without
/// archive threads (`edgerec export`), where readers open every stage as before.
static UNREADABLE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Publishes whether readers may open the stage directory `dir` (see `UNREADABLE`).
pub fn publish_readable(dir: &Path, readable: bool) {
    let mut set = UNREADABLE.lock().expect("stage availability lock");
    if readable {
        set.remove(dir);
    } else {
        set.insert(dir.to_owned());
    }
}

/// Whether the archive thread last found the stage directory `dir` unreadable (unavailable, not
/// answering, or blocked); false when it never said.
pub fn known_unreadable(dir: &Path) -> bool {
    UNREADABLE.lock().expect("stage availability lock").contains(dir)
}

/// Probes of a storage's stages, each on a helper thread with a deadline (stop 23 point 3,
/// review-life #8): a stage on a hung share (an NFS `hard` mount whose server stopped answering)
/// blocks its `stat` or read in the kernel, so the probe's thread hangs, not the caller. At most
/// one probe per stage is in flight: while it hangs, later probes wait on the same one again.
pub struct Prober {
    /// Per stage, the answer of a probe that did not answer within its deadline.
    in_flight: Vec<Option<mpsc::Receiver<Result<PathBuf, String>>>>,
}

impl Prober {
    /// A prober for `stages` stages.
    pub fn new(stages: usize) -> Prober {
        Prober { in_flight: (0..stages).map(|_| None).collect() }
    }

    /// `probe` of stage `k` on a helper thread, waiting at most `deadline` for it; a probe
    /// that does not answer in time makes the stage unavailable as "not answering".
    pub fn probe(
        &mut self,
        k: usize,
        data_dir: &Path,
        storage_id: &str,
        stage: &StageConfig,
        deadline: Duration,
    ) -> Result<PathBuf, String> {
        let rx = match self.in_flight.get_mut(k).and_then(Option::take) {
            Some(rx) => rx,
            None => {
                let (tx, rx) = mpsc::sync_channel(1);
                let (data_dir, storage_id, stage) = (data_dir.to_owned(), storage_id.to_owned(), stage.clone());
                let spawned = std::thread::Builder::new().name(format!("probe-{}", stage.name)).spawn(move || {
                    #[cfg(feature = "fault-injection")]
                    hang_point();
                    // The prober may have given up on this answer; nothing then waits for it.
                    let _ = tx.send(probe(&data_dir, &storage_id, &stage));
                });
                if let Err(e) = spawned {
                    return Err(format!("cannot start a probe thread: {e}"));
                }
                rx
            }
        };
        match rx.recv_timeout(deadline) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(slot) = self.in_flight.get_mut(k) {
                    *slot = Some(rx);
                }
                Err(format!(
                    "{} is not answering (a probe got no answer within {} s: a hung share?)",
                    stage.path.display(),
                    deadline.as_secs()
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("the probe thread ended without an answer".to_owned()),
        }
    }
}

/// While this file exists, stage probes and stage reader opens block, as on a hung share.
#[cfg(feature = "fault-injection")]
static HANG_WHILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes stage probes and stage reader opens block while `flag` exists (the fault-injection seam).
#[cfg(feature = "fault-injection")]
pub(crate) fn inject_hang_while(flag: PathBuf) {
    let _ = HANG_WHILE.set(flag);
}

/// Blocks while the file `inject_hang_while` named exists.
#[cfg(feature = "fault-injection")]
pub(crate) fn hang_point() {
    if let Some(flag) = HANG_WHILE.get() {
        while flag.exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

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

/// Whether `path` is a mount point: on another device than its parent directory, or (a bind
/// mount of the same filesystem) named as a mount point in `/proc/self/mountinfo`. `/` is one.
fn is_mount_point(path: &Path) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    let canonical = path.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let Some(parent) = canonical.parent() else {
        return Ok(true);
    };
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).map_err(|e| format!("cannot stat {}: {e}", p.display()));
    if dev(&canonical)? != dev(parent)? {
        return Ok(true);
    }
    // Field 5 of each line is the mount point, with space, tab, newline and backslash written as
    // octal escapes (proc(5)).
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = canonical
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    Ok(mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(wanted.as_str())))
}

/// Whether a stage may live at its configured `path` now (issue 13 review High 1;
/// ARCHITECTURE "Decisions where the issues were silent"): `path` must be an existing directory,
/// which edgerec never creates, and with `mount = true` a mount point, so a share that is not
/// mounted (a bare mount point on the root filesystem) never gets a stage, or a stage's files,
/// written under it. The reason when not. Creates nothing.
pub fn placement(stage: &StageConfig) -> Result<(), String> {
    match std::fs::metadata(&stage.path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", stage.path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} does not exist (edgerec never creates a stage's path: mount the share there, or create it)",
                stage.path.display()
            ))
        }
        Err(e) => return Err(format!("cannot stat {}: {e}", stage.path.display())),
    }
    if stage.mount && !is_mount_point(&stage.path)? {
        return Err(format!(
            "{} is not a mount point (is the share or disk not mounted?); nothing is written there \
             (`mount = true`; write `mount = false` for a stage on the filesystem of its parent directory)",
            stage.path.display()
        ));
    }
    Ok(())
}

/// Whether `stage` is available now without creating anything: `check` for a stage this
/// recorder created before, `placement` for one it has not created yet (a round creates it). The
/// stage directory, or the reason when it is unavailable.
pub fn probe(data_dir: &Path, storage_id: &str, stage: &StageConfig) -> Result<PathBuf, String> {
    if uuid_path(data_dir, storage_id, stage).exists() {
        check(data_dir, storage_id, stage)
    } else {
        placement(stage).map(|()| stage_dir(stage, storage_id))
    }
}

/// Whether this recorder created `stage` once and finds its `STAGE` file with the same identity
/// now, at a path `placement` accepts; the reason when not. Creates nothing (used for the stages
/// before and after the one a round fills).
pub fn check(data_dir: &Path, storage_id: &str, stage: &StageConfig) -> Result<PathBuf, String> {
    placement(stage)?;
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
            "{} is missing (an unmounted share or a bare mount point?); the stage is not created again \
             (if it moved to a new, empty disk on purpose, delete {} to create it there)",
            dir.join(STAGE_FILE).display(),
            uuid_file.display()
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
/// created it before, otherwise created by procedure "create stage" (1. `mkdir <path>/<storage
/// id>` where `placement` allows it, fsync `<path>`; 2. `STAGE`
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
    placement(stage).map_err(|why| crate::err!(Unavailable, "{why}"))?;
    let dir = stage_dir(stage, storage_id);
    // Only `<path>/<storage id>` is created, never `path` itself (review High 1), and its entry
    // in `path` is made durable before step 5 names the stage as created (review #15).
    match std::fs::create_dir(&dir) {
        Ok(()) => fsutil::fsync_dir(&stage.path)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
    }
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
            mount: false,
        }
    }

    /// Stop 23 point 1 (review-life High 1, #15): a stage's path must exist (edgerec creates
    /// only `<path>/<storage id>`), and with `mount = true` be a mount point; otherwise the stage
    /// is unavailable with a reason saying so and nothing is created. `/proc` is a mount point.
    #[test]
    fn a_stage_is_created_only_at_an_existing_path_and_with_mount_only_on_a_mount_point() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let missing = stage(&tmp.path().join("share"));
        let why = open_or_create(&data, "main", &missing, 7).expect_err("missing path");
        assert!(why.contains("does not exist"), "{why}");
        assert!(probe(&data, "main", &missing).expect_err("missing path").contains("does not exist"));
        assert!(!tmp.path().join("share").exists(), "the path is never created");

        std::fs::create_dir(tmp.path().join("share")).expect("bare mount point");
        let bare = StageConfig { mount: true, ..missing.clone() };
        let why = open_or_create(&data, "main", &bare, 7).expect_err("not a mount point");
        assert!(why.contains("not a mount point") && why.contains("mount = false"), "{why}");
        assert!(std::fs::read_dir(tmp.path().join("share")).expect("list").next().is_none(), "nothing created");
        assert!(!uuid_path(&data, "main", &bare).exists());
        assert_eq!(is_mount_point(Path::new("/proc")), Ok(true));
        assert_eq!(is_mount_point(&tmp.path().join("share")), Ok(false));

        // Without `mount`, an existing directory takes the stage; probing it created nothing.
        assert_eq!(probe(&data, "main", &missing), Ok(tmp.path().join("share").join("main")));
        assert!(!tmp.path().join("share").join("main").exists());
        assert!(open_or_create(&data, "main", &missing, 7).is_ok());
        assert!(tmp.path().join("share").join("main").join(STAGE_FILE).is_file());
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
        std::fs::create_dir(tmp.path().join("share")).expect("stage path");
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
        std::fs::create_dir(tmp.path().join("other")).expect("stage path");
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
