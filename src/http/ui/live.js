// Live view (issue 12 point 4): a grid of every camera the user may watch and a single-camera
// view. Plays `live.mp4` (fragmented MP4 from the latest key frame) through Media Source
// Extensions; where MSE is missing (iPhone) the video element plays the HLS playlist itself;
// where the browser cannot decode the codec (H.265 in most browsers) it says so instead of
// showing a black box.
'use strict';

(() => {
  const { el, api } = UI;
  /** Seconds of played video kept behind the play position before it is removed. */
  const KEEP_BEHIND_S = 10;
  /** Seconds behind the newest buffered frame after which the player jumps to the live edge. */
  const MAX_BEHIND_S = 2.0;
  /** Where a jump lands: this many seconds before the newest buffered frame. */
  const LIVE_EDGE_S = 0.3;
  /** Wait before a stream that ended or failed is started again. */
  const RESTART_MS = 1500;

  /** The message for a codec this browser cannot decode. */
  function cannotDecode(codec) {
    if (/^(hvc1|hev1)/.test(codec)) return 'This browser cannot decode H.265 video';
    // Issue 14: no browser plays MJPEG through Media Source Extensions; the snapshot and exports do.
    if (/^mp4v\.6c/i.test(codec)) return 'Live view cannot show MJPEG video in the browser; snapshots and exports work';
    return 'This browser cannot decode ' + codec + ' video';
  }

  /**
   * Plays one camera's live stream into `video`, restarting after an error or the end of the
   * stream until `stop()`. `say(text)` shows a message over the picture ('' clears it).
   */
  class LivePlayer {
    constructor(video, camera, say) {
      this.video = video;
      this.camera = camera;
      this.say = say;
      this.audio = false;
      this.stopped = false;
      this.abort = null;
      this.timer = null;
      this.objectUrl = null;
      /** How the stream plays now: 'mse', 'hls' or null, for the page and its tests. */
      this.mode = null;
      /** Called with the live description once it is known (the page offers sound then). */
      this.onInfo = null;
    }

    setAudio(on) {
      this.audio = on;
      this.video.muted = !on;
      this.restart(0);
    }

    restart(delayMs) {
      this.teardown();
      clearTimeout(this.timer);
      if (!this.stopped) this.timer = setTimeout(() => this.start(), delayMs);
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      this.teardown();
    }

    teardown() {
      if (this.abort) this.abort.abort();
      this.abort = null;
      this.video.pause();
      this.video.removeAttribute('src');
      this.video.load();
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
      this.mode = null;
    }

    async start() {
      if (this.stopped) return;
      let info;
      try {
        info = await api('/api/v1/cameras/' + encodeURIComponent(this.camera) + '/live');
      } catch (e) {
        // 503 while the camera has no picture yet: its last error, and another try soon.
        this.say(e.message);
        if (e.status !== 401 && e.status !== 403 && e.status !== 404) this.restart(3000);
        return;
      }
      this.info = info;
      if (this.onInfo) this.onInfo(info);
      const withAudio = this.audio && !!info.audio;
      const query = withAudio ? '?audio=1' : '';
      const codecs = info.video.codec + (withAudio ? ',' + info.audio.codec : '');
      const mime = 'video/mp4; codecs="' + codecs + '"';
      const MS = window.ManagedMediaSource || window.MediaSource;
      // HLS only where MSE is missing (an iPhone before iOS 17.1): a browser with MSE that cannot
      // decode the codec cannot decode it from HLS either (desktop Chromium plays HLS itself
      // now, but not H.265), so it says so instead of showing a black box.
      if (!MS) {
        if (this.video.canPlayType('application/vnd.apple.mpegurl') !== '') {
          this.mode = 'hls';
          this.say('');
          this.video.src = info.hls + query;
          this.video.play().catch(() => {});
        } else {
          this.say('This browser cannot play live video (no Media Source Extensions or HLS).');
        }
        return;
      }
      if (!MS.isTypeSupported(mime)) {
        this.say(cannotDecode(info.video.codec));
        return;
      }
      this.say('');
      this.mode = 'mse';
      await this.playMse(MS, mime, info.mse + query);
    }

    /** fetch → ReadableStream → SourceBuffer, trimming old buffer and keeping to the live edge. */
    async playMse(MS, mime, url) {
      const video = this.video;
      const ms = new MS();
      const abort = new AbortController();
      this.abort = abort;
      this.objectUrl = URL.createObjectURL(ms);
      video.disableRemotePlayback = true;
      video.src = this.objectUrl;
      await new Promise((resolve) => ms.addEventListener('sourceopen', resolve, { once: true }));
      if (abort.signal.aborted) return;
      let sb;
      try {
        sb = ms.addSourceBuffer(mime);
        sb.mode = 'segments';
      } catch (e) {
        this.say(cannotDecode(this.info.video.codec));
        return;
      }
      const queue = [];
      const pump = () => {
        if (sb.updating || abort.signal.aborted || ms.readyState !== 'open') return;
        const b = sb.buffered;
        // Trim what was played long ago, so the buffer stays small on a phone.
        if (b.length && video.currentTime - b.start(0) > KEEP_BEHIND_S * 2) {
          sb.remove(b.start(0), video.currentTime - KEEP_BEHIND_S);
          return;
        }
        if (!queue.length) return;
        try {
          sb.appendBuffer(queue.shift());
        } catch (e) {
          if (e.name === 'QuotaExceededError' && b.length) {
            sb.remove(b.start(0), Math.max(b.start(0) + 0.1, video.currentTime - 1));
          } else {
            this.restart(RESTART_MS);
          }
        }
      };
      sb.addEventListener('updateend', () => {
        const b = sb.buffered;
        if (b.length) {
          const end = b.end(b.length - 1);
          // Start at the first picture, and jump to the live edge when the player fell behind
          // (a tab in the background, a slow phone): live view never plays old video.
          if (video.currentTime < b.start(0) || end - video.currentTime > MAX_BEHIND_S) {
            video.currentTime = Math.max(b.start(b.length - 1), end - LIVE_EDGE_S);
          }
          if (video.paused) video.play().catch(() => {});
        }
        pump();
      });
      sb.addEventListener('error', () => this.restart(RESTART_MS));
      try {
        const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store', signal: abort.signal, headers: { 'X-Requested-With': 'edgerec-ui' } });
        if (!r.ok) {
          let message = r.statusText;
          try { message = (await r.json()).error.message; } catch (_) { /* not JSON */ }
          this.say(message);
          this.restart(3000);
          return;
        }
        const reader = r.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          queue.push(value);
          pump();
        }
        // The server ended the stream (a camera reconnect, a restart): start again.
        this.restart(RESTART_MS);
      } catch (e) {
        if (!abort.signal.aborted) this.restart(RESTART_MS);
      }
    }
  }

  /** One camera's tile: video, a message layer and a caption. */
  function tile(camera, single) {
    const video = el('video', { muted: true, autoplay: true, playsinline: true, 'data-camera': camera.id });
    video.muted = true;
    const message = el('div', { class: 'message', role: 'status' });
    const caption = el('div', { class: 'caption' },
      single ? el('span', {}, camera.name || camera.id) : el('a', { href: '#/live/' + encodeURIComponent(camera.id) }, camera.name || camera.id),
      el('span', { class: 'muted' }, camera.codec || ''));
    const box = el('div', { class: 'tile', 'data-camera': camera.id }, video, message, caption);
    const player = new LivePlayer(video, camera.id, (text) => { message.textContent = text; });
    return { box, video, player };
  }

  UI.views.live = {
    nav: 'Live',
    title: 'live view',
    // Issue 12 point 4: only with `view_live` on a camera the user may read.
    allowed: () => UI.cameras().some((c) => UI.mayOn('view_live', c.id)),
    start(main, args) {
      const players = [];
      const id = args[0];
      if (id && !UI.mayOn('view_live', id)) {
        // Review 1 finding 7: a camera the user may not watch is refused here, without asking
        // the server (each refusal there is an audited denial).
        main.replaceChildren(el('p', { class: 'error', id: 'live-refused' }, 'You may not watch this camera live.'));
      } else if (id) {
        const camera = UI.cameras().find((c) => c.id === id) || { id };
        const t = tile(camera, true);
        players.push(t.player);
        const audio = el('button', { type: 'button', id: 'audio-toggle', hidden: true }, 'Sound on');
        audio.addEventListener('click', () => {
          const on = !t.player.audio;
          t.player.setAudio(on);
          audio.textContent = on ? 'Sound off' : 'Sound on';
        });
        main.replaceChildren(
          el('h1', {}, 'Live: ', camera.name || camera.id),
          el('div', { class: 'controls' }, el('a', { href: '#/live' }, '← All cameras'), audio),
          el('div', { class: 'single' }, t.box));
        t.player.onInfo = (info) => { audio.hidden = !info.audio; };
        t.player.start();
      } else {
        const grid = el('div', { class: 'live-grid', id: 'live-grid' });
        main.replaceChildren(el('h1', {}, 'Live'), grid);
        // Review 1 finding 7: only cameras the user may watch (`/me` says which) get a tile; the
        // grid does not probe the others, which would write an audited denial for each.
        const watchable = UI.cameras().filter((c) => UI.mayOn('view_live', c.id));
        if (!watchable.length) grid.replaceWith(el('p', { class: 'muted' }, 'No camera you may watch live.'));
        for (const camera of watchable) {
          const t = tile(camera, false);
          grid.append(t.box);
          players.push(t.player);
          t.player.start();
        }
      }
      return { stop() { players.forEach((p) => p.stop()); } };
    },
  };

  UI.LivePlayer = LivePlayer;
})();
