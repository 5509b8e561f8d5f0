//! The config file behind the config API (DESIGN §6): its text, a revision that increases with
//! every change, atomic replacement, and edits of single `[[camera]]` / `[[storage]]` tables.
//! Invariant: the file only ever holds text that validated as a `Config`; the revision never goes
//! back, also across restarts and edits made outside the API; secrets never leave redacted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{parse_table, Config};
use crate::error::Error;
use crate::fsutil::WriteError;

/// What the API shows instead of a camera password, and what a client sends back to keep it.
pub const REDACTED: &str = "********";

/// File in `data_dir` holding `REVISION SHA256-OF-TEXT`: the revision of the config text whose
/// hash it names.
pub const REVISION_FILE: &str = "config-revision";

/// The config file and its revision. Every change goes through here, one at a time.
pub struct ConfigFile {
    /// The file changes are written to (`--config`, or `data_dir/edgerec.toml` without one).
    path: PathBuf,
    /// Relative paths in the text resolve against this (None: the working directory).
    base_dir: Option<PathBuf>,
    /// The text in force; the lock also serializes changes, so a change is validated, written
    /// and applied before the next one starts.
    text: Mutex<String>,
    /// The text the process started with. What is set up once at start (the archive chains
    /// among it) runs as this text says until a restart, so AR-11 compares a change with it
    /// (review finding 9: two changes each removing the then-last stage were both accepted).
    started_with: String,
    /// The revision of that text: only changed with `text` locked, readable without waiting
    /// for a change in progress (status).
    revision: AtomicU64,
    /// A check of a change against what runs (`set_check`), after the config's own validation.
    check: std::sync::OnceLock<Check>,
}

/// A check of a validated change against the running recorder (`ConfigFile::set_check`).
pub type Check = Box<dyn Fn(&Config) -> Result<(), Error> + Send + Sync>;

/// A list of tables that single-item endpoints address by `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Camera,
    Storage,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Camera => "camera",
            Section::Storage => "storage",
        }
    }
}

/// The outcome of a change: the new revision and what applying it returned.
pub struct Changed<R> {
    pub revision: u64,
    /// For `put_item`: true when the item did not exist before.
    pub created: bool,
    pub applied: R,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl ConfigFile {
    /// Takes over `text`, the content `path` was loaded from (or will be written to). The
    /// revision continues from `data_dir/config-revision`: unchanged if it names this text,
    /// one higher if the file changed meanwhile (an edit outside the API, or a crash between
    /// writing the file and the revision), 1 on first start.
    pub fn open(path: PathBuf, text: String, base_dir: Option<PathBuf>, data_dir: &Path) -> Result<ConfigFile, Error> {
        // A leftover of a write interrupted by a crash; the file itself is intact (rename is atomic).
        let _ = std::fs::remove_file(crate::fsutil::temp_path(&path));
        let revision_path = data_dir.join(REVISION_FILE);
        let hash = sha256_hex(&text);
        let stored = std::fs::read_to_string(&revision_path).ok().and_then(|s| {
            let mut it = s.split_whitespace();
            Some((it.next()?.parse::<u64>().ok()?, it.next()?.to_owned()))
        });
        let revision = match &stored {
            Some((n, h)) if *h == hash => *n,
            Some((n, _)) => n.saturating_add(1),
            None => 1,
        };
        if stored.as_ref().is_none_or(|(n, h)| *n != revision || *h != hash) {
            write_revision(&revision_path, revision, &hash)?;
        }
        Ok(ConfigFile {
            path,
            base_dir,
            started_with: text.clone(),
            text: Mutex::new(text),
            revision: AtomicU64::new(revision),
            check: std::sync::OnceLock::new(),
        })
    }

    /// Sets the check every change must pass besides the config's own validation: what only the
    /// running recorder knows (issue 14: the codec a camera's current session delivers). Set
    /// once; later calls are ignored.
    pub fn set_check(&self, check: Check) {
        let _ = self.check.set(check);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// The document as TOML text with secrets redacted. Without secrets it is the file's text
    /// as written (comments kept); with them, the document re-serialized.
    pub fn toml_text(&self) -> Result<(u64, String), Error> {
        let st = self.text.lock().expect("config text lock");
        let mut doc = parse_table(&self.file_name(), &st)?;
        if redact(&mut doc) {
            Ok((self.revision(), serialize(&doc)?))
        } else {
            Ok((self.revision(), st.clone()))
        }
    }

    /// The document as a table, secrets redacted.
    pub fn document(&self) -> Result<(u64, toml::Table), Error> {
        let st = self.text.lock().expect("config text lock");
        let mut doc = parse_table(&self.file_name(), &st)?;
        redact(&mut doc);
        Ok((self.revision(), doc))
    }

    /// One `[[camera]]` or `[[storage]]` table by id, secrets redacted.
    pub fn item(&self, section: Section, id: &str) -> Result<(u64, toml::Table), Error> {
        let (revision, doc) = self.document()?;
        let found = items(&doc, section)
            .into_iter()
            .find(|t| has_id_table(t, id))
            .cloned()
            .ok_or_else(|| crate::err!(NotFound, "no {} {id:?} in the config", section.key()))?;
        Ok((revision, found))
    }

    /// Replaces the whole document with `text` (TOML) if the revision is still `expected` (when
    /// given): validates it, writes it atomically, then calls `apply` with the validated config.
    /// Redacted secrets in `text` keep their current values. Invalid text changes nothing.
    pub fn replace<R>(
        &self,
        text: String,
        expected: Option<u64>,
        apply: impl FnOnce(Config) -> R,
    ) -> Result<Changed<R>, Error> {
        let mut st = self.text.lock().expect("config text lock");
        self.check_revision(expected)?;
        let mut doc = parse_table(&self.file_name(), &text)?;
        let current = parse_table(&self.file_name(), &st)?;
        let put_back = unredact(&mut doc, &current).map_err(|e| self.error_as_sent(&text).unwrap_or(e))?;
        let text = if put_back { serialize(&doc)? } else { text };
        self.commit(&mut st, text, apply, false)
    }

    /// Creates or replaces the `[[camera]]` / `[[storage]]` table with `id` (the table's own
    /// `id`, if given, must match), keeping its place in the list. The file is re-serialized, so
    /// its comments are not kept.
    pub fn put_item<R>(
        &self,
        section: Section,
        id: &str,
        mut table: toml::Table,
        expected: Option<u64>,
        apply: impl FnOnce(Config) -> R,
    ) -> Result<Changed<R>, Error> {
        match table.get("id") {
            None => {
                table.insert("id".to_owned(), toml::Value::String(id.to_owned()));
            }
            Some(v) if v.as_str() == Some(id) => {}
            Some(v) => {
                return Err(crate::err!(
                    InvalidArgument,
                    "key `{}.id`: {v} differs from the id {id:?} in the URL",
                    section.key()
                ))
            }
        }
        let mut st = self.text.lock().expect("config text lock");
        self.check_revision(expected)?;
        let mut doc = parse_table(&self.file_name(), &st)?;
        let current = doc.clone();
        let list = items_mut(&mut doc, section)?;
        let created = match list.iter_mut().find(|t| has_id(t, id)) {
            Some(slot) => {
                *slot = toml::Value::Table(table);
                false
            }
            None => {
                list.push(toml::Value::Table(table));
                true
            }
        };
        let sent = doc.clone();
        if let Err(e) = unredact(&mut doc, &current) {
            return Err(self.error_as_sent(&serialize(&sent)?).unwrap_or(e));
        }
        let text = serialize(&doc)?;
        self.commit(&mut st, text, apply, created)
    }

    /// Removes the `[[camera]]` / `[[storage]]` table with `id`. The rest of the document must
    /// still validate (a storage a camera records into cannot go).
    pub fn delete_item<R>(
        &self,
        section: Section,
        id: &str,
        expected: Option<u64>,
        apply: impl FnOnce(Config) -> R,
    ) -> Result<Changed<R>, Error> {
        let mut st = self.text.lock().expect("config text lock");
        self.check_revision(expected)?;
        let mut doc = parse_table(&self.file_name(), &st)?;
        let list = items_mut(&mut doc, section)?;
        let before = list.len();
        list.retain(|t| !has_id(t, id));
        if list.len() == before {
            return Err(crate::err!(NotFound, "no {} {id:?} in the config", section.key()));
        }
        if list.is_empty() {
            doc.remove(section.key());
        }
        let text = serialize(&doc)?;
        self.commit(&mut st, text, apply, false)
    }

    /// Validates `text`, writes it and the new revision, applies it. The order makes a crash at
    /// any point safe: before the rename the old file stays; after it, the next start finds a
    /// text the revision file does not name and counts it as a new revision.
    fn commit<R>(
        &self,
        st: &mut String,
        text: String,
        apply: impl FnOnce(Config) -> R,
        created: bool,
    ) -> Result<Changed<R>, Error> {
        let config = Config::parse(&self.file_name(), &text, self.base_dir.as_deref())?;
        // Issue 10 points 1 and 2: a storage change the store cannot apply (a resize, a move of
        // recordings, more space than the disk has) is refused now, not found at the next start.
        let previous = Config::parse(&self.file_name(), st, self.base_dir.as_deref()).ok();
        config.check_storages_on_disk(previous.as_ref())?;
        // AR-11 against the chains in force (the text at start), not the last written file; a
        // start text that no longer parses (edited outside the API) leaves the last written one.
        let in_force = Config::parse(&self.file_name(), &self.started_with, self.base_dir.as_deref()).ok();
        if let Some(in_force) = in_force.as_ref().or(previous.as_ref()) {
            config.check_archive_chains(in_force)?;
        }
        if let Some(check) = self.check.get() {
            check(&config)?;
        }
        // Readers see the new file once it is renamed, so a failed directory fsync after that
        // leaves the change in force (and logged), as the old text would no longer be true.
        crate::fsutil::write_atomic(&self.path, text.as_bytes(), 0o600).or_else(WriteError::unless_replaced)?;
        let revision = self.revision() + 1;
        // Kept in the new config's data dir, so a moved data dir continues the count.
        let _ = std::fs::create_dir_all(&config.data_dir);
        if let Err(e) = write_revision(&config.data_dir.join(REVISION_FILE), revision, &sha256_hex(&text)) {
            // The file is written; the next start derives the revision from its hash.
            tracing::warn!("config revision not saved: {e}");
        }
        *st = text;
        self.revision.store(revision, Ordering::Release);
        tracing::info!(revision, path = %self.path.display(), "config changed");
        Ok(Changed { revision, created, applied: apply(config) })
    }

    /// The validation error of a document as the client sent it (placeholders included), if
    /// any. Issue 10 point 15: when a secret cannot be put back, a mistake in the document itself
    /// comes first: a typo such as `sorce` makes the camera look like a new endpoint, and "there
    /// is no stored secret" would send the user after the wrong key.
    fn error_as_sent(&self, text: &str) -> Option<Error> {
        Config::parse(&self.file_name(), text, self.base_dir.as_deref()).err()
    }

    fn check_revision(&self, expected: Option<u64>) -> Result<(), Error> {
        match expected {
            Some(e) if e != self.revision() => Err(crate::err!(
                FailedPrecondition,
                "the config is at revision {}, not {e}: it changed meanwhile; read it again and reapply your change",
                self.revision()
            )),
            _ => Ok(()),
        }
    }

    fn file_name(&self) -> String {
        self.path.display().to_string()
    }
}

fn write_revision(path: &Path, revision: u64, hash: &str) -> Result<(), Error> {
    crate::fsutil::write_atomic(path, format!("{revision} {hash}\n").as_bytes(), 0o600)
        .or_else(WriteError::unless_replaced)
}

fn serialize(doc: &toml::Table) -> Result<String, Error> {
    toml::to_string(doc).map_err(|e| crate::err!(InvalidArgument, "the config cannot be written as TOML: {e}"))
}

fn items(doc: &toml::Table, section: Section) -> Vec<&toml::Table> {
    match doc.get(section.key()) {
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_table()).collect(),
        _ => Vec::new(),
    }
}

/// The array of tables for `section` (created empty when missing).
fn items_mut(doc: &mut toml::Table, section: Section) -> Result<&mut Vec<toml::Value>, Error> {
    match doc.entry(section.key()).or_insert_with(|| toml::Value::Array(Vec::new())) {
        toml::Value::Array(a) => Ok(a),
        _ => Err(crate::err!(InvalidArgument, "key `{}`: must be an array of tables", section.key())),
    }
}

fn has_id(v: &toml::Value, id: &str) -> bool {
    v.get("id").and_then(|v| v.as_str()) == Some(id)
}

/// Redacts camera passwords (the `password` key and a password in the `source` URL), the
/// camera's own and its second stream's (issue 14). Returns whether anything was redacted.
fn redact(doc: &mut toml::Table) -> bool {
    let mut any = false;
    if let Some(toml::Value::Array(cams)) = doc.get_mut("camera") {
        for cam in cams.iter_mut().filter_map(|c| c.as_table_mut()) {
            any |= redact_table(cam);
            if let Some(toml::Value::Table(second)) = cam.get_mut(SECOND_STREAM) {
                any |= redact_table(second);
            }
        }
    }
    any
}

/// The table of a camera's second stream, which has its own `source` and `password`.
const SECOND_STREAM: &str = "second_stream";

/// Redacts `password` and a password in `source` of one table.
fn redact_table(t: &mut toml::Table) -> bool {
    let mut any = false;
    if let Some(p) = t.get_mut("password") {
        *p = toml::Value::String(REDACTED.to_owned());
        any = true;
    }
    if let Some(toml::Value::String(src)) = t.get_mut("source") {
        if let Ok(mut url) = url::Url::parse(src) {
            if url.password().is_some() && url.set_password(Some(REDACTED)).is_ok() {
                *src = url.to_string();
                any = true;
            }
        }
    }
    any
}

/// Puts back the secrets a client sent as `REDACTED`, from the camera with the same id in
/// `current`, but only while they would go to the same place: same scheme, host, port and user
/// name as stored. A placeholder for a camera without a stored secret, or whose endpoint
/// changed, is an error (the client must send the secret itself), so a stored password can
/// never be sent to a new host. A second stream's secrets are matched with the stored camera's
/// second stream in the same way (issue 14). Returns whether anything was put back.
fn unredact(doc: &mut toml::Table, current: &toml::Table) -> Result<bool, Error> {
    let mut any = false;
    let Some(toml::Value::Array(cams)) = doc.get_mut("camera") else { return Ok(false) };
    for cam in cams.iter_mut().filter_map(|c| c.as_table_mut()) {
        let id = cam.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let old = items(current, Section::Camera).into_iter().find(|t| has_id_table(t, &id));
        any |= unredact_table(cam, old, "camera", &id)?;
        if let Some(toml::Value::Table(second)) = cam.get_mut(SECOND_STREAM) {
            let old_second = old.and_then(|o| o.get(SECOND_STREAM)).and_then(|v| v.as_table());
            any |= unredact_table(second, old_second, "camera.second_stream", &id)?;
        }
    }
    Ok(any)
}

/// `unredact` for one table (`key` names it in errors) against its stored version `old`.
fn unredact_table(t: &mut toml::Table, old: Option<&toml::Table>, key: &str, id: &str) -> Result<bool, Error> {
    let mut any = false;
    let missing = |what: &str| {
        crate::err!(
            InvalidArgument,
            "key `{key}.{what}` of camera {id:?}: {REDACTED:?} stands for the stored secret, and there is none \
             for this camera, user and address; send the secret itself"
        )
    };
    let url_of = |t: &toml::Table| t.get("source").and_then(|v| v.as_str()).and_then(|s| url::Url::parse(s).ok());
    let endpoint = |u: &url::Url, t: &toml::Table| {
        let user = t.get("username").and_then(|v| v.as_str()).unwrap_or(u.username()).to_owned();
        (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port_or_known_default(), user)
    };
    let same = match (url_of(t), old.and_then(|o| url_of(o).map(|u| (u, o)))) {
        (Some(new), Some((stored, o))) => endpoint(&new, t) == endpoint(&stored, o),
        _ => false,
    };
    if t.get("password").and_then(|v| v.as_str()) == Some(REDACTED) {
        let stored =
            old.filter(|_| same).and_then(|o| o.get("password")).cloned().ok_or_else(|| missing("password"))?;
        t.insert("password".to_owned(), stored);
        any = true;
    }
    if let Some(toml::Value::String(src)) = t.get_mut("source") {
        if let Ok(mut url) = url::Url::parse(src) {
            if url.password() == Some(REDACTED) {
                let stored = old
                    .filter(|_| same)
                    .and_then(url_of)
                    .and_then(|u| u.password().map(str::to_owned))
                    .ok_or_else(|| missing("source"))?;
                url.set_password(Some(&stored)).map_err(|_| missing("source"))?;
                *src = url.to_string();
                any = true;
            }
        }
    }
    Ok(any)
}

fn has_id_table(t: &toml::Table, id: &str) -> bool {
    t.get("id").and_then(|v| v.as_str()) == Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 point 15: a whole-document PUT of the redacted GET answer with the typo `sorce`
    /// reports the unknown key, not the password placeholder it left without an endpoint.
    #[test]
    fn a_typo_is_reported_before_the_placeholder_it_orphans() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let text = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"64MiB\"\n\
                    [[camera]]\nid = \"cam\"\nsource = \"rtsp://127.0.0.1:8554/x\"\nusername = \"u\"\npassword = \"secret\"\n";
        let path = tmp.path().join("edgerec.toml");
        std::fs::write(&path, text).expect("write config");
        let file = ConfigFile::open(path.clone(), text.to_owned(), None, tmp.path()).expect("open");
        let (_, shown) = file.toml_text().expect("text");
        assert!(shown.contains(REDACTED), "{shown}");
        let typo = shown.replace("source =", "sorce =");
        let e = file.replace(typo, None, |_| ()).err().expect("refused");
        assert!(e.msg().contains("unknown field `sorce`"), "{}", e.msg());
        assert!(!e.msg().contains(REDACTED), "{}", e.msg());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "nothing written");

        // The same for one camera table.
        let mut table = toml::Table::new();
        table.insert("sorce".to_owned(), toml::Value::String("rtsp://127.0.0.1:8554/x".to_owned()));
        table.insert("password".to_owned(), toml::Value::String(REDACTED.to_owned()));
        let e = file.put_item(Section::Camera, "cam", table, None, |_| ()).err().expect("refused");
        assert!(e.msg().contains("unknown field `sorce`"), "{}", e.msg());
    }

    /// Issue 14 (DEV-5): the config API never shows a second stream's password or the password
    /// in its URL, and a document sent back with the placeholders keeps the stored secrets; a
    /// placeholder sent for a new address is refused.
    #[test]
    fn a_second_streams_secrets_are_redacted_and_kept() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let text = "version = 1\n[[storage]]\nid = \"main\"\nsize = \"64MiB\"\n\
                    [[camera]]\nid = \"cam\"\nsource = \"rtsp://127.0.0.1:8554/main\"\n\
                    [camera.second_stream]\nsource = \"rtsp://sub:urlsecret@127.0.0.1:8554/sub\"\n\
                    [[camera]]\nid = \"other\"\nsource = \"rtsp://127.0.0.1:8554/main\"\n\
                    [camera.second_stream]\nsource = \"rtsp://127.0.0.1:8555/sub\"\nusername = \"u\"\npassword = \"keysecret\"\n";
        let path = tmp.path().join("edgerec.toml");
        std::fs::write(&path, text).expect("write config");
        let file = ConfigFile::open(path.clone(), text.to_owned(), None, tmp.path()).expect("open");
        let (_, shown) = file.toml_text().expect("text");
        assert!(!shown.contains("urlsecret") && !shown.contains("keysecret"), "{shown}");
        assert_eq!(shown.matches(REDACTED).count(), 2, "{shown}");
        let (_, doc) = file.document().expect("document");
        let doc = toml::to_string(&doc).expect("toml");
        assert!(!doc.contains("urlsecret") && !doc.contains("keysecret"), "{doc}");
        let (_, item) = file.item(Section::Camera, "other").expect("item");
        assert_eq!(item["second_stream"]["password"].as_str(), Some(REDACTED));

        // Sent back as shown (with a changed name): the stored secrets are kept.
        let edited = shown.replacen("id = \"cam\"", "id = \"cam\"\nname = \"Cam\"", 1);
        file.replace(edited, None, |_| ()).expect("accepted");
        let written = std::fs::read_to_string(&path).expect("read");
        assert!(written.contains("urlsecret") && written.contains("keysecret"), "{written}");

        // The placeholder sent towards another host is refused: the secret would go elsewhere.
        let moved = shown.replace("127.0.0.1:8555", "198.51.100.7:8555");
        let e = file.replace(moved, None, |_| ()).err().expect("refused");
        assert!(e.msg().contains("key `camera.second_stream.password` of camera \"other\""), "{}", e.msg());
    }
}
