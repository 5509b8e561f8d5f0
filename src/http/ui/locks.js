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
  /** A moment of a link's query: RFC 3339, or ms since the epoch; null when neither. */
  function msOfQuery(text) {
    if (!text) return null;
    if (/^\d+$/.test(text)) return Number(text);
    // Date.parse is only sure of milliseconds: finer digits (µs of the API's clock) are cut.
    const t = Date.parse(text.replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(t) ? null : t;
  }
  /** A wall time of the API (µs UTC) as the user's local date and time. */
  const when = (us) => new Date(us / 1000).toLocaleString();
  /** A lock's expiry as a person reads it: "indefinite", or the date and how far off it is. */
  function expiryText(us) {
    if (us === null || us === undefined) return 'indefinite';
    const left = us / 1000 - Date.now();
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

  /** A button that asks once more before `action` runs, as "Delete" becomes "Really delete?". */
  function confirmButton(label, question, action, attrs) {
    const b = el('button', { type: 'button', ...attrs }, label);
    let armed = false;
    b.addEventListener('click', () => {
      if (!armed) {
        armed = true;
        b.textContent = question;
        b.classList.add('danger');
        return;
      }
      action();
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

  /** The caller's evidence lock profile (EL-6) from `/api/v1/me`, or null when it has none. */
  async function profile() {
    const me = await api('/api/v1/me');
    const p = me.evidence_lock_profile;
    return p && Array.isArray(p.durations) ? p : null;
  }

  /**
   * Deletes `lock` (needs `evidence_lock_delete` on each camera); a stale revision (409) reloads
   * the lock and says so through `onStale(newLock, message)`; other errors through `onError`.
   */
  async function deleteLock(lock, done, onStale, onError) {
    try {
      await api(lockPath(lock.id), { method: 'DELETE', headers: ifMatch(lock) });
    } catch (e) {
      if (e.status === 409) {
        try {
          const now = await api(lockPath(lock.id));
          onStale(now, staleText(now));
        } catch (e2) {
          onError(e2.message);
        }
      } else {
        onError(e.message);
      }
      return;
    }
    done();
  }

  /** What a page says when a lock changed since it was shown. */
  function staleText(now) {
    return 'Someone changed this lock meanwhile (' + (now.changed_by || now.created_by) + ', revision ' + now.revision +
      '); it has been reloaded as it is now. Check it and try again.';
  }

  /** The actions on `lock` the user may take: links to its forms and Delete. */
  function actions(lock, onDeleted, onStale, onError) {
    const extend = mayAll('evidence_lock_extend', lock);
    const reduce = mayAll('evidence_lock_delete', lock);
    if (!extend && !reduce) return null;
    const base = '#/locks/' + encodeURIComponent(lock.id);
    return el('div', { class: 'lock-actions' },
      extend ? el('a', { class: 'button lock-extend', href: base + '/extend' }, 'Extend') : null,
      reduce ? el('a', { class: 'button lock-reduce', href: base + '/reduce' }, 'Reduce') : null,
      reduce ? confirmButton('Delete', 'Really delete this lock?', () => deleteLock(lock, onDeleted, onStale, onError), { class: 'lock-delete' }) : null);
  }

  /** One row of the list: a table row at 1280 px, a card on a phone (CSS, `data-label`). */
  function lockRow(lock, onDeleted, onStale, onError) {
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
      cell('actions', '', actions(lock, onDeleted, onStale, onError)));
  }

  /** The list of locks with its filters (`#/locks?camera=&from=&to=&sort=`). */
  function listPage(main, query) {
    let stopped = false;
    const viewable = camerasWith('evidence_lock_view');
    const field = (label, input) => el('label', { class: 'field' }, label, input);
    const camera = el('select', { name: 'camera', id: 'locks-camera' },
      el('option', { value: '' }, 'any camera'),
      viewable.map((c) => el('option', { value: c.id, selected: c.id === query.get('camera') }, c.name || c.id)));
    const fromMs = msOfQuery(query.get('from'));
    const toMs = msOfQuery(query.get('to'));
    const from = el('input', { type: 'datetime-local', step: 1, name: 'from', id: 'locks-from', value: fromMs === null ? '' : inputOf(fromMs) });
    const to = el('input', { type: 'datetime-local', step: 1, name: 'to', id: 'locks-to', value: toMs === null ? '' : inputOf(toMs) });
    const sortNow = SORTS.some(([v]) => v === query.get('sort')) ? query.get('sort') : SORTS[0][0];
    const sort = el('select', { name: 'sort', id: 'locks-sort' }, SORTS.map(([v, label]) => el('option', { value: v, selected: v === sortNow }, label)));
    const error = el('div', { class: 'error form-error', role: 'alert', id: 'locks-error' });
    const form = el('form', { class: 'filters', id: 'locks-filters' },
      field('Camera', camera), field('Protecting from', from), field('Protecting to', to), field('Sort by', sort),
      el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Show')),
      error);
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
        camerasWith('evidence_lock_create').length ? el('a', { class: 'button primary', id: 'locks-new', href: '#/locks/new' }, 'New lock') : null),
      form, note, count, table);

    const say = (text) => { note.textContent = text; note.hidden = !text; };
    async function load() {
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
        locks = (await api('/api/v1/evidence-locks?' + p.toString())).locks;
      } catch (e) {
        if (stopped) return;
        count.textContent = '';
        table.replaceChildren();
        error.textContent = e.message;
        return;
      }
      if (stopped) return;
      const total = locks.reduce((n, l) => n + l.bytes, 0);
      count.textContent = locks.length === 0 ? 'No locks.' :
        locks.length + (locks.length === 1 ? ' lock' : ' locks') + ' holding ' + fmt.bytes(total) +
        (locks.length >= LIST_LIMIT ? ' (the first ' + LIST_LIMIT + '; narrow the filters to see others)' : '') + '.';
      const deleted = () => { say('Lock deleted.'); load(); };
      const stale = (_now, text) => { say(text); load(); };
      const failed = (text) => { error.textContent = text; };
      table.replaceChildren(...(locks.length ? [el('table', { class: 'rows', id: 'locks-table' },
        el('thead', {}, el('tr', {}, ['Cameras', 'Protected', 'Expires', 'Description', 'Created by', 'Held', 'Tier', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, locks.map((l) => lockRow(l, deleted, stale, failed))))] : []));
    }
    load();
    return { stop() { stopped = true; } };
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
      if (allow(Date.now() + d.seconds * 1000)) opts.push(el('option', { value: 'd:' + d.seconds }, d.label));
    }
    if (prof.indefinite && allow(null)) opts.push(el('option', { value: 'indefinite' }, 'Indefinite'));
    if (prof.custom) opts.push(el('option', { value: 'custom' }, 'Until a date…'));
    return opts;
  }

  /** The expiry (µs, or null for indefinite) a choice means now; undefined when unusable. */
  function expiryOf(choice, customInput, keepUs) {
    if (choice === 'keep') return keepUs;
    if (choice === 'indefinite') return null;
    if (choice && choice.startsWith('d:')) return (Date.now() + Number(choice.slice(2)) * 1000) * 1000;
    if (choice === 'custom') {
      const ms = msOfInput(customInput.value);
      return ms === null ? undefined : ms * 1000;
    }
    return undefined;
  }

  /**
   * The create form (needs `evidence_lock_create` on each camera): cameras, range (the last 10
   * minutes unless the link names one), expiry from the caller's profile, description.
   */
  function createPage(main, query) {
    let stopped = false;
    const lockable = camerasWith('evidence_lock_create');
    const head = el('h1', {}, 'New evidence lock');
    if (!lockable.length) {
      main.replaceChildren(head, el('p', { class: 'muted', id: 'lock-none' }, 'There is no camera you may lock. An administrator can grant evidence_lock_create.'));
      return null;
    }
    const wanted = query.getAll('camera').flatMap((c) => c.split(','));
    const now = Math.floor(Date.now() / 1000) * 1000;
    const fromMs = msOfQuery(query.get('from'));
    const toMs = msOfQuery(query.get('to'));
    const range = fromMs !== null && toMs !== null && fromMs < toMs ? [fromMs, toMs] : [now - DEFAULT_RANGE_MS, now];
    const boxes = el('div', { class: 'checks', id: 'lock-cameras' }, lockable.map((c) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'camera', value: c.id, 'data-camera': c.id, checked: wanted.includes(c.id) || lockable.length === 1 }), ' ', c.name || c.id)));
    const start = el('input', { type: 'datetime-local', step: 1, id: 'lock-start', required: true, value: inputOf(range[0]) });
    const end = el('input', { type: 'datetime-local', step: 1, id: 'lock-end', required: true, value: inputOf(range[1]) });
    const expiry = el('select', { id: 'lock-expiry', disabled: true }, el('option', { value: '' }, 'Loading your choices…'));
    const custom = el('input', { type: 'datetime-local', step: 1, id: 'lock-expiry-date', min: inputOf(now) });
    const customField = el('label', { class: 'field', hidden: true }, 'Expires at', custom);
    const description = el('textarea', { id: 'lock-description', maxlength: 1000, rows: 3 });
    const error = el('div', { class: 'error form-error', role: 'alert', id: 'lock-error' });
    const submit = el('button', { class: 'primary', type: 'submit', id: 'lock-create', disabled: true }, 'Lock');
    const form = el('form', { class: 'panel lock-form', id: 'lock-form' },
      el('h3', {}, 'Cameras'), boxes,
      el('div', { class: 'grid-form lock-fields' },
        el('label', { class: 'field' }, 'Protect from', start),
        el('label', { class: 'field' }, 'Protect to', end),
        el('label', { class: 'field' }, 'Expires', expiry),
        customField),
      el('label', { class: 'field' }, 'Description', description),
      el('div', { class: 'actions' }, submit, ' ', el('a', { class: 'button', href: '#/locks' }, 'Cancel')),
      error);
    expiry.addEventListener('change', () => { customField.hidden = expiry.value !== 'custom'; });
    main.replaceChildren(head, form);

    profile().then((prof) => {
      if (stopped) return;
      const opts = expiryOptions(prof, undefined, () => true);
      if (!opts.length) {
        expiry.replaceChildren(el('option', { value: '' }, 'none'));
        error.textContent = prof ? 'Your evidence lock profile offers no expiry; an administrator can change it.' :
          'The recorder did not say which expiry times your profile allows, so no lock can be made here.';
        return;
      }
      expiry.replaceChildren(...opts);
      expiry.disabled = false;
      submit.disabled = false;
      customField.hidden = expiry.value !== 'custom';
    }, (e) => { if (!stopped) error.textContent = e.message; });

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const cameras = [...boxes.querySelectorAll('input:checked')].map((i) => i.value);
      const a = msOfInput(start.value), b = msOfInput(end.value);
      const expires = expiryOf(expiry.value, custom, undefined);
      if (!cameras.length) { error.textContent = 'Choose at least one camera.'; return; }
      if (a === null || b === null || a >= b) { error.textContent = 'The range must start before it ends.'; return; }
      if (expires === undefined) { error.textContent = 'Choose when the lock expires.'; return; }
      submit.disabled = true;
      try {
        const lock = await api('/api/v1/evidence-locks', {
          method: 'POST',
          json: { cameras, start_wall_us: a * 1000, end_wall_us: b * 1000, expires_wall_us: expires, description: description.value },
        });
        flash = 'Lock created: ' + cameraNames(lock.cameras) + ', ' + fmt.bytes(lock.bytes) + ' protected.';
        location.hash = '#/locks';
      } catch (e) {
        if (!stopped) error.textContent = e.message;
      } finally {
        submit.disabled = false;
      }
    });
    return { stop() { stopped = true; } };
  }

  /**
   * A lock's page: its facts, and with `mode` "extend" or "reduce" the form that widens or
   * narrows it (EL-7: widening needs `evidence_lock_extend` on every camera of the new lock,
   * narrowing `evidence_lock_delete` on every camera of the old one). Fields the user leaves as
   * they were are sent with the lock's own values, so a range shown to the second is not cut.
   */
  function lockPage(main, id, mode) {
    let stopped = false;
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
      const buttons = actions(lock, onDeleted, onStale, (t) => { error.textContent = t; });
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
      const startMs = lock.start_wall_us / 1000, endMs = lock.end_wall_us / 1000;
      const keepExp = lock.expires_wall_us;
      // Extending offers the cameras the user may extend on that the lock lacks; reducing, the
      // lock's own cameras to remove.
      const offered = extend ? camerasWith('evidence_lock_extend').map((c) => c.id).filter((c) => !lock.cameras.includes(c)) : [];
      const camBoxes = el('div', { class: 'checks', id: 'lock-cameras' },
        lock.cameras.concat(offered).map((c) => el('label', { class: 'check' },
          el('input', { type: 'checkbox', name: 'camera', value: c, 'data-camera': c, checked: lock.cameras.includes(c), disabled: extend && lock.cameras.includes(c) }),
          ' ', cameraNames([c]))));
      const start = el('input', { type: 'datetime-local', step: 1, id: 'lock-start', required: true, value: inputOf(startMs) });
      const end = el('input', { type: 'datetime-local', step: 1, id: 'lock-end', required: true, value: inputOf(endMs) });
      if (extend) { start.max = inputOf(startMs); end.min = inputOf(endMs); } else { start.min = inputOf(startMs); end.max = inputOf(endMs); }
      // Extending accepts a later expiry (or indefinite), reducing an earlier one.
      const later = (ms) => keepExp !== null && (ms === null || ms * 1000 > keepExp);
      const earlier = (ms) => ms !== null && (keepExp === null || ms * 1000 < keepExp);
      const expiry = el('select', { id: 'lock-expiry' }, expiryOptions(prof, keepExp, extend ? later : earlier));
      const custom = el('input', { type: 'datetime-local', step: 1, id: 'lock-expiry-date', min: inputOf(Date.now()) });
      if (keepExp !== null && extend) custom.min = inputOf(Math.max(Date.now(), keepExp / 1000));
      if (keepExp !== null && !extend) custom.max = inputOf(keepExp / 1000);
      const customField = el('label', { class: 'field', hidden: true }, extend ? 'Expires at (later)' : 'Expires at (earlier)', custom);
      expiry.addEventListener('change', () => { customField.hidden = expiry.value !== 'custom'; });
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
        el('label', { class: 'field' }, 'Description', description),
        el('div', { class: 'actions' }, submit, ' ', el('a', { class: 'button', href: '#/locks/' + encodeURIComponent(lock.id) }, 'Cancel')),
        error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        const cameras = [...camBoxes.querySelectorAll('input:checked')].map((i) => i.value);
        // A field left as shown keeps the lock's exact value (the input holds whole seconds).
        const a = start.value === inputOf(startMs) ? lock.start_wall_us : (msOfInput(start.value) ?? NaN) * 1000;
        const b = end.value === inputOf(endMs) ? lock.end_wall_us : (msOfInput(end.value) ?? NaN) * 1000;
        const expires = expiryOf(expiry.value, custom, keepExp);
        if (!cameras.length) { error.textContent = 'A lock keeps at least one camera; delete it instead.'; return; }
        if (Number.isNaN(a) || Number.isNaN(b) || a >= b) { error.textContent = 'The range must start before it ends.'; return; }
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
          flash = extend ? 'Lock extended.' : 'Lock reduced.';
          location.hash = '#/locks/' + encodeURIComponent(lock.id);
        } catch (e) {
          if (stopped) return;
          if (e.status === 409) {
            // A stale revision: show the lock as it is now, and say so.
            try {
              const now = await api(lockPath(lock.id));
              if (stopped) return;
              say(staleText(now), 'warn');
              render(now);
            } catch (e2) {
              if (!stopped) error.textContent = e2.message;
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
        [lock, prof] = await Promise.all([api(lockPath(id)), mode ? profile().catch(() => null) : null]);
      } catch (e) {
        if (!stopped) body.replaceChildren(el('p', { class: 'error', id: 'lock-error' }, e.message));
        return;
      }
      if (!stopped) render(lock);
    })();
    return { stop() { stopped = true; } };
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
