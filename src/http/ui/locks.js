// Evidence locks (issue 13, EL-1, EL-6, EL-7, EL-8): the locks the user may see, with their
// cameras, protected range, expiry, creator and where the protected data is held and how much;
// filters and sort kept in the hash (`#/locks?camera=yard&sort=-start`); a form to create a lock
// (`#/locks/new?camera=..&from=..&to=..`, which playback's "Lock this range" opens), and a lock's
// page (`#/locks/<id>`) with its Extend and Reduce forms (`#/locks/<id>/extend`, `/reduce`) and
// Delete. Buttons are offered only when `/api/v1/me` says the user holds the permission on every
// camera of the lock (EL-7); the server checks anyway, and its errors are shown as it words them.
'use strict';

(() => {
  const { el, api, fmt, mayOn } = UI;
  /** The most locks one listing asks for; the page says when there may be more. */
  const LIST_LIMIT = 200;
  /** The range a new lock protects when nothing else is asked: the last 10 minutes. */
  const DEFAULT_RANGE_MS = 10 * 60 * 1000;
  /** The sort orders `GET /api/v1/evidence-locks` takes, as the select offers them. */
  const SORTS = [
    ['-start', 'Protected range, newest first'],
    ['start', 'Protected range, oldest first'],
    ['expires', 'Expiry, soonest first'],
    ['-expires', 'Expiry, latest first'],
    ['-created', 'Created, newest first'],
    ['created', 'Created, oldest first'],
  ];
  /** A note for the next page the view shows ("Lock created."), set before it goes there. */
  let flash = null;
  /**
   * How far the recorder's clock is ahead of the browser's (ms), from the `Date` header of its
   * answers. The server checks an expiry of "now + a duration" against its own clock (±60 s),
   * and a phone or laptop on a LAN without NTP can be minutes off it (review finding 5).
   */
  let clockOffsetMs = 0;
  /** The recorder's clock now (ms), as the page best knows it. */
  const serverNow = () => Date.now() + clockOffsetMs;

  const pad = (n) => String(n).padStart(2, '0');
  /** The `datetime-local` value (local time, to the second) of a time in ms. */
  function inputOf(ms) {
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  /** The time in ms of a `datetime-local` value (the browser's zone), or null. */
  function msOfInput(value) {
    if (!value) return null;
    const t = new Date(value).getTime();
    return Number.isNaN(t) ? null : t;
  }
  /**
   * A moment of a link's query in µs, exact to the µs the link names: RFC 3339 only (what the
   * pages write). Plain digits are refused rather than guessed at, since the API's times are µs
   * and a page's are ms (review finding 12). Null when absent or not understood.
   */
  function usOfQuery(text) {
    const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i.exec(text || '');
    if (!m) return null;
    const whole = Date.parse(m[1] + m[3].toUpperCase());
    if (Number.isNaN(whole)) return null;
    return whole * 1000 + Number(((m[2] || '') + '000000').slice(0, 6));
  }
  /** The words a page shows when a link's `key` time was there but not understood, else null. */
  function badQuery(query, ...keys) {
    const bad = keys.filter((k) => query.get(k) && usOfQuery(query.get(k)) === null);
    return bad.length ? 'The link\'s ' + bad.join(' and ') + ' time (' + bad.map((k) => query.get(k)).join(', ') +
      ') is not a date and time like 2026-12-05T10:00:00Z, so it was left out.' : null;
  }
  /** A wall time of the API (µs UTC) as the user's local date and time. */
  const when = (us) => new Date(us / 1000).toLocaleString();
  /** A lock's expiry as a person reads it: "indefinite", or the date and how far off it is. */
  function expiryText(us) {
    if (us === null || us === undefined) return 'indefinite';
    const left = us / 1000 - serverNow();
    return when(us) + (left > 0 ? ' (in ' + fmt.duration(left / 1000) + ')' : ' (expired)');
  }
  /** The cameras of a lock by name where the user knows it. */
  function cameraNames(ids) {
    const known = new Map(UI.cameras().map((c) => [c.id, c.name || c.id]));
    return ids.map((id) => known.get(id) || id).join(', ');
  }
  /** Whether the user holds camera permission `p` on every camera of `lock` (EL-7). */
  const mayAll = (p, lock) => lock.cameras.length > 0 && lock.cameras.every((c) => mayOn(p, c));
  /** The cameras the user may do `p` on, as `UI.cameras()` lists them. */
  const camerasWith = (p) => UI.cameras().filter((c) => mayOn(p, c.id));
  /**
   * The cameras a new lock may name here: `evidence_lock_create` and `evidence_lock_view` both,
   * since a lock naming a camera the user may not see is not listed for them and could not be
   * changed from these pages afterwards (review finding 2).
   */
  const lockableCameras = () => camerasWith('evidence_lock_create').filter((c) => mayOn('evidence_lock_view', c.id));
  /**
   * Where a lock's data is held (EL-8): one line per storage and tier, e.g. "main, ring", with its
   * size ("1.2 MiB · main, ring") when there are several.
   */
  function heldLines(lock) {
    const sums = new Map();
    for (const h of lock.held || []) {
      const key = h.storage + ', ' + h.tier;
      sums.set(key, (sums.get(key) || 0) + h.bytes);
    }
    // One place needs no size of its own: the lock's total beside it is that size.
    return [...sums].map(([where, bytes]) => el('div', { class: 'lock-held', 'data-bytes': String(bytes) }, sums.size > 1 ? fmt.bytes(bytes) + ' · ' + where : where));
  }
  /** The tiers a lock's data is held in ("ring", "archive 1"...), for the list's own column. */
  const tiers = (lock) => [...new Set((lock.held || []).map((h) => h.tier))].join(', ') || '–';

  /**
   * A button that asks once more before `action` runs, as "Delete" becomes "Really delete?". The
   * button is disabled until the action's promise settles, so a further click sends no second
   * request (review finding 9).
   */
  function confirmButton(label, question, action, attrs) {
    const b = el('button', { type: 'button', ...attrs }, label);
    let armed = false;
    b.addEventListener('click', () => {
      if (b.disabled) return;
      if (!armed) {
        armed = true;
        b.textContent = question;
        b.classList.add('danger');
        return;
      }
      b.disabled = true;
      Promise.resolve(action()).finally(() => { b.disabled = false; });
    });
    b.addEventListener('blur', () => {
      armed = false;
      b.textContent = label;
      b.classList.remove('danger');
    });
    return b;
  }

  /** The path of a lock in the API. */
  const lockPath = (id) => '/api/v1/evidence-locks/' + encodeURIComponent(id);
  /** The `If-Match` header of the revision a change was made against (409 when stale). */
  const ifMatch = (lock) => ({ 'If-Match': '"' + lock.revision + '"' });

  /**
   * `GET path` that also learns the recorder's clock from the answer's `Date` header (whole
   * seconds, so offsets under 2 s are left as noise). An answer that is not a success is asked
   * again through `UI.api`, which signs in on 401 and words the error as everywhere else.
   */
  async function getWithClock(path, signal) {
    const sentMs = Date.now();
    const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { 'X-Requested-With': 'edgerec-ui' }, signal });
    if (!r.ok) return api(path, { signal });
    const serverMs = Date.parse(r.headers.get('Date') || '');
    if (!Number.isNaN(serverMs)) {
      const offset = serverMs - (sentMs + Date.now()) / 2;
      clockOffsetMs = Math.abs(offset) < 2000 ? 0 : Math.round(offset);
    }
    return r.json();
  }

  /** The caller's evidence lock profile (EL-6) from `/api/v1/me`, or null when it has none. */
  async function profile(signal) {
    const me = await getWithClock('/api/v1/me', signal);
    const p = me.evidence_lock_profile;
    return p && Array.isArray(p.durations) ? p : null;
  }

  /**
   * Deletes `lock` (needs `evidence_lock_delete` on each camera); a stale revision (409) reloads
   * the lock and says so through `onStale(newLock, message)`; other errors through `onError`.
   * `view` is the page's `{stopped, signal}`: the DELETE itself is never aborted, but once the
   * user has left the page its answer changes nothing there (review finding 1).
   */
  async function deleteLock(lock, view, done, onStale, onError) {
    try {
      await api(lockPath(lock.id), { method: 'DELETE', headers: ifMatch(lock) });
    } catch (e) {
      if (view.stopped) return;
      if (e.status === 409) {
        try {
          const now = await api(lockPath(lock.id), { signal: view.signal });
          if (!view.stopped) onStale(now, staleText(now));
        } catch (e2) {
          if (!view.stopped) onError(e2.message);
        }
      } else {
        onError(e.message);
      }
      return;
    }
    if (!view.stopped) done();
  }

  /** A view's life: `stopped` once the user left it, and the signal that aborts its reads. */
  function viewLife() {
    const aborter = new AbortController();
    const life = { stopped: false, signal: aborter.signal };
    life.stop = () => { life.stopped = true; aborter.abort(); };
    return life;
  }

  /** What a page says when a lock changed since it was shown. */
  function staleText(now) {
    return 'Someone changed this lock meanwhile (' + (now.changed_by || now.created_by) + ', revision ' + now.revision +
      '); it has been reloaded as it is now. Check it and try again.';
  }

  /** The actions on `lock` the user may take: links to its forms and Delete. */
  function actions(lock, view, onDeleted, onStale, onError) {
    const extend = mayAll('evidence_lock_extend', lock);
    const reduce = mayAll('evidence_lock_delete', lock);
    if (!extend && !reduce) return null;
    const base = '#/locks/' + encodeURIComponent(lock.id);
    return el('div', { class: 'lock-actions' },
      extend ? el('a', { class: 'button lock-extend', href: base + '/extend' }, 'Extend') : null,
      reduce ? el('a', { class: 'button lock-reduce', href: base + '/reduce' }, 'Reduce') : null,
      reduce ? confirmButton('Delete', 'Really delete this lock?', () => deleteLock(lock, view, onDeleted, onStale, onError), { class: 'lock-delete' }) : null);
  }

  /** One row of the list: a table row at 1280 px, a card on a phone (CSS, `data-label`). */
  function lockRow(lock, view, onDeleted, onStale, onError) {
    const cell = (col, label, ...content) => el('td', { 'data-col': col, 'data-label': label }, ...content);
    return el('tr', { 'data-id': lock.id, 'data-bytes': String(lock.bytes), 'data-revision': String(lock.revision) },
      cell('cameras', 'Cameras', el('a', { href: '#/locks/' + encodeURIComponent(lock.id) }, cameraNames(lock.cameras))),
      cell('range', 'Protected', el('div', {}, when(lock.start_wall_us)), el('div', {}, '– ' + when(lock.end_wall_us)),
        el('div', { class: 'muted' }, fmt.duration((lock.end_wall_us - lock.start_wall_us) / 1e6))),
      cell('expires', 'Expires', expiryText(lock.expires_wall_us)),
      cell('description', 'Description', lock.description || '–'),
      cell('created', 'Created by', lock.created_by, el('div', { class: 'muted' }, when(lock.created_wall_us))),
      cell('size', 'Held', el('strong', {}, fmt.bytes(lock.bytes)), heldLines(lock)),
      cell('tier', 'Tier', tiers(lock)),
      cell('actions', '', actions(lock, view, onDeleted, onStale, onError)));
  }

  /** The list of locks with its filters (`#/locks?camera=&from=&to=&sort=`). */
  function listPage(main, query) {
    const life = viewLife();
    const viewable = camerasWith('evidence_lock_view');
    const field = (label, input) => el('label', { class: 'field' }, label, input);
    const camera = el('select', { name: 'camera', id: 'locks-camera' },
      el('option', { value: '' }, 'any camera'),
      viewable.map((c) => el('option', { value: c.id, selected: c.id === query.get('camera') }, c.name || c.id)));
    const fromUs = usOfQuery(query.get('from'));
    const toUs = usOfQuery(query.get('to'));
    const from = el('input', { type: 'datetime-local', step: 1, name: 'from', id: 'locks-from', value: fromUs === null ? '' : inputOf(Math.floor(fromUs / 1000)) });
    const to = el('input', { type: 'datetime-local', step: 1, name: 'to', id: 'locks-to', value: toUs === null ? '' : inputOf(Math.ceil(toUs / 1000)) });
    const sortNow = SORTS.some(([v]) => v === query.get('sort')) ? query.get('sort') : SORTS[0][0];
    const sort = el('select', { name: 'sort', id: 'locks-sort' }, SORTS.map(([v, label]) => el('option', { value: v, selected: v === sortNow }, label)));
    const error = el('div', { class: 'error form-error', role: 'alert', id: 'locks-error' });
    const linkProblem = badQuery(query, 'from', 'to');
    const form = el('form', { class: 'filters', id: 'locks-filters' },
      field('Camera', camera), field('Protecting from', from), field('Protecting to', to), field('Sort by', sort),
      el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Show')),
      error, linkProblem ? el('p', { class: 'problem', id: 'locks-link-problem' }, linkProblem) : null);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      if (camera.value) p.set('camera', camera.value);
      if (msOfInput(from.value) !== null) p.set('from', new Date(msOfInput(from.value)).toISOString());
      if (msOfInput(to.value) !== null) p.set('to', new Date(msOfInput(to.value)).toISOString());
      p.set('sort', sort.value);
      const target = '#/locks?' + p.toString();
      // The same query again: the hash does not change, so load it here.
      if (location.hash === target) load();
      else location.hash = target;
    });
    const note = el('p', { class: 'saved', id: 'locks-note', role: 'status', hidden: !flash }, flash || '');
    flash = null;
    const count = el('p', { class: 'muted', id: 'locks-count' }, 'Loading…');
    const table = el('div', { class: 'table-wrap', id: 'locks-list' });
    main.replaceChildren(
      el('div', { class: 'cam-head' }, el('h1', {}, 'Evidence locks'),
        lockableCameras().length ? el('a', { class: 'button primary', id: 'locks-new', href: '#/locks/new' }, 'New lock') : null),
      form, note, count, table);

    const say = (text) => { note.textContent = text; note.hidden = !text; };
    /** Which load's answer the list may show: an older one arriving late is dropped (finding 9). */
    let generation = 0;
    /** Aborts the load still running when a newer one starts. */
    let loading = null;
    life.signal.addEventListener('abort', () => { if (loading) loading.abort(); });
    async function load() {
      if (life.stopped) return;
      const mine = ++generation;
      if (loading) loading.abort();
      loading = new AbortController();
      const signal = loading.signal;
      error.textContent = '';
      const p = new URLSearchParams();
      if (camera.value) p.set('camera', camera.value);
      // The API's times are µs UTC.
      if (msOfInput(from.value) !== null) p.set('from', String(msOfInput(from.value) * 1000));
      if (msOfInput(to.value) !== null) p.set('to', String(msOfInput(to.value) * 1000));
      p.set('sort', sort.value);
      p.set('limit', String(LIST_LIMIT));
      let locks;
      try {
        locks = (await getWithClock('/api/v1/evidence-locks?' + p.toString(), signal)).locks;
      } catch (e) {
        if (life.stopped || mine !== generation) return;
        count.textContent = '';
        table.replaceChildren();
        error.textContent = e.message;
        return;
      }
      if (life.stopped || mine !== generation) return;
      const total = locks.reduce((n, l) => n + l.bytes, 0);
      count.textContent = locks.length === 0 ? 'No locks.' :
        locks.length + (locks.length === 1 ? ' lock' : ' locks') + ' holding ' + fmt.bytes(total) +
        (locks.length >= LIST_LIMIT ? ' (the first ' + LIST_LIMIT + '; narrow the filters to see others)' : '') + '.';
      const deleted = () => { say('Lock deleted.'); load(); };
      const stale = (_now, text) => { say(text); load(); };
      const failed = (text) => { error.textContent = text; };
      table.replaceChildren(...(locks.length ? [el('table', { class: 'rows', id: 'locks-table' },
        el('thead', {}, el('tr', {}, ['Cameras', 'Protected', 'Expires', 'Description', 'Created by', 'Held', 'Tier', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, locks.map((l) => lockRow(l, life, deleted, stale, failed))))] : []));
    }
    load();
    return { stop: life.stop };
  }

  /** A lock's facts, as its page shows them above the forms. */
  function facts(lock) {
    return el('dl', { class: 'facts', id: 'lock-facts', 'data-revision': String(lock.revision) },
      el('dt', {}, 'Cameras'), el('dd', { 'data-fact': 'cameras' }, cameraNames(lock.cameras)),
      el('dt', {}, 'Protected'), el('dd', { 'data-fact': 'range' }, when(lock.start_wall_us) + ' – ' + when(lock.end_wall_us)),
      el('dt', {}, 'Expires'), el('dd', { 'data-fact': 'expires' }, expiryText(lock.expires_wall_us)),
      el('dt', {}, 'Description'), el('dd', {}, lock.description || '–'),
      el('dt', {}, 'Created'), el('dd', {}, lock.created_by + ', ' + when(lock.created_wall_us)),
      el('dt', {}, 'Changed'), el('dd', {}, (lock.changed_by || lock.created_by) + ', ' + when(lock.changed_wall_us || lock.created_wall_us) + ' (revision ' + lock.revision + ')'),
      el('dt', {}, 'Held'), el('dd', { 'data-fact': 'bytes', 'data-bytes': String(lock.bytes) }, fmt.bytes(lock.bytes), heldLines(lock)));
  }

  /**
   * The expiry choices of a profile (EL-6) as select options, `keep` first when editing. `allow`
   * says which expiry (ms, or null for indefinite) the form's direction accepts: extending only
   * later ones, reducing only earlier ones. Durations count from the moment of saving.
   */
  function expiryOptions(prof, keepUs, allow) {
    const opts = [];
    if (keepUs !== undefined) opts.push(el('option', { value: 'keep' }, 'Keep: ' + expiryText(keepUs)));
    if (!prof) return opts;
    for (const d of prof.durations) {
      if (allow(serverNow() + d.seconds * 1000)) opts.push(el('option', { value: 'd:' + d.seconds }, d.label));
    }
    if (prof.indefinite && allow(null)) opts.push(el('option', { value: 'indefinite' }, 'Indefinite'));
    if (prof.custom) opts.push(el('option', { value: 'custom' }, 'Until a date…'));
    return opts;
  }

  /** The expiry (µs, or null for indefinite) a choice means now; undefined when unusable. */
  function expiryOf(choice, customInput, keepUs) {
    if (choice === 'keep') return keepUs;
    if (choice === 'indefinite') return null;
    // The recorder checks "now + duration" by its own clock (finding 5).
    if (choice && choice.startsWith('d:')) return (serverNow() + Number(choice.slice(2)) * 1000) * 1000;
    if (choice === 'custom') {
      const ms = msOfInput(customInput.value);
      return ms === null ? undefined : ms * 1000;
    }
    return undefined;
  }

  /**
   * A `datetime-local` input for wall time `us` (µs) that keeps the exact µs until the user edits
   * it (review findings 6 and 7). The field shows whole local seconds, and reading it back through
   * local time would cut the sub-second part and, in the repeated hour when DST ends, move the
   * time by an hour. `up` rounds what it shows up to the second (a range's end when it may only
   * grow), else down. `wallUs()` is the exact value while untouched, else what the field shows
   * (µs), null when empty. A user's edit is known from the `input` and `change` events, not by
   * comparing strings (a browser writes "10:05:00" back as "10:05").
   */
  function timeInput(id, us, up) {
    const shownMs = us === null ? null : (up ? Math.ceil(us / 1e6) : Math.floor(us / 1e6)) * 1000;
    const input = el('input', { type: 'datetime-local', step: 1, id, required: true, value: shownMs === null ? '' : inputOf(shownMs) });
    let edited = false;
    const mark = () => { edited = true; };
    input.addEventListener('input', mark);
    input.addEventListener('change', mark);
    input.wallUs = () => {
      if (!edited && us !== null) return us;
      const ms = msOfInput(input.value);
      return ms === null ? null : ms * 1000;
    };
    return input;
  }

  /** The browser's zone at `ms`, as a note beside time fields: "Local time (UTC+01:00)". */
  function zoneNote(ms) {
    const off = -new Date(ms).getTimezoneOffset();
    const text = 'UTC' + (off < 0 ? '-' : '+') + pad(Math.floor(Math.abs(off) / 60)) + ':' + pad(Math.abs(off) % 60);
    return el('p', { class: 'muted lock-zone', id: 'lock-zone' }, 'Times are local (' + text + ').');
  }

  /**
   * A custom expiry date's field: only enabled while "Until a date…" is chosen, since a hidden
   * field with a value out of its min/max would block the form's submit without a word (review
   * finding 8; disabled fields are not validated).
   */
  function customExpiry(expiry, custom, customField) {
    const sync = () => {
      customField.hidden = expiry.value !== 'custom';
      custom.disabled = expiry.value !== 'custom';
    };
    expiry.addEventListener('change', sync);
    sync();
    return sync;
  }

  /**
   * The create form (needs `evidence_lock_create` on each camera): cameras, range (the last 10
   * minutes by the recorder's clock unless the link names one, kept exact to the µs), expiry
   * from the caller's profile, description. It is built once `/api/v1/me` answered, as the
   * profile and the recorder's clock both come from there.
   */
  function createPage(main, query) {
    const life = viewLife();
    const lockable = lockableCameras();
    const head = el('h1', {}, 'New evidence lock');
    if (!lockable.length) {
      main.replaceChildren(head, el('p', { class: 'muted', id: 'lock-none' },
        'There is no camera you may lock. An administrator can grant evidence_lock_create and evidence_lock_view.'));
      return null;
    }
    main.replaceChildren(head, el('p', { class: 'muted' }, 'Loading…'));
    profile(life.signal).then((prof) => { if (!life.stopped) build(prof, null); },
      (e) => { if (!life.stopped) build(null, e.message); });

    function build(prof, loadError) {
      const wanted = query.getAll('camera').flatMap((c) => c.split(','));
      const nowUs = Math.floor(serverNow() / 1000) * 1e6;
      const fromUs = usOfQuery(query.get('from'));
      const toUs = usOfQuery(query.get('to'));
      const range = fromUs !== null && toUs !== null && fromUs < toUs ? [fromUs, toUs] : [nowUs - DEFAULT_RANGE_MS * 1000, nowUs];
      const linkProblem = badQuery(query, 'from', 'to');
      const boxes = el('div', { class: 'checks', id: 'lock-cameras' }, lockable.map((c) => el('label', { class: 'check' },
        el('input', { type: 'checkbox', name: 'camera', value: c.id, 'data-camera': c.id, checked: wanted.includes(c.id) || lockable.length === 1 }), ' ', c.name || c.id)));
      const start = timeInput('lock-start', range[0], false);
      const end = timeInput('lock-end', range[1], true);
      const expiry = el('select', { id: 'lock-expiry', disabled: true }, el('option', { value: '' }, 'none'));
      const custom = el('input', { type: 'datetime-local', step: 1, id: 'lock-expiry-date', min: inputOf(serverNow()) });
      const customField = el('label', { class: 'field', hidden: true }, 'Expires at', custom);
      const description = el('textarea', { id: 'lock-description', maxlength: 1000, rows: 3 });
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'lock-error' });
      const submit = el('button', { class: 'primary', type: 'submit', id: 'lock-create', disabled: true }, 'Lock');
      const form = el('form', { class: 'panel lock-form', id: 'lock-form' },
        linkProblem ? el('p', { class: 'problem', id: 'lock-link-problem' }, linkProblem) : null,
        el('h3', {}, 'Cameras'), boxes,
        el('div', { class: 'grid-form lock-fields' },
          el('label', { class: 'field' }, 'Protect from', start),
          el('label', { class: 'field' }, 'Protect to', end),
          el('label', { class: 'field' }, 'Expires', expiry),
          customField),
        zoneNote(range[0] / 1000),
        el('label', { class: 'field' }, 'Description', description),
        el('div', { class: 'actions' }, submit, ' ', el('a', { class: 'button', href: '#/locks' }, 'Cancel')),
        error);
      const syncCustom = customExpiry(expiry, custom, customField);
      main.replaceChildren(head, form);

      const opts = expiryOptions(prof, undefined, () => true);
      if (loadError) {
        error.textContent = loadError;
      } else if (!opts.length) {
        error.textContent = prof ? 'Your evidence lock profile offers no expiry; an administrator can change it.' :
          'The recorder did not say which expiry times your profile allows, so no lock can be made here.';
      } else {
        expiry.replaceChildren(...opts);
        expiry.disabled = false;
        submit.disabled = false;
        syncCustom();
      }

      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        const cameras = [...boxes.querySelectorAll('input:checked')].map((i) => i.value);
        const a = start.wallUs(), b = end.wallUs();
        const expires = expiryOf(expiry.value, custom, undefined);
        if (!cameras.length) { error.textContent = 'Choose at least one camera.'; return; }
        if (a === null || b === null || a >= b) { error.textContent = 'The range must start before it ends.'; return; }
        if (expires === undefined) { error.textContent = 'Choose when the lock expires.'; return; }
        submit.disabled = true;
        try {
          const lock = await api('/api/v1/evidence-locks', {
            method: 'POST',
            json: { cameras, start_wall_us: a, end_wall_us: b, expires_wall_us: expires, description: description.value },
          });
          // The answer can take seconds (every storage honours the lock first): a user who has
          // gone to another page meanwhile stays there (review finding 1).
          if (life.stopped) return;
          flash = 'Lock created: ' + cameraNames(lock.cameras) + ', ' + fmt.bytes(lock.bytes) + ' protected.';
          location.hash = '#/locks';
        } catch (e) {
          if (!life.stopped) error.textContent = e.message;
        } finally {
          submit.disabled = false;
        }
      });
    }
    return { stop: life.stop };
  }

  /**
   * A lock's page: its facts, and with `mode` "extend" or "reduce" the form that widens or
   * narrows it (EL-7: widening needs `evidence_lock_extend` on every camera of the new lock,
   * narrowing `evidence_lock_delete` on every camera of the old one). Fields the user leaves as
   * they were are sent with the lock's own values, so a range shown to the second is not cut.
   */
  function lockPage(main, id, mode) {
    const life = viewLife();
    const head = el('h1', {}, 'Evidence lock');
    const note = el('p', { class: 'saved', id: 'lock-note', role: 'status', hidden: !flash }, flash || '');
    flash = null;
    const body = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(head, note, body);
    const say = (text, level) => { note.textContent = text; note.className = level === 'warn' ? 'problem' : 'saved'; note.hidden = !text; };
    let prof = null;

    function render(lock) {
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'lock-error' });
      const onDeleted = () => { flash = 'Lock deleted.'; location.hash = '#/locks'; };
      const onStale = (now, text) => { say(text, 'warn'); render(now); };
      const buttons = actions(lock, life, onDeleted, onStale, (t) => { error.textContent = t; });
      const formMode = mode === 'extend' && mayAll('evidence_lock_extend', lock) ? 'extend' :
        mode === 'reduce' && mayAll('evidence_lock_delete', lock) ? 'reduce' : null;
      // `replaceChildren` would write a null as the text "null": the parts left out are dropped.
      body.replaceChildren(...[facts(lock), buttons, formMode ? changeForm(lock, formMode, error) : null,
        mode && !formMode ? el('p', { class: 'error' }, 'You may not ' + mode + ' this lock.') : null,
        formMode ? null : error].filter(Boolean));
    }

    /** The Extend or Reduce form of `lock`. */
    function changeForm(lock, formMode, error) {
      const extend = formMode === 'extend';
      const keepExp = lock.expires_wall_us;
      // Extending offers the cameras the user may extend on and see that the lock lacks (a
      // camera they may not see would hide the lock from them, finding 2); reducing, the lock's
      // own cameras to remove.
      const offered = extend ? camerasWith('evidence_lock_extend').filter((c) => mayOn('evidence_lock_view', c.id))
        .map((c) => c.id).filter((c) => !lock.cameras.includes(c)) : [];
      const camBoxes = el('div', { class: 'checks', id: 'lock-cameras' },
        lock.cameras.concat(offered).map((c) => el('label', { class: 'check' },
          el('input', { type: 'checkbox', name: 'camera', value: c, 'data-camera': c, checked: lock.cameras.includes(c), disabled: extend && lock.cameras.includes(c) }),
          ' ', cameraNames([c]))));
      // The fields show the lock's range rounded outwards when extending and inwards when
      // reducing, so their min and max stay on the side the form may move to.
      const start = timeInput('lock-start', lock.start_wall_us, !extend);
      const end = timeInput('lock-end', lock.end_wall_us, extend);
      if (extend) { start.max = start.value; end.min = end.value; } else { start.min = start.value; end.max = end.value; }
      // Extending accepts a later expiry (or indefinite), reducing an earlier one.
      const later = (ms) => keepExp !== null && (ms === null || ms * 1000 > keepExp);
      const earlier = (ms) => ms !== null && (keepExp === null || ms * 1000 < keepExp);
      const expiry = el('select', { id: 'lock-expiry' }, expiryOptions(prof, keepExp, extend ? later : earlier));
      const custom = el('input', { type: 'datetime-local', step: 1, id: 'lock-expiry-date', min: inputOf(serverNow()) });
      if (keepExp !== null && extend) custom.min = inputOf(Math.max(serverNow(), keepExp / 1000));
      if (keepExp !== null && !extend) custom.max = inputOf(keepExp / 1000);
      const customField = el('label', { class: 'field', hidden: true }, extend ? 'Expires at (later)' : 'Expires at (earlier)', custom);
      customExpiry(expiry, custom, customField);
      const description = el('textarea', { id: 'lock-description', maxlength: 1000, rows: 3 });
      description.value = lock.description || '';
      const submit = el('button', { class: 'primary', type: 'submit', id: 'lock-save' }, extend ? 'Extend' : 'Reduce');
      const form = el('form', { class: 'panel lock-form', id: 'lock-form', 'data-mode': formMode },
        el('h3', {}, extend ? 'Extend: more cameras, a wider range, a later expiry' : 'Reduce: fewer cameras, a narrower range, an earlier expiry'),
        camBoxes,
        el('div', { class: 'grid-form lock-fields' },
          el('label', { class: 'field' }, 'Protect from', start),
          el('label', { class: 'field' }, 'Protect to', end),
          el('label', { class: 'field' }, 'Expires', expiry),
          customField),
        zoneNote(lock.start_wall_us / 1000),
        el('label', { class: 'field' }, 'Description', description),
        el('div', { class: 'actions' }, submit, ' ', el('a', { class: 'button', href: '#/locks/' + encodeURIComponent(lock.id) }, 'Cancel')),
        error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        const cameras = [...camBoxes.querySelectorAll('input:checked')].map((i) => i.value);
        // A field left as shown keeps the lock's exact value (the input holds whole seconds).
        const a = start.wallUs(), b = end.wallUs();
        const expires = expiryOf(expiry.value, custom, keepExp);
        if (!cameras.length) { error.textContent = 'A lock keeps at least one camera; delete it instead.'; return; }
        if (a === null || b === null || a >= b) { error.textContent = 'The range must start before it ends.'; return; }
        if (expires === undefined) { error.textContent = 'Choose when the lock expires.'; return; }
        // The page keeps each form to its direction, so the permission it was offered under is
        // the one the change needs (the server decides anyway).
        if (extend && (a > lock.start_wall_us || b < lock.end_wall_us)) { error.textContent = 'Extending cannot narrow the range; use Reduce.'; return; }
        if (!extend && (a < lock.start_wall_us || b > lock.end_wall_us)) { error.textContent = 'Reducing cannot widen the range; use Extend.'; return; }
        const sooner = keepExp === null ? expires !== null : expires !== null && expires < keepExp;
        if (extend && sooner) { error.textContent = 'Extending cannot bring the expiry forward; use Reduce.'; return; }
        if (!extend && expires !== keepExp && !sooner) { error.textContent = 'Reducing cannot put the expiry off; use Extend.'; return; }
        submit.disabled = true;
        try {
          await api(lockPath(lock.id), {
            method: 'PUT',
            headers: ifMatch(lock),
            json: { cameras, start_wall_us: a, end_wall_us: b, expires_wall_us: expires, description: description.value },
          });
          // A user who went to another page meanwhile stays there (review finding 1).
          if (life.stopped) return;
          flash = extend ? 'Lock extended.' : 'Lock reduced.';
          location.hash = '#/locks/' + encodeURIComponent(lock.id);
        } catch (e) {
          if (life.stopped) return;
          if (e.status === 409) {
            // A stale revision: show the lock as it is now, and say so.
            try {
              const now = await api(lockPath(lock.id), { signal: life.signal });
              if (life.stopped) return;
              say(staleText(now), 'warn');
              render(now);
            } catch (e2) {
              if (!life.stopped) error.textContent = e2.message;
            }
            return;
          }
          error.textContent = e.message;
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    }

    (async () => {
      let lock;
      try {
        // The expiry choices come from the profile; without one, only "keep" is offered.
        [lock, prof] = await Promise.all([getWithClock(lockPath(id), life.signal), mode ? profile(life.signal).catch(() => null) : null]);
      } catch (e) {
        if (!life.stopped) body.replaceChildren(el('p', { class: 'error', id: 'lock-error' }, e.message));
        return;
      }
      if (!life.stopped) render(lock);
    })();
    return { stop: life.stop };
  }

  UI.views.locks = {
    nav: 'Evidence locks',
    title: 'evidence locks',
    /** EL-7: the page is for a user who may see the locks of at least one camera. */
    allowed: () => camerasWith('evidence_lock_view').length > 0,
    start(main, args, query) {
      if (args[0] === 'new') return createPage(main, query);
      if (args[0]) return lockPage(main, args[0], args[1] === 'extend' || args[1] === 'reduce' ? args[1] : null);
      return listPage(main, query);
    },
  };
})();
