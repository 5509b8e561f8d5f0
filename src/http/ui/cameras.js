// Cameras (issue 12 point 6): the configured cameras with their state, and a form to add, edit
// and remove one through the config API (`/api/v1/config/cameras/{id}`, `If-Match` with the
// revision the form was filled from). A validation error is shown on the field its key names; a
// revision conflict is shown as such. "Test connection" describes the camera before it is saved,
// and the motion exclude grid is drawn over the camera's snapshot.
'use strict';

(() => {
  const { el, api, may } = UI;
  /** How often the list asks for the cameras' state. */
  const REFRESH_MS = 2000;
  /** Cells per side of the motion grid (`motion::GRID_SIDE`: the grid is fixed, MD-4). */
  const GRID_SIDE = 16;
  /** The config API's stand-in for a stored secret (`config::REDACTED`). */
  const REDACTED = '********';
  /** The recording modes the config accepts (`camera.record`). */
  const RECORD_MODES = ['continuous', 'motion', 'event', 'schedule', 'never'];

  /** The form field a config error's key names; anything else is shown above the form. */
  function fieldOfKey(key) {
    const fields = {
      'camera.id': 'id', 'camera.name': 'name', 'camera.source': 'source',
      'camera.username': 'username', 'camera.password': 'password', 'camera.transport': 'transport',
      'camera.storage': 'storage', 'camera.record': 'record', 'camera.schedule': 'schedule',
      'camera.enabled': 'enabled', 'camera.prebuffer_seconds': 'prebuffer',
      'camera.motion.exclude': 'grid', 'camera.motion.enabled': 'motion',
    };
    if (fields[key]) return fields[key];
    return key.startsWith('camera.motion') ? 'motion' : null;
  }

  /**
   * Splits a config error (`file:line: key `k`: reason`) into the field it names and the reason;
   * an error without a key (TOML syntax, an unknown key) has no field.
   */
  function splitConfigError(message) {
    const m = /key `([^`]+)`[^:]*: ([\s\S]*)$/.exec(message);
    if (!m) return { field: null, text: message };
    return { field: fieldOfKey(m[1]), text: m[2] };
  }

  /** Parses `exclude` (16 rows of `.`/`x`, or "COLS,ROWS" rectangles) into a cell set. */
  function parseExclude(entries) {
    const cells = new Set();
    if (!Array.isArray(entries)) return cells;
    const rows = entries.length === GRID_SIDE && entries.every((r) => typeof r === 'string' && /^[.x]{16}$/.test(r));
    if (rows) {
      entries.forEach((r, row) => [...r].forEach((c, col) => { if (c === 'x') cells.add(row * GRID_SIDE + col); }));
      return cells;
    }
    const range = (t) => {
      const [a, b] = t.trim().split('-').map((n) => parseInt(n, 10));
      return [a, Number.isNaN(b) || b === undefined ? a : b];
    };
    for (const rect of entries) {
      const [cols, rowsPart] = String(rect).split(',');
      if (rowsPart === undefined) continue;
      const [c0, c1] = range(cols);
      const [r0, r1] = range(rowsPart);
      for (let row = r0; row <= r1 && row < GRID_SIDE; row++) {
        for (let col = c0; col <= c1 && col < GRID_SIDE; col++) cells.add(row * GRID_SIDE + col);
      }
    }
    return cells;
  }

  /** A cell set as the 16 rows `motion::Grid16::from_rows` reads. */
  function excludeRows(cells) {
    const rows = [];
    for (let row = 0; row < GRID_SIDE; row++) {
      let r = '';
      for (let col = 0; col < GRID_SIDE; col++) r += cells.has(row * GRID_SIDE + col) ? 'x' : '.';
      rows.push(r);
    }
    return rows;
  }

  /** One line describing a test-connection answer. */
  function describeTest(a) {
    if (!a.ok) return a.message || a.problem;
    const v = a.video;
    const parts = [v.codec.toUpperCase() + ' ' + v.width + '×' + v.height];
    if (v.frame_rate_fps !== null) parts.push(v.frame_rate_fps.toFixed(v.frame_rate_fps % 1 ? 1 : 0) + ' fps');
    if (a.audio) {
      parts.push('audio ' + a.audio.codec.toUpperCase() + ' ' + (a.audio.sample_rate_hz / 1000) + ' kHz' +
        (a.audio.recorded ? '' : ' (not recorded: AAC only)'));
    } else {
      parts.push('no audio');
    }
    return parts.join(' · ');
  }

  /** The list: every configured camera the user may read, its state and what may be done. */
  function startList(main) {
    let timer = null;
    let stopped = false;
    const body = el('div', { id: 'cameras-list' }, el('p', { class: 'muted' }, 'Loading…'));
    const error = el('div', { class: 'error', role: 'alert', id: 'cameras-error' });
    main.replaceChildren(
      el('div', { class: 'cam-head' }, el('h1', {}, 'Cameras'),
        may('edit_config') ? el('a', { class: 'button primary', href: '#/cameras/new', id: 'cam-add' }, 'Add camera') : null),
      error, body);
    /** Revision and ids the rows were built for: rows stay while they hold (their links stay clickable). */
    let built = null;
    const level = (s) => s.recording || s.state === 'streaming' ? 'ok' : s.state === 'disabled' ? 'off' : s.state === 'connecting' || s.state === 'waiting' ? 'warn' : 'bad';
    /** The part of a row that changes with the camera's state. */
    const stateOf = (c, s) => el('div', { class: 'cam-status' },
      el('dl', { class: 'facts' },
        el('dt', {}, 'Source'), el('dd', { class: 'source' }, c.source),
        el('dt', {}, 'Recording'), el('dd', {}, s.recording ? '● yes' : 'no', ' (', c.record || 'continuous', ')'),
        el('dt', {}, 'Video'), el('dd', {}, s.codec ? s.codec + ' ' + (s.width || '?') + '×' + (s.height || '?') + ' · ' + (s.fps || 0).toFixed(1) + ' fps' : '–'),
        UI.extraStreamFacts(s)),
      s.last_error ? el('div', { class: 'last-error' }, s.last_error) : null);
    const render = (config, states) => {
      const cams = (config.config.camera || []);
      const key = config.revision + ' ' + cams.map((c) => c.id).join(' ');
      if (!cams.length) {
        body.replaceChildren(el('p', { class: 'muted' }, 'No cameras are configured.'));
        built = key;
        return;
      }
      if (built !== key) {
        body.replaceChildren(el('div', { class: 'cards' }, cams.map((c) =>
          el('article', { class: 'card cam-row', 'data-camera': c.id },
            el('h3', {}, el('span', {}, c.name || c.id, ' ', el('span', { class: 'id' }, c.id)), el('span', { class: 'badge' })),
            el('div', { class: 'cam-status' }),
            el('div', { class: 'controls' },
              el('a', { class: 'button', href: '#/cameras/' + encodeURIComponent(c.id), 'data-action': 'edit' }, may('edit_config') ? 'Edit' : 'View'))))));
        built = key;
      }
      for (const c of cams) {
        const row = [...body.querySelectorAll('.cam-row')].find((r) => r.dataset.camera === c.id);
        if (!row) continue;
        const s = states.find((x) => x.id === c.id) || {};
        row.className = 'card cam-row ' + level(s);
        row.dataset.state = s.state || 'unknown';
        row.dataset.recording = s.recording ? 'yes' : 'no';
        const badge = row.querySelector('h3 .badge');
        badge.className = 'badge ' + level(s);
        badge.textContent = (s.state || 'unknown').replace(/_/g, ' ');
        row.querySelector('.cam-status').replaceWith(stateOf(c, s));
      }
    };
    const tick = async () => {
      try {
        // Issue 14: with `status`, the cameras' status (second stream, motion's off reason) too.
        const [config, cams] = await Promise.all([api('/api/v1/config'), api(may('status') ? '/api/v1/status' : '/api/v1/cameras')]);
        if (!stopped) {
          error.textContent = '';
          render(config, cams.cameras || []);
        }
      } catch (e) {
        if (stopped || e.status === 401) return;
        error.textContent = e.message;
      }
      if (!stopped) timer = setTimeout(tick, REFRESH_MS);
    };
    tick();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  /**
   * The motion exclude grid over the camera's snapshot: click or drag toggles cells (the first
   * cell decides whether the drag sets or clears). Returns the element and the cell set it edits.
   */
  function excludeGrid(cameraId, cells, editable) {
    const grid = el('div', { class: 'motion-grid', id: 'motion-grid', 'data-excluded': String(cells.size) });
    const wrap = el('div', { class: 'motion-wrap' });
    const note = el('p', { class: 'muted', id: 'motion-snapshot-note' });
    if (cameraId) {
      const img = el('img', { alt: 'Snapshot of ' + cameraId, id: 'motion-snapshot' });
      img.addEventListener('load', () => { wrap.style.aspectRatio = img.naturalWidth + ' / ' + img.naturalHeight; });
      img.addEventListener('error', () => { note.textContent = 'No snapshot yet (the camera has no picture or you may not view it live); the grid still applies.'; });
      img.src = '/api/v1/cameras/' + encodeURIComponent(cameraId) + '/snapshot.jpg?t=' + Date.now();
      wrap.append(img);
    } else {
      note.textContent = 'Save the camera first to see its picture under the grid.';
    }
    let paint = null;
    const set = (cell, on) => {
      const d = grid.children[cell];
      if (on) cells.add(cell); else cells.delete(cell);
      d.classList.toggle('on', on);
      grid.dataset.excluded = String(cells.size);
    };
    for (let i = 0; i < GRID_SIDE * GRID_SIDE; i++) {
      grid.append(el('div', { class: 'cell' + (cells.has(i) ? ' on' : ''), 'data-cell': String(i) }));
    }
    if (editable) {
      const cellAt = (ev) => {
        const t = document.elementFromPoint(ev.clientX, ev.clientY);
        return t && t.parentNode === grid ? Number(t.dataset.cell) : null;
      };
      grid.addEventListener('pointerdown', (ev) => {
        const cell = cellAt(ev);
        if (cell === null) return;
        ev.preventDefault();
        // The grid keeps the pointer until it is released, so no listener on window is needed
        // (one per form would outlive the form with its grid).
        if (grid.setPointerCapture) grid.setPointerCapture(ev.pointerId);
        paint = !cells.has(cell);
        set(cell, paint);
      });
      grid.addEventListener('pointermove', (ev) => {
        if (paint === null) return;
        const cell = cellAt(ev);
        if (cell !== null && cells.has(cell) !== paint) set(cell, paint);
      });
      const end = () => { paint = null; };
      grid.addEventListener('pointerup', end);
      grid.addEventListener('pointercancel', end);
    } else {
      grid.classList.add('readonly');
    }
    wrap.append(grid);
    const clear = editable ? el('button', { type: 'button', id: 'motion-clear' }, 'Clear grid') : null;
    if (clear) clear.addEventListener('click', () => { for (const c of [...cells]) set(c, false); });
    return el('fieldset', { class: 'motion' },
      el('legend', {}, 'Motion exclude grid'),
      el('p', { class: 'muted' }, 'Marked cells never count as motion. Click or drag to mark or clear cells.'),
      wrap, note, clear,
      el('div', { class: 'field-error', id: 'cam-grid-error', role: 'alert' }));
  }

  /** The add/edit form; `id` null adds a camera. */
  function startForm(main, id) {
    const editable = may('edit_config');
    let stopped = false;
    main.replaceChildren(el('h1', {}, id ? 'Camera ' + id : 'Add camera'), el('p', { class: 'muted' }, 'Loading…'));
    (async () => {
      let revision;
      let table = {};
      let config;
      try {
        config = await api('/api/v1/config');
        revision = config.revision;
        if (id) {
          const item = await api('/api/v1/config/cameras/' + encodeURIComponent(id));
          revision = item.revision;
          table = item.camera;
        }
      } catch (e) {
        if (!stopped && e.status !== 401) main.replaceChildren(el('h1', {}, 'Cameras'), el('p', { class: 'error' }, e.message));
        return;
      }
      if (stopped) return;
      renderForm(main, id, table, revision, (config.config.storage || []).map((s) => s.id), (config.config.camera || []).map((c) => c.id), editable);
    })();
    return { stop() { stopped = true; } };
  }

  function renderForm(main, id, original, revision, storages, existing, editable) {
    const motion = original.motion || {};
    const cells = parseExclude(motion.exclude);
    const errors = {};
    const input = (name, label, attrs, hint) => {
      const control = attrs.tag === 'select'
        ? el('select', { id: 'cam-' + name, name, disabled: !editable || attrs.disabled }, attrs.options.map(([v, t]) => el('option', { value: v, selected: v === attrs.value }, t)))
        : el('input', { id: 'cam-' + name, name, type: attrs.type || 'text', value: attrs.type === 'checkbox' ? null : attrs.value, checked: attrs.type === 'checkbox' ? attrs.value : null, disabled: !editable || attrs.disabled, autocomplete: 'off', placeholder: attrs.placeholder, inputmode: attrs.inputmode });
      errors[name] = el('div', { class: 'field-error', id: 'cam-' + name + '-error', role: 'alert' });
      return el('label', { class: attrs.type === 'checkbox' ? 'check' : null, 'data-field': name },
        attrs.type === 'checkbox' ? control : null, label, attrs.type === 'checkbox' ? null : control,
        hint ? el('span', { class: 'hint' }, hint) : null, errors[name]);
    };
    const fields = el('div', { class: 'cam-fields' },
      input('id', 'Id', { value: id || '', disabled: !!id, placeholder: 'e.g. yard' }, id ? null : 'Letters, digits, - and _; it cannot be changed later.'),
      input('name', 'Name', { value: original.name || '', placeholder: 'shown on the pages' }),
      input('source', 'RTSP URL', { value: original.source || '', placeholder: 'rtsp://192.168.1.20:554/stream1', inputmode: 'url' }),
      input('username', 'User name', { value: original.username || '' }),
      input('password', 'Password', { type: 'password', value: original.password || '' }),
      input('transport', 'Transport', { tag: 'select', value: original.transport || 'tcp', options: [['tcp', 'TCP (interleaved)'], ['udp', 'UDP']] }),
      input('storage', 'Storage', { tag: 'select', value: original.storage || '', options: [['', '(the default storage)']].concat(storages.map((s) => [s, s])) }),
      input('record', 'Recording', { tag: 'select', value: original.record || 'continuous', options: RECORD_MODES.map((m) => [m, m]) }),
      input('schedule', 'Schedule (time profile)', { value: original.schedule || '' }, 'Only for recording "schedule".'),
      input('prebuffer', 'Pre-buffer seconds', { value: original.prebuffer_seconds === undefined ? '' : String(original.prebuffer_seconds), inputmode: 'decimal' }),
      input('enabled', 'Enabled', { type: 'checkbox', value: original.enabled !== false }),
      input('motion', 'Motion detection', { type: 'checkbox', value: motion.enabled !== false }));
    const testResult = el('div', { id: 'cam-test-result', class: 'test-result', role: 'status' });
    const testButton = el('button', { type: 'button', id: 'cam-test', disabled: !editable }, 'Test connection');
    const formError = el('div', { class: 'error', id: 'cam-form-error', role: 'alert' });
    const conflict = el('div', { class: 'banner warn', id: 'cam-conflict', hidden: true });
    const grid = excludeGrid(id, cells, editable);
    const save = el('button', { class: 'primary', type: 'submit', id: 'cam-save' }, id ? 'Save' : 'Add camera');
    const remove = id ? el('button', { type: 'button', class: 'danger', id: 'cam-remove' }, 'Remove camera') : null;
    const form = el('form', { id: 'camera-form', class: 'camera-form', novalidate: true },
      conflict, formError, fields,
      el('div', { class: 'controls' }, testButton), testResult,
      grid,
      editable ? el('div', { class: 'controls' }, save, remove) : null);
    main.replaceChildren(
      el('div', { class: 'controls' }, el('a', { href: '#/cameras' }, '← All cameras')),
      el('h1', {}, id ? 'Camera ' + id : 'Add camera'),
      form);
    const value = (name) => form.querySelector('#cam-' + name);

    const clearErrors = () => {
      formError.textContent = '';
      conflict.hidden = true;
      for (const e of Object.values(errors).concat([grid.querySelector('#cam-grid-error')])) e.textContent = '';
      form.querySelectorAll('.invalid').forEach((e) => e.classList.remove('invalid'));
    };
    /** Shows an API error: a revision conflict as such, a config error on its field, else on top. */
    const showError = (e) => {
      if (e.status === 409) {
        conflict.replaceChildren(
          'Not saved: someone changed the configuration since this form was opened (', e.message, '). ',
          el('button', { type: 'button', id: 'cam-reload' }, 'Reload the camera'));
        conflict.querySelector('#cam-reload').addEventListener('click', () => UI.views.cameras.reload());
        conflict.hidden = false;
        return;
      }
      const { field, text } = splitConfigError(e.message);
      const target = field === 'grid' ? grid.querySelector('#cam-grid-error') : errors[field];
      if (target) {
        target.textContent = text;
        const control = value(field);
        if (control) {
          control.classList.add('invalid');
          control.focus();
        }
      } else {
        formError.textContent = e.message;
      }
    };

    /** The camera's table as the form now says, keeping every key the form does not show. */
    const tableFromForm = () => {
      const t = JSON.parse(JSON.stringify(original));
      const text = (key, name) => {
        const v = value(name).value.trim();
        if (v) t[key] = v; else delete t[key];
      };
      text('name', 'name');
      t.source = value('source').value.trim();
      text('username', 'username');
      const password = value('password').value;
      if (password) t.password = password; else delete t.password;
      if (value('transport').value !== 'tcp' || original.transport) t.transport = value('transport').value;
      text('storage', 'storage');
      if (value('record').value !== 'continuous' || original.record) t.record = value('record').value;
      text('schedule', 'schedule');
      const pre = value('prebuffer').value.trim();
      if (pre === '') delete t.prebuffer_seconds;
      else t.prebuffer_seconds = Number.isFinite(Number(pre)) ? Number(pre) : pre;
      if (!value('enabled').checked) t.enabled = false;
      else if (original.enabled !== undefined) t.enabled = true;
      const m = t.motion || {};
      if (!value('motion').checked) m.enabled = false;
      else if (motion.enabled !== undefined) m.enabled = true;
      if (cells.size || motion.exclude) m.exclude = excludeRows(cells);
      if (!cells.size && !motion.exclude) delete m.exclude;
      if (Object.keys(m).length) t.motion = m; else delete t.motion;
      return t;
    };

    testButton.addEventListener('click', async () => {
      clearErrors();
      testResult.className = 'test-result busy';
      testResult.textContent = 'Connecting…';
      try {
        const a = await api('/api/v1/cameras/test', {
          method: 'POST',
          json: {
            source: value('source').value.trim(),
            username: value('username').value || null,
            password: value('password').value || null,
            transport: value('transport').value,
            camera: id,
          },
        });
        testResult.className = 'test-result ' + (a.ok ? 'ok' : 'bad');
        testResult.dataset.problem = a.problem || '';
        testResult.textContent = (a.ok ? '✓ ' : '✗ ' + (a.problem || '').replace(/_/g, ' ') + ': ') + describeTest(a);
      } catch (e) {
        testResult.className = 'test-result';
        testResult.textContent = '';
        // A bad URL is the source field's error, as the config would say.
        if (e.status === 400 && /^source: /.test(e.message)) {
          errors.source.textContent = e.message.replace(/^source: /, '');
          value('source').classList.add('invalid');
        } else if (e.status === 400 && /^password: /.test(e.message)) {
          errors.password.textContent = e.message.replace(/^password: /, '');
        } else if (e.status !== 401) {
          formError.textContent = e.message;
        }
      }
    });

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!editable) return;
      clearErrors();
      const newId = id || value('id').value.trim();
      if (!newId) {
        errors.id.textContent = 'A camera needs an id.';
        value('id').classList.add('invalid');
        return;
      }
      if (!id && existing.includes(newId)) {
        errors.id.textContent = 'A camera with this id exists already.';
        value('id').classList.add('invalid');
        return;
      }
      save.disabled = true;
      try {
        await api('/api/v1/config/cameras/' + encodeURIComponent(newId), {
          method: 'PUT', json: tableFromForm(), headers: { 'If-Match': '"' + revision + '"' },
        });
        // Saved: a failing refresh of the list must not read as a failed save.
        await UI.refreshCameras().catch(() => {});
        location.hash = '#/cameras';
      } catch (e) {
        if (e.status !== 401) showError(e);
      } finally {
        save.disabled = false;
      }
    });

    if (remove) {
      remove.addEventListener('click', async () => {
        clearErrors();
        if (!window.confirm('Remove camera ' + id + '? Its recordings stay until retention removes them, but are no longer served.')) return;
        try {
          await api('/api/v1/config/cameras/' + encodeURIComponent(id), {
            method: 'DELETE', headers: { 'If-Match': '"' + revision + '"' },
          });
          // Removed: a failing refresh of the list must not read as a failed remove.
          await UI.refreshCameras().catch(() => {});
          location.hash = '#/cameras';
        } catch (e) {
          if (e.status !== 401) showError(e);
        }
      });
    }
  }

  UI.views.cameras = {
    nav: 'Cameras',
    title: 'cameras',
    allowed: () => may('read_config'),
    /** Shows the page again from the server's state (after a revision conflict). */
    reload() {
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    },
    start(main, args) {
      if (args[0] === 'new') return may('edit_config') ? startForm(main, null) : startList(main);
      if (args[0]) return startForm(main, args[0]);
      return startList(main);
    },
  };
})();
