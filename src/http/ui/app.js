// edgerec's web interface: one page, views chosen by the URL's hash (`#/dashboard`,
// `#/live/<camera>`, `#/login?next=...`), talking to the recorder's own API with the session
// cookie. No build step and no library: what the browser runs is this file.
'use strict';

const UI = (() => {
  /** The view that owns the page now; its `stop` runs when another view takes over. */
  let current = null;
  /** `GET /api/v1/me` of the signed-in user, or null. */
  let me = null;
  /** The cameras the signed-in user may read (`GET /api/v1/cameras`). */
  let cameras = [];
  /** The views by their first hash segment. Each is `{nav, start(params) -> {stop}}`. */
  const views = {};

  /** An API error the page shows as it came: status, code and the server's message. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Builds an element: `el('p', {class: 'x'}, 'text', child)`. Text is never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  /** Where the user is now, as the hash the sign-in page returns to. */
  function here() {
    return location.hash && !location.hash.startsWith('#/login') ? location.hash : '#/';
  }

  /** The sign-in page, then back to `next` (an expired session lands here too). */
  function toLogin(next) {
    me = null;
    const target = '#/login?next=' + encodeURIComponent(next || here());
    if (location.hash !== target) location.hash = target;
  }

  /**
   * Calls the API with the session cookie. A 401 (no session, or an expired one) goes to the
   * sign-in page and back; a password that must be changed first (AU-3) goes to that form.
   * The header tells the server not to send a Basic challenge, which would open the browser's
   * own credentials dialog over the page.
   */
  async function api(path, options = {}) {
    const headers = { 'X-Requested-With': 'edgerec-ui', ...(options.headers || {}) };
    if (options.json !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method: options.method || 'GET',
      credentials: 'same-origin',
      cache: 'no-store',
      headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
      // A view that stops (the user left the page) aborts its calls, a waiting long poll too.
      signal: options.signal,
    });
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      body = null;
    }
    const err = body && body.error ? body.error : null;
    if (r.status === 401 && !options.anonymous) {
      toLogin();
      throw new ApiError(401, 'unauthenticated', 'Please sign in.');
    }
    if (r.status === 403 && err && /must change the password/.test(err.message) && !options.anonymous) {
      location.hash = '#/password?next=' + encodeURIComponent(here());
      throw new ApiError(403, err.code, err.message);
    }
    if (!r.ok) throw new ApiError(r.status, err ? err.code : 'http_' + r.status, err ? err.message : r.statusText);
    return body;
  }

  /** Formats helpers: sizes, rates, durations and times a person reads at a glance. */
  const fmt = {
    bytes(n) {
      if (n === null || n === undefined) return '–';
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i ? n.toFixed(1) : n) + ' ' + units[i];
    },
    bits(n) {
      if (n === null || n === undefined) return '–';
      if (n >= 1e6) return (n / 1e6).toFixed(2) + ' Mbit/s';
      if (n >= 1e3) return (n / 1e3).toFixed(0) + ' kbit/s';
      return n + ' bit/s';
    },
    duration(sec) {
      if (sec === null || sec === undefined) return '–';
      sec = Math.max(0, Math.floor(sec));
      const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60);
      if (d) return d + ' d ' + h + ' h';
      if (h) return h + ' h ' + m + ' min';
      return m + ' min ' + (sec % 60) + ' s';
    },
    time(iso) {
      if (!iso) return '–';
      const t = new Date(iso);
      return isNaN(t) ? iso : t.toLocaleString();
    },
  };

  /** Whether the signed-in user holds recorder permission `p` (PR-9). */
  function may(p) {
    return !!me && (me.administrator || me.recorder_permissions.includes(p));
  }

  /** The navigation: only the pages this user may use. */
  function renderNav(active) {
    const nav = document.getElementById('nav');
    const who = document.getElementById('who');
    nav.replaceChildren();
    if (!me) {
      nav.hidden = true;
      who.hidden = true;
      return;
    }
    for (const [name, v] of Object.entries(views)) {
      if (!v.nav || !v.allowed()) continue;
      nav.append(el('a', { href: '#/' + name, class: name === active ? 'current' : null, 'data-page': name }, v.nav));
    }
    nav.hidden = false;
    document.getElementById('user-name').textContent = me.user;
    who.hidden = false;
  }

  /** Loads who the user is and which cameras they see; false when nobody is signed in. */
  async function loadSession() {
    me = await api('/api/v1/me');
    cameras = (await api('/api/v1/cameras')).cameras || [];
    return true;
  }

  /** The first page a user may use: dashboard, else live view, else a plain message. */
  function home() {
    for (const [name, v] of Object.entries(views)) {
      if (v.nav && v.allowed()) return '#/' + name;
    }
    return '#/nothing';
  }

  /** Parses `#/name/a/b?k=v` into the view name, path segments and query. */
  function parseHash() {
    const h = location.hash.replace(/^#\/?/, '');
    const [path, q] = h.split('?');
    const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { name: segments[0] || '', args: segments.slice(1), query: new URLSearchParams(q || '') };
  }

  /** Shows the view the hash names, signing in first where the view needs a user. */
  async function route() {
    const { name, args, query } = parseHash();
    if (current && current.stop) current.stop();
    current = null;
    const view = views[name];
    const main = document.getElementById('view');
    if (view && view.public) {
      renderNav(null);
      current = view.start(main, args, query) || null;
      return;
    }
    try {
      if (!me) await loadSession();
    } catch (e) {
      if (e.status !== 401 && e.status !== 403) main.replaceChildren(el('p', { class: 'error' }, e.message));
      return;
    }
    if (!view) {
      location.replace(home());
      return;
    }
    if (!view.allowed()) {
      main.replaceChildren(el('p', { class: 'error' }, 'You may not use this page.'));
      renderNav(name);
      return;
    }
    renderNav(name);
    document.title = 'edgerec: ' + (view.title || name);
    current = view.start(main, args, query) || null;
  }

  /** Goes to the `next` the sign-in page was given, if it is one of ours. */
  function goNext(query) {
    const next = query.get('next') || '#/';
    location.hash = next.startsWith('#/') && !next.startsWith('#/login') && !next.startsWith('#/password') ? next : '#/';
  }

  /** `POST /api/v1/login`: sets the session cookie (HttpOnly, SameSite=Strict). */
  async function signIn(name, password) {
    await api('/api/v1/login', { method: 'POST', json: { name, password }, anonymous: true });
    me = null;
    await loadSession();
  }

  views.login = {
    public: true,
    title: 'sign in',
    start(main, _args, query) {
      const error = el('div', { class: 'error', role: 'alert', id: 'login-error' });
      const form = el('form', { class: 'narrow', id: 'login' },
        el('h1', {}, 'Sign in'),
        el('label', {}, 'User name', el('input', { id: 'login-name', autocomplete: 'username', required: true, autofocus: true })),
        el('label', {}, 'Password', el('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', required: true })),
        el('button', { class: 'primary', type: 'submit' }, 'Sign in'),
        error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        try {
          await signIn(form.querySelector('#login-name').value, form.querySelector('#login-password').value);
          if (me.must_change_password) {
            location.hash = '#/password?next=' + encodeURIComponent(query.get('next') || '#/');
          } else {
            goNext(query);
          }
        } catch (e) {
          error.textContent = e.message;
        }
      });
      main.replaceChildren(form);
      return null;
    },
  };

  views.password = {
    public: true,
    title: 'change password',
    start(main, _args, query) {
      const error = el('div', { class: 'error', role: 'alert', id: 'password-error' });
      const form = el('form', { class: 'narrow', id: 'password' },
        el('h1', {}, 'Choose a new password'),
        el('p', { class: 'muted' }, 'Your password must be changed before you continue. The new one needs 8 or more characters with a digit, a lower-case and an upper-case letter and a symbol.'),
        el('label', {}, 'Current password', el('input', { id: 'old-password', type: 'password', autocomplete: 'current-password', required: true })),
        el('label', {}, 'New password', el('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true })),
        el('label', {}, 'New password again', el('input', { id: 'new-password-again', type: 'password', autocomplete: 'new-password', required: true })),
        el('button', { class: 'primary', type: 'submit' }, 'Change password'),
        error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        const password = form.querySelector('#new-password').value;
        if (password !== form.querySelector('#new-password-again').value) {
          error.textContent = 'The new passwords differ.';
          return;
        }
        try {
          const who = me || await api('/api/v1/me', { anonymous: true });
          await api('/api/v1/users/' + encodeURIComponent(who.user) + '/password', {
            method: 'PUT', anonymous: true,
            json: { old_password: form.querySelector('#old-password').value, password },
          });
          // A new password may end the sessions of the old one: sign in again with it.
          await signIn(who.user, password);
          goNext(query);
        } catch (e) {
          if (e.status === 401) toLogin(query.get('next') || '#/');
          else error.textContent = e.message;
        }
      });
      main.replaceChildren(form);
      return null;
    },
  };

  views.nothing = {
    allowed: () => true,
    start(main) {
      main.replaceChildren(el('p', {}, 'Your account has no page to show yet. Ask an administrator for permissions.'));
    },
  };

  document.getElementById('sign-out').addEventListener('click', async () => {
    try {
      await api('/api/v1/logout', { method: 'POST', anonymous: true });
    } finally {
      me = null;
      cameras = [];
      location.hash = '#/login';
    }
  });

  window.addEventListener('hashchange', route);
  window.addEventListener('DOMContentLoaded', () => {
    if (!location.hash) location.replace('#/');
    route();
  });

  /**
   * Whether the signed-in user holds camera permission `p` on camera `id` (PR-5), from `/me`'s
   * `camera_permissions`: a page offers only what the server allows (the server checks anyway).
   */
  function mayOn(p, id) {
    if (!me) return false;
    if (me.administrator) return true;
    const held = (me.camera_permissions || {})[id];
    return !!held && held.includes(p);
  }

  /** Reads the cameras the user may see again (after the cameras page added or removed one). */
  async function refreshCameras() {
    cameras = (await api('/api/v1/cameras')).cameras || [];
    return cameras;
  }

  /**
   * Issue 14 (DEV-5, MD-2): the facts of a camera's status (`/api/v1/status`) beyond its main
   * stream, as `dt`/`dd` pairs: the second stream's state, codec and size, and what motion
   * analysis does (`motion.off_reason` while it analyses nothing). Empty for a camera with
   * neither (or an answer without them, such as `/api/v1/cameras`).
   */
  function extraStreamFacts(c) {
    const out = [];
    const s = c.second_stream;
    if (s) {
      const video = s.codec ? s.codec + ' ' + (s.width || '?') + '×' + (s.height || '?') + ' · ' + (s.fps || 0).toFixed(1) + ' fps' : 'no video yet';
      out.push(el('dt', {}, 'Second stream'),
        el('dd', { class: 'second-stream', 'data-state': s.state }, s.state.replace(/_/g, ' ') + ' · ' + video + (s.last_error ? ' · ' + s.last_error : '')));
    }
    const m = c.motion;
    if (m) {
      out.push(el('dt', {}, 'Motion'),
        el('dd', { class: 'motion-state', 'data-off': m.off_reason ? 'true' : 'false' },
          m.off_reason ? 'not analysing: ' + m.off_reason : 'analysing the ' + m.stream + ' stream' + (m.motion ? ' · motion now' : '')));
    }
    return out;
  }

  return { el, api, fmt, may, views, extraStreamFacts, cameras: () => cameras, ApiError, mayOn, refreshCameras, user: () => (me ? me.user : null), pull: () => !!(me && me.pull) };
})();

// The dashboard (issue 12 point 3): cameras, storages and the machine, refreshed every 2 s.
(() => {
  const { el, api, fmt, may } = UI;
  /** How often the dashboard asks for status. */
  const REFRESH_MS = 2000;

  /** A camera's colour: green recording or streaming, amber on the way, red failing, grey off. */
  function cameraLevel(c) {
    switch (c.state) {
      case 'recording':
        return c.not_recording_reason ? 'warn' : 'ok';
      case 'streaming':
        return c.not_recording_reason ? 'warn' : 'ok';
      case 'connecting':
        return c.last_error ? 'bad' : 'warn';
      case 'waiting':
        return 'warn';
      case 'disabled':
        return 'off';
      default:
        return 'bad';
    }
  }

  function cameraCard(c) {
    const level = cameraLevel(c);
    const facts = el('dl', { class: 'facts' },
      el('dt', {}, 'Recording'), el('dd', { class: c.recording ? 'rec' : null }, c.recording ? '● yes' : 'no' + (c.not_recording_reason ? ': ' + c.not_recording_reason : '')),
      el('dt', {}, 'Frame rate'), el('dd', {}, c.fps.toFixed(1) + ' fps'),
      el('dt', {}, 'Bit rate'), el('dd', {}, fmt.bits(c.bitrate_bps)),
      el('dt', {}, 'Video'), el('dd', {}, c.codec ? c.codec + ' ' + (c.width || '?') + '×' + (c.height || '?') : '–'),
      el('dt', {}, 'Last frame'), el('dd', {}, fmt.time(c.last_frame_time)),
      el('dt', {}, 'Dropped'), el('dd', {}, String(c.frames_dropped)),
      el('dt', {}, 'Reconnects'), el('dd', {}, String(c.reconnects)),
      UI.extraStreamFacts(c));
    return el('article', { class: 'card camera ' + level, 'data-camera': c.id, 'data-level': level },
      el('h3', {}, el('span', {}, c.name || c.id, ' ', el('span', { class: 'id' }, c.id)),
        el('span', { class: 'badge ' + level }, c.state.replace(/_/g, ' '))),
      facts,
      c.last_error ? el('div', { class: 'last-error' }, c.last_error) : null);
  }

  function storageCard(s) {
    const level = s.state === 'available' ? 'ok' : s.state === 'stalled' ? 'warn' : 'bad';
    const usedPct = s.capacity_bytes ? Math.min(100, 100 * s.used_bytes / s.capacity_bytes) : 0;
    // Days of recording the storage holds at the current write rate: the server's figure
    // (`recording_days_at_current_rate`, which honours the retention; null while nothing is
    // written), never one of the page's own (review of issue 12 point 3).
    const days = s.recording_days_at_current_rate;
    return el('article', { class: 'card storage ' + level, 'data-storage': s.id, 'data-level': level },
      el('h3', {}, el('span', {}, s.id), el('span', { class: 'badge ' + level }, s.state)),
      el('div', { class: 'bar', title: usedPct.toFixed(0) + ' % used' }, el('span', { style: 'width:' + usedPct.toFixed(1) + '%' })),
      el('dl', { class: 'facts' },
        el('dt', {}, 'Used / free'), el('dd', {}, fmt.bytes(s.used_bytes) + ' / ' + fmt.bytes(s.free_bytes)),
        el('dt', {}, 'Oldest'), el('dd', {}, fmt.time(s.oldest_recording)),
        el('dt', {}, 'Newest'), el('dd', {}, fmt.time(s.newest_recording)),
        el('dt', {}, 'Write rate'), el('dd', {}, fmt.bits(s.write_rate_bps)),
        el('dt', {}, 'Sync latency'), el('dd', {}, s.sync_latency_ms.toFixed(1) + ' ms (max ' + s.max_sync_latency_ms.toFixed(1) + ' ms)'),
        el('dt', {}, 'Holds'), el('dd', { class: 'holds', 'data-days': days === undefined || days === null ? '' : String(days) }, days === undefined || days === null ? '–' : '≈ ' + days.toFixed(1) + ' days at this rate'),
        el('dt', {}, 'Retention'), el('dd', {}, s.retention_days + ' days')),
      s.last_error ? el('div', { class: 'last-error' }, s.last_error) : null);
  }

  function systemCard(status) {
    const sys = status.system || {};
    const mem = sys.memory || {};
    const temps = (sys.temperatures || []).map((t) => t.type + ' ' + t.celsius.toFixed(0) + ' °C').join(', ');
    const hot = (sys.temperatures || []).some((t) => t.celsius >= 80);
    const level = hot ? 'warn' : 'ok';
    const memUsed = mem.total_bytes && mem.available_bytes !== null ? mem.total_bytes - mem.available_bytes : null;
    return el('article', { class: 'card system ' + level, 'data-level': level },
      el('h3', {}, el('span', {}, 'System'), el('span', { class: 'muted' }, 'edgerec ' + status.version)),
      el('dl', { class: 'facts' },
        el('dt', {}, 'CPU'), el('dd', {}, sys.cpu_percent === null || sys.cpu_percent === undefined ? '–' : sys.cpu_percent + ' %'),
        el('dt', {}, 'Memory'), el('dd', {}, memUsed === null ? '–' : fmt.bytes(memUsed) + ' of ' + fmt.bytes(mem.total_bytes) + ' used'),
        el('dt', {}, 'Temperatures'), el('dd', {}, temps || 'no sensors'),
        el('dt', {}, 'Uptime'), el('dd', {}, fmt.duration(sys.uptime_seconds)),
        el('dt', {}, 'Recorder up'), el('dd', {}, fmt.duration(status.uptime_sec))));
  }

  function render(main, status, updated) {
    const cams = status.cameras || [];
    const levels = cams.map(cameraLevel).concat((status.storages || []).map((s) => s.state === 'available' ? 'ok' : s.state === 'stalled' ? 'warn' : 'bad'));
    const bad = levels.filter((l) => l === 'bad').length;
    const warn = levels.filter((l) => l === 'warn').length;
    const level = bad ? 'bad' : warn ? 'warn' : 'ok';
    const recording = cams.filter((c) => c.recording).length;
    const summary = bad ? bad + (bad === 1 ? ' fault' : ' faults') : warn ? warn + ' need attention' : 'All well';
    main.replaceChildren(
      el('div', { class: 'banner ' + level, id: 'summary', 'data-level': level }, summary + ' · ' + recording + ' of ' + cams.length + ' cameras recording'),
      el('h2', {}, 'Cameras'),
      cams.length ? el('div', { class: 'cards' }, cams.map(cameraCard)) : el('p', { class: 'muted' }, 'No cameras you may see.'),
      el('h2', {}, 'Storage'),
      el('div', { class: 'cards' }, (status.storages || []).map(storageCard)),
      el('h2', {}, 'System'),
      el('div', { class: 'cards' }, systemCard(status)),
      el('p', { class: 'muted', id: 'updated' }, 'Updated ' + updated.toLocaleTimeString()));
  }

  UI.views.dashboard = {
    nav: 'Dashboard',
    title: 'dashboard',
    allowed: () => may('status'),
    start(main) {
      let timer = null;
      let stopped = false;
      const tick = async () => {
        try {
          const status = await api('/api/v1/status');
          if (!stopped) render(main, status, new Date());
        } catch (e) {
          if (stopped || e.status === 401) return;
          const banner = main.querySelector('#summary');
          const note = el('div', { class: 'banner bad', id: 'summary' }, 'The recorder does not answer: ' + e.message);
          if (banner) banner.replaceWith(note);
          else main.replaceChildren(note);
        }
        if (!stopped) timer = setTimeout(tick, REFRESH_MS);
      };
      main.replaceChildren(el('h1', {}, 'Dashboard'));
      tick();
      return { stop() { stopped = true; clearTimeout(timer); } };
    },
  };
})();
