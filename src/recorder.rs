//! The recorder: starts one writer per storage, the RTSP/demo runtime and one supervisor per
//! camera, and stops them in order. Status and HTTP read its shared stats.
//! Invariant: a storage or camera that fails to start is reported, never fatal to the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clocks::Clocks;
use crate::config::{Config, SourceSpec};
use crate::error::Error;
use crate::ingest::{CameraState, CameraStats};
use crate::source::demo::DemoSource;
use crate::source::rtsp::RtspSource;
use crate::source::Source;
use crate::store::{self, StorageHandle};

pub struct Recorder {
    pub config: Config,
    pub storages: Vec<StorageHandle>,
    pub cameras: Vec<Arc<CameraStats>>,
    pub started_wall_us: i64,
    stop_tx: tokio::sync::watch::Sender<bool>,
    runtime_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Kept so a watchdog can see whether a writer thread died.
    pub writer_threads: Vec<std::thread::JoinHandle<()>>,
    /// Advanced every second by a task on the ingest runtime: proves the runtime is not stuck.
    pub ingest_heartbeat: Arc<std::sync::atomic::AtomicU64>,
}

impl Recorder {
    /// Opens every storage (recovering it) and starts every enabled camera. Returns once all
    /// storages finished recovery, so a caller can report readiness afterwards.
    pub fn start(config: Config, clocks: Arc<dyn Clocks>) -> Result<Recorder, Error> {
        let recorder_uuid = store::recorder_uuid(&config.data_dir)?;
        let mut storages = Vec::new();
        let mut writer_threads = Vec::new();
        for s in &config.storages {
            let (handle, join, ready) = store::writer::spawn(
                s.clone(),
                config.data_dir.clone(),
                recorder_uuid,
                clocks.clone(),
            );
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(storage = %s.id, "storage not available at start (retrying): {e}")
                }
                Err(_) => tracing::error!(storage = %s.id, "storage writer died during open"),
            }
            storages.push(handle);
            writer_threads.push(join);
        }
        let by_id: HashMap<&str, &StorageHandle> = storages.iter().map(|h| (&*h.id, h)).collect();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut cameras = Vec::new();
        let mut tasks: Vec<(Box<dyn Source>, Arc<CameraStats>, StorageHandle)> = Vec::new();
        for c in &config.cameras {
            let stats = Arc::new(CameraStats::new(&c.id, &c.name, &c.storage, c.prebuffer_us));
            if c.record == crate::config::RecordMode::Continuous {
                stats.control.start("continuous", 0, None);
            }
            cameras.push(stats.clone());
            if !c.enabled {
                *stats.state.lock().expect("state lock") = CameraState::Disabled;
                continue;
            }
            let handle = (*by_id
                .get(c.storage.as_str())
                .expect("config validated the storage reference"))
            .clone();
            let source: Box<dyn Source> = match &c.source {
                SourceSpec::Demo => match DemoSource::new() {
                    Ok(d) => Box::new(d),
                    Err(e) => {
                        *stats.last_error.lock().expect("error lock") = Some(e.to_string());
                        continue;
                    }
                },
                SourceSpec::Rtsp {
                    url,
                    username,
                    password,
                    transport,
                } => Box::new(RtspSource::new(
                    url.clone(),
                    username.clone(),
                    password.clone(),
                    *transport,
                )),
            };
            tasks.push((source, stats, handle));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the RTSP runtime", e))?;
        let ingest_heartbeat = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let beat = ingest_heartbeat.clone();
        let mut beat_stop = stop_rx.clone();
        let runtime_thread = std::thread::Builder::new()
            .name("ingest".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = tokio::task::JoinSet::new();
                    set.spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            tokio::select! {
                                _ = tick.tick() => { beat.fetch_add(1, std::sync::atomic::Ordering::Relaxed); }
                                _ = beat_stop.changed() => return,
                            }
                        }
                    });
                    for (source, stats, handle) in tasks {
                        set.spawn(crate::ingest::supervise(
                            source,
                            stats,
                            handle,
                            clocks.clone(),
                            stop_rx.clone(),
                        ));
                    }
                    while set.join_next().await.is_some() {}
                });
            })
            .map_err(|e| Error::io("cannot spawn the ingest thread", e))?;
        Ok(Recorder {
            started_wall_us: crate::clocks::SystemClocks.realtime_us_now(),
            config,
            storages,
            cameras,
            stop_tx,
            runtime_thread: std::sync::Mutex::new(Some(runtime_thread)),
            writer_threads,
            ingest_heartbeat,
        })
    }

    /// Stops ingest, then has every writer write and fdatasync what it holds. Writer threads
    /// stay alive (idle) until the process exits.
    pub fn shutdown(&self, timeout: Duration) {
        let _ = self.stop_tx.send(true);
        if let Some(t) = self.runtime_thread.lock().expect("runtime lock").take() {
            let _ = t.join();
        }
        for s in &self.storages {
            if !s.flush(timeout) {
                tracing::warn!(storage = %s.id, "writer did not flush within {timeout:?}");
            }
        }
    }

    pub fn storage(&self, id: &str) -> Option<&StorageHandle> {
        self.storages.iter().find(|s| &*s.id == id)
    }

    pub fn camera(&self, id: &str) -> Option<&Arc<CameraStats>> {
        self.cameras.iter().find(|c| &*c.id == id)
    }
}
