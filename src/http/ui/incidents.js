// Incident projects (issue 15, IM-1, IM-3..IM-5, IM-8..IM-14): the project list with its filters
// and keyset paging kept in the hash (`#/incidents?type=3&text=ladder&after=…`), the form for a
// new project (`#/incidents/new`), the form that adds a camera's range to a new or an existing
// project (`#/incidents/add?camera=..&from=..&to=..`, which playback's "Add to incident" opens),
// and a project's page (`#/incidents/<id>`): its fields, category values and data fields, comments,
// calls, sequences (each playing inline; one of a camera the user may not read says "not available
// to you"), its log, the report and export links, and Delete. Every edit sends `If-Match` with the
// revision the page shows (IM-13): a 409 says someone else changed the project, a 404 that someone
// deleted it. The server checks every permission (IM-12); the page offers only what `/api/v1/me`
// allows.
'use strict';

(() => {
  const { el, api, fmt, may, mayOn } = UI;
  /** Projects per page of the list (the API's default page is 50; IM-14 keyset paging). */
  const PAGE = 50;
  /** The data field kinds (IM-5) as the API names them, with the label the page shows. */
  const KINDS = { whole_number: 'whole number', decimal: 'decimal number', text: 'text', check_box: 'check box', date_time: 'date and time' };
  /** IM-13's answers to a stale or a lost project, as the page says them. */
  const STALE = 'Changed by someone else — reload to see their change, then make yours again.';
  const GONE = 'Deleted by someone else — refresh the list.';

  const pad = (n) => String(n).padStart(2, '0');
  /** The `datetime-local` value (local time, to the second) of a time in µs. */
  function inputOfUs(us) {
    const d = new Date(us / 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  /** The time in µs of a `datetime-local` value (the browser's zone), or null. */
  function usOfInput(value) {
    if (!value) return null;
    const t = new Date(value).getTime();
    return Number.isNaN(t) ? null : t * 1000;
  }
  /** A time in µs as a person reads it. */
  const timeOfUs = (us) => (us === null || us === undefined ? '–' : fmt.time(new Date(us / 1000).toISOString()));
  /** An RFC 3339 time of a link's query in µs, or null (plain digits are not guessed at). */
  function usOfQuery(text) {
    if (!/^\d{4}-\d{2}-\d{2}T/.test(text || '')) return null;
    const t = Date.parse(text);
    return Number.isNaN(t) ? null : t * 1000;
  }

  /** The sentence for a failed project call: IM-13's stale and gone answers, else the server's. */
  function projectError(e) {
    if (e.status === 409) return STALE + ' (' + e.message + ')';
    if (e.status === 404) return GONE + ' (' + e.message + ')';
    return e.message;
  }

  /** A button that asks once more before `action` runs: "Delete" becomes "Really delete?". */
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
      armed = false;
      b.textContent = label;
      b.classList.remove('danger');
      action();
    });
    b.addEventListener('blur', () => {
      armed = false;
      b.textContent = label;
      b.classList.remove('danger');
    });
    return b;
  }

  /**
   * The properties (`GET /api/v1/incidents/properties`): needs `incident_properties_view`, which
   * operators hold by default (Manage implies it in `/api/v1/me` too); without it the page names
   * types, statuses and values by id, and does not ask (a refusal would be an audited denial).
   */
  async function loadProperties() {
    if (!may('incident_properties_view')) return null;
    try {
      return await api('/api/v1/incidents/properties');
    } catch (e) {
      if (e.status === 403) return null;
      throw e;
    }
  }
  const byId = (list, id) => (list || []).find((x) => x.id === id);
  const nameOf = (list, id) => (id === null || id === undefined ? '–' : (byId(list, id) || { name: '#' + id }).name);
  /** A select of a property list: `none` first (its value ''), then every item. */
  function itemSelect(list, value, attrs, none) {
    return el('select', attrs,
      el('option', { value: '', selected: value === null || value === undefined }, none || '–'),
      (list || []).map((i) => el('option', { value: String(i.id), selected: i.id === value, title: i.description || null }, i.name)));
  }

  // ---- the list ----

  function startList(main, query) {
    let stopped = false;
    const head = el('div', { class: 'cam-head' }, el('h1', {}, 'Incidents'),
      may('incident_projects_manage') ? el('a', { class: 'button primary', href: '#/incidents/new', id: 'inc-new' }, 'New project') : null);
    const body = el('div', { id: 'inc-list' }, el('p', { class: 'muted' }, 'Loading…'));
    main.replaceChildren(head, body);
    (async () => {
      let props;
      let page;
      const q = new URLSearchParams();
      for (const k of ['type', 'status', 'category', 'text', 'from', 'until', 'after']) {
        if (query.get(k)) q.set(k, query.get(k));
      }
      q.set('limit', String(PAGE));
      try {
        [props, page] = await Promise.all([loadProperties(), api('/api/v1/incidents/projects?' + q)]);
      } catch (e) {
        if (!stopped) body.replaceChildren(el('p', { class: 'error', id: 'inc-list-error' }, e.message));
        return;
      }
      if (stopped) return;
      body.replaceChildren(filters(props, query), table(props, page.projects),
        el('div', { class: 'controls' },
          query.get('after') ? el('a', { class: 'button', id: 'inc-first', href: hashOf(query, null) }, 'First page') : null,
          page.next ? el('a', { class: 'button', id: 'inc-next', href: hashOf(query, page.next) }, 'Next page') : null));
    })();
    return { stop() { stopped = true; } };
  }

  /** The list's hash with the filters of `query` and the cursor `after` (null: the first page). */
  function hashOf(query, after) {
    const q = new URLSearchParams();
    for (const k of ['type', 'status', 'category', 'text', 'from', 'until']) {
      if (query.get(k)) q.set(k, query.get(k));
    }
    if (after) q.set('after', after);
    const s = q.toString();
    return '#/incidents' + (s ? '?' + s : '');
  }

  /** The filters: type, status, a category value, text and the creation range. */
  function filters(props, query) {
    const categories = props ? props.categories.filter((c) => c.enabled && c.values.length) : [];
    const rfcToInput = (v) => { const t = Date.parse(v || ''); return Number.isNaN(t) ? '' : inputOfUs(t * 1000); };
    const form = el('form', { class: 'filters', id: 'inc-filters' },
      el('label', { class: 'field' }, 'Type', itemSelect(props && props.types, Number(query.get('type')) || null, { id: 'inc-f-type' }, 'any')),
      el('label', { class: 'field' }, 'Status', itemSelect(props && props.statuses, Number(query.get('status')) || null, { id: 'inc-f-status' }, 'any')),
      el('label', { class: 'field' }, 'Category value', el('select', { id: 'inc-f-category' },
        el('option', { value: '' }, 'any'),
        categories.map((c) => el('optgroup', { label: c.name }, c.values.map((v) => {
          const value = c.slot + ':' + v.id;
          return el('option', { value, selected: query.get('category') === value }, v.name);
        }))))),
      el('label', { class: 'field' }, 'Text', el('input', { id: 'inc-f-text', type: 'search', value: query.get('text') || '' })),
      el('label', { class: 'field' }, 'Created from', el('input', { id: 'inc-f-from', type: 'datetime-local', step: 1, value: rfcToInput(query.get('from')) })),
      el('label', { class: 'field' }, 'Created until', el('input', { id: 'inc-f-until', type: 'datetime-local', step: 1, value: rfcToInput(query.get('until')) })),
      el('button', { type: 'submit' }, 'Show'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      const set = (k, v) => { if (v) q.set(k, v); };
      set('type', form.querySelector('#inc-f-type').value);
      set('status', form.querySelector('#inc-f-status').value);
      set('category', form.querySelector('#inc-f-category').value);
      set('text', form.querySelector('#inc-f-text').value.trim());
      for (const [k, id] of [['from', '#inc-f-from'], ['until', '#inc-f-until']]) {
        const us = usOfInput(form.querySelector(id).value);
        if (us !== null) q.set(k, new Date(us / 1000).toISOString());
      }
      location.hash = hashOf(q, null);
    });
    return form;
  }

  function table(props, projects) {
    if (!projects.length) return el('p', { class: 'muted', id: 'inc-empty' }, 'No incident projects match.');
    return el('div', { class: 'table-wrap' }, el('table', { class: 'rows', id: 'inc-table' },
      el('thead', {}, el('tr', {}, ['Name', 'Type', 'Status', 'Created', 'Changed', 'Sequences'].map((h) => el('th', {}, h)))),
      el('tbody', {}, projects.map((p) => el('tr', { 'data-project': String(p.id) },
        el('td', {}, el('a', { href: '#/incidents/' + p.id }, p.name)),
        el('td', {}, nameOf(props && props.types, p.type_id)),
        el('td', {}, nameOf(props && props.statuses, p.status_id)),
        el('td', { class: 'nowrap' }, timeOfUs(p.created_wall_us)),
        el('td', { class: 'nowrap' }, timeOfUs(p.changed_wall_us)),
        el('td', {}, String(p.sequences)))))));
  }

  // ---- a new project, and a camera's range added to a project (IM-10) ----

  /**
   * `#/incidents/new` and `#/incidents/add?camera=..&from=..&to=..`: the sequence of the link (if
   * any) goes into a new project, or into an existing one chosen from the newest projects.
   */
  function startNew(main, query) {
    let stopped = false;
    const camera = query.get('camera');
    const fromUs = usOfQuery(query.get('from'));
    const toUs = usOfQuery(query.get('to'));
    const sequence = camera && fromUs !== null && toUs !== null && toUs > fromUs
      ? { camera, start_wall_us: fromUs, end_wall_us: toUs } : null;
    const title = sequence ? 'Add to incident' : 'New incident project';
    main.replaceChildren(el('h1', {}, title), el('p', { class: 'muted' }, 'Loading…'));
    if (camera && !sequence) {
      main.replaceChildren(el('h1', {}, title), el('p', { class: 'error' }, 'The link names no valid range (from and to in RFC 3339, from before to).'));
      return null;
    }
    (async () => {
      let props;
      let recent = null;
      try {
        props = await loadProperties();
        if (sequence) recent = (await api('/api/v1/incidents/projects?limit=' + PAGE)).projects;
      } catch (e) {
        if (!stopped) main.replaceChildren(el('h1', {}, title), el('p', { class: 'error' }, e.message));
        return;
      }
      if (stopped) return;
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'inc-new-error' });
      const form = el('form', { class: 'panel', id: 'inc-new-form' },
        el('h3', {}, sequence ? 'A new project' : 'Project'),
        el('label', { class: 'field' }, 'Name', el('input', { id: 'inc-new-name', required: true })),
        el('label', { class: 'field' }, 'Description', el('textarea', { id: 'inc-new-description', rows: 3 })),
        el('label', { class: 'field' }, 'Type', itemSelect(props && props.types, null, { id: 'inc-new-type' })),
        el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Create project')),
        error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        const type = form.querySelector('#inc-new-type').value;
        try {
          const p = await api('/api/v1/incidents/projects', {
            method: 'POST',
            json: {
              name: form.querySelector('#inc-new-name').value,
              description: form.querySelector('#inc-new-description').value,
              type_id: type ? Number(type) : null,
              sequences: sequence ? [sequence] : [],
            },
          });
          location.hash = '#/incidents/' + p.id;
        } catch (e) {
          error.textContent = e.message;
        }
      });
      let existing = null;
      if (sequence) {
        const addError = el('div', { class: 'error form-error', role: 'alert', id: 'inc-add-error' });
        existing = el('form', { class: 'panel', id: 'inc-add-form' },
          el('h3', {}, 'An existing project'),
          recent.length
            ? el('label', { class: 'field' }, 'Project (the newest ' + PAGE + ')', el('select', { id: 'inc-add-project' },
              recent.map((p) => el('option', { value: String(p.id) }, p.name + ' (' + timeOfUs(p.created_wall_us) + ')'))))
            : el('p', { class: 'muted' }, 'There is no project yet.'),
          recent.length ? el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Add to this project')) : null,
          addError);
        existing.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          addError.textContent = '';
          const id = existing.querySelector('#inc-add-project').value;
          try {
            await api('/api/v1/incidents/projects/' + id + '/sequences', { method: 'POST', json: { sequences: [sequence] } });
            location.hash = '#/incidents/' + id;
          } catch (e) {
            addError.textContent = projectError(e);
          }
        });
      }
      main.replaceChildren(el('h1', {}, title),
        sequence ? el('p', { id: 'inc-add-sequence' }, 'Sequence: camera ', el('strong', {}, camera), ', ',
          timeOfUs(sequence.start_wall_us), ' – ', timeOfUs(sequence.end_wall_us)) : null,
        form, existing);
    })();
    return { stop() { stopped = true; } };
  }

  // ---- one project ----

  function startProject(main, id) {
    let stopped = false;
    const manage = may('incident_projects_manage');
    /** The project as last read or changed: its `revision` goes with every edit as `If-Match`. */
    let project = null;
    let props = null;
    const status = el('div', { class: 'error', role: 'alert', id: 'inc-status' });
    const note = el('p', { class: 'muted', id: 'inc-note', role: 'status' });
    main.replaceChildren(el('h1', {}, 'Incident project'), el('p', { class: 'muted' }, 'Loading…'));

    /** Calls the project's API with `If-Match` of the revision shown; keeps the answer's revision. */
    async function edit(path, method, json) {
      const r = await api('/api/v1/incidents/projects/' + id + path, {
        method, json, headers: { 'If-Match': '"' + project.revision + '"' },
      });
      if (r && typeof r.revision === 'number') project.revision = r.revision;
      return r;
    }
    /** Shows a failed call's sentence at the top of the page (stale, deleted, or the server's). */
    function failed(e, where) {
      const text = projectError(e);
      (where || status).textContent = text;
      if (e.status === 409 || e.status === 404) {
        status.replaceChildren(text, ' ',
          e.status === 409
            ? el('button', { type: 'button', id: 'inc-reload', onclick: () => load() }, 'Reload')
            : el('a', { class: 'button', id: 'inc-to-list', href: '#/incidents' }, 'Back to the list'));
      }
    }

    async function load() {
      status.textContent = '';
      try {
        [props, project] = await Promise.all([loadProperties(), api('/api/v1/incidents/projects/' + id)]);
      } catch (e) {
        if (stopped) return;
        main.replaceChildren(el('h1', {}, 'Incident project'), status);
        failed(e);
        return;
      }
      if (!stopped) render();
    }

    function render() {
      const p = project;
      status.textContent = '';
      main.replaceChildren(
        el('div', { class: 'cam-head' }, el('h1', { id: 'inc-title' }, p.name),
          el('div', { class: 'controls' },
            el('a', { class: 'button', id: 'inc-report', href: '/api/v1/incidents/projects/' + p.id + '/report.pdf', target: '_blank', rel: 'noopener' }, 'Report (PDF)'),
            el('a', { class: 'button', id: 'inc-export', href: '/api/v1/incidents/projects/' + p.id + '/export.zip', download: 'incident-' + p.id + '.zip' }, 'Export (zip)'),
            manage ? confirmButton('Delete project', 'Really delete this project?', remove, { id: 'inc-delete' }) : null)),
        status, note,
        el('p', { class: 'muted' }, 'Created by ' + p.created_by + ' ' + timeOfUs(p.created_wall_us) + '; changed by ' +
          p.changed_by + ' ' + timeOfUs(p.changed_wall_us) + '; revision ', el('span', { id: 'inc-revision' }, String(p.revision))),
        fieldsForm(),
        commentsPanel(),
        callsPanel(),
        sequencesPanel(),
        logPanel());
    }

    /** The project's own fields, categories and data fields, saved as one PUT of what changed. */
    function fieldsForm() {
      const p = project;
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'inc-fields-error' });
      const categories = props ? props.categories.filter((c) => c.enabled) : [];
      const fields = props ? props.data_fields.filter((f) => f.enabled) : [];
      const valueOf = (key) => { const d = p.data.find((x) => x.key === key); return d ? d.value : null; };
      const categoryOf = (slot) => { const c = p.categories.find((x) => x.slot === slot); return c ? c.value_id : null; };
      const dis = !manage;
      const form = el('form', { class: 'panel', id: 'inc-fields' },
        el('h3', {}, 'Project'),
        el('div', { class: 'grid-form' },
          el('label', { class: 'field' }, 'Name', el('input', { id: 'inc-name', value: p.name, required: true, disabled: dis })),
          el('label', { class: 'field' }, 'Type', itemSelect(props && props.types, p.type_id, { id: 'inc-type', disabled: dis || !props })),
          el('label', { class: 'field' }, 'Status', itemSelect(props && props.statuses, p.status_id, { id: 'inc-status-select', disabled: dis || !props }))),
        el('label', { class: 'field' }, 'Description', el('textarea', { id: 'inc-description', rows: 3, disabled: dis }, p.description)),
        categories.length ? el('h4', {}, 'Categories') : null,
        categories.length ? el('div', { class: 'grid-form' }, categories.map((c) => el('label', { class: 'field', title: c.description || null }, c.name,
          itemSelect(c.values, categoryOf(c.slot), { 'data-slot': String(c.slot), disabled: dis })))) : null,
        fields.length ? el('h4', {}, 'Incident data') : null,
        fields.length ? el('div', { class: 'grid-form' }, fields.map((f) => dataInput(f, valueOf(f.key), dis))) : null,
        !props ? el('p', { class: 'muted' }, 'Types, statuses, categories and data fields need the incident properties view permission.') : null,
        manage ? el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit', id: 'inc-save' }, 'Save')) : null,
        error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        const change = {};
        const name = form.querySelector('#inc-name').value;
        if (name !== p.name) change.name = name;
        const description = form.querySelector('#inc-description').value;
        if (description !== p.description) change.description = description;
        if (props) {
          const idOf = (v) => (v ? Number(v) : null);
          const type = idOf(form.querySelector('#inc-type').value);
          if (type !== p.type_id) change.type_id = type;
          const st = idOf(form.querySelector('#inc-status-select').value);
          if (st !== p.status_id) change.status_id = st;
          for (const s of form.querySelectorAll('select[data-slot]')) {
            const v = idOf(s.value);
            if (v !== categoryOf(Number(s.dataset.slot))) (change.categories = change.categories || {})[s.dataset.slot] = v;
          }
          for (const f of fields) {
            let v;
            try {
              v = readData(form, f);
            } catch (e) {
              error.textContent = e.message;
              return;
            }
            const old = valueOf(f.key);
            // A date-time is shown to the second: the same second is no change.
            const same = f.kind === 'date_time' && v !== null && old !== null ? Math.floor(v / 1e6) === Math.floor(old / 1e6) : v === old;
            if (!same) (change.data = change.data || {})[f.key] = v;
          }
        }
        if (!Object.keys(change).length) {
          note.textContent = 'Nothing changed.';
          return;
        }
        try {
          project = await edit('', 'PUT', change);
          note.textContent = 'Saved.';
          render();
        } catch (e) {
          failed(e, error);
        }
      });
      return form;
    }

    async function remove() {
      try {
        await edit('', 'DELETE');
        location.hash = '#/incidents';
      } catch (e) {
        failed(e);
      }
    }

    function commentsPanel() {
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'inc-comment-error' });
      const text = el('textarea', { id: 'inc-comment-text', rows: 2, 'aria-label': 'Comment', required: true });
      const form = manage ? el('form', { id: 'inc-comment-form' }, text,
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Add comment')), error) : null;
      if (form) {
        form.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          error.textContent = '';
          try {
            const c = await edit('/comments', 'POST', { text: text.value });
            project.comments.push(c);
            render();
          } catch (e) {
            failed(e, error);
          }
        });
      }
      return el('section', { class: 'panel', id: 'inc-comments' }, el('h3', {}, 'Comments'),
        project.comments.length
          ? el('ul', {}, project.comments.map((c) => el('li', { 'data-comment': String(c.id) },
            el('span', { class: 'muted' }, c.author + ', ' + timeOfUs(c.wall_us) + ': '), el('span', { class: 'comment-text' }, c.text))))
          : el('p', { class: 'muted' }, 'No comments.'),
        form);
    }

    function callsPanel() {
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'inc-call-error' });
      const form = manage ? el('form', { id: 'inc-call-form' },
        el('div', { class: 'grid-form' },
          el('label', { class: 'field' }, 'Party', el('input', { id: 'inc-call-party', required: true })),
          el('label', { class: 'field' }, 'Direction', el('select', { id: 'inc-call-direction' },
            el('option', { value: 'incoming' }, 'incoming'), el('option', { value: 'outgoing' }, 'outgoing'))),
          el('label', { class: 'field' }, 'Time', el('input', { id: 'inc-call-time', type: 'datetime-local', step: 1, required: true, value: inputOfUs(Date.now() * 1000) })),
          el('label', { class: 'field' }, 'Notes', el('input', { id: 'inc-call-notes' }))),
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Add call')), error) : null;
      if (form) {
        form.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          error.textContent = '';
          const at = usOfInput(form.querySelector('#inc-call-time').value);
          if (at === null) { error.textContent = 'Give the time of the call.'; return; }
          try {
            const c = await edit('/calls', 'POST', {
              party: form.querySelector('#inc-call-party').value,
              direction: form.querySelector('#inc-call-direction').value,
              call_wall_us: at,
              notes: form.querySelector('#inc-call-notes').value,
            });
            project.calls.push(c);
            render();
          } catch (e) {
            failed(e, error);
          }
        });
      }
      return el('section', { class: 'panel', id: 'inc-calls' }, el('h3', {}, 'Calls'),
        project.calls.length
          ? el('ul', {}, project.calls.map((c) => el('li', { 'data-call': String(c.id) },
            c.direction + ' ' + c.party + ', ' + timeOfUs(c.call_wall_us) + (c.notes ? ': ' + c.notes : ''),
            el('span', { class: 'muted' }, ' (recorded by ' + c.recorded_by + ')'))))
          : el('p', { class: 'muted' }, 'No calls.'),
        form);
    }

    /** The sequences (IM-10), each playing inline through the camera's `playback.mp4` (PR-11). */
    function sequencesPanel() {
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'inc-seq-error' });
      const item = (s) => {
        const range = timeOfUs(s.start_wall_us) + ' – ' + timeOfUs(s.end_wall_us);
        if (s.hidden) {
          return el('li', { class: 'inc-seq', 'data-sequence': String(s.id), 'data-hidden': 'true' },
            el('div', {}, range), el('p', { class: 'muted' }, 'Camera not available to you.'));
        }
        const src = '/api/v1/cameras/' + encodeURIComponent(s.camera) + '/playback.mp4?from=' +
          encodeURIComponent(new Date(s.start_wall_us / 1000).toISOString()) + '&to=' + encodeURIComponent(new Date(s.end_wall_us / 1000).toISOString());
        const cam = UI.cameras().find((c) => c.id === s.camera);
        return el('li', { class: 'inc-seq', 'data-sequence': String(s.id), 'data-camera': s.camera },
          el('div', {}, el('strong', {}, cam && cam.name ? cam.name : s.camera), ' ', range, el('span', { class: 'muted' }, ' (added by ' + s.added_by + ')')),
          mayOn('playback', s.camera)
            ? el('video', { class: 'inc-video', controls: true, preload: 'metadata', playsinline: true, src })
            : el('p', { class: 'muted' }, 'You may not play back this camera.'),
          manage ? confirmButton('Remove', 'Really remove this sequence?', async () => {
            error.textContent = '';
            try {
              await edit('/sequences/' + s.id, 'DELETE');
              project.sequences = project.sequences.filter((x) => x.id !== s.id);
              render();
            } catch (e) {
              failed(e, error);
            }
          }, { 'data-action': 'remove-sequence' }) : null);
      };
      return el('section', { class: 'panel', id: 'inc-sequences' }, el('h3', {}, 'Sequences'),
        project.sequences.length ? el('ul', { class: 'inc-seqs' }, project.sequences.map(item)) : el('p', { class: 'muted' }, 'No sequences. Add one from the playback page ("Add to incident").'),
        error, protectPanel());
    }

    /** Why the protect action left a sequence out (IM-7; the server's `reason`). */
    const NOT_PROTECTED = {
      not_available: 'camera not available to you',
      no_permission: 'you may not lock this camera',
      camera_removed: 'the camera is no longer configured',
      media_gone: 'no recording is left',
      lock_failed: 'the lock failed',
    };

    /**
     * "Protect sequences" (IM-7): evidence locks over the sequences the user may lock, until the
     * project expires; the answer says what was protected and what not, and why. The locks the
     * project made are listed with their state now.
     */
    function protectPanel() {
      const result = el('div', { id: 'inc-protect-result', role: 'status' });
      const lockable = project.sequences.some((s) => !s.hidden && mayOn('evidence_lock_create', s.camera));
      const button = manage && lockable
        ? el('button', { type: 'button', id: 'inc-protect', onclick: async () => {
          button.disabled = true;
          result.textContent = 'Protecting…';
          try {
            const r = await edit('/protect', 'POST', {});
            const seqName = (s) => (s.camera || 'a camera not available to you') + ' ' + timeOfUs(s.start_wall_us);
            const lines = [el('p', { id: 'inc-protect-summary' }, 'Protected ' + r.protected.length + ' sequence(s) with ' +
              r.locks.length + ' evidence lock(s).')];
            if (r.not_protected.length) {
              lines.push(el('ul', { id: 'inc-not-protected' }, r.not_protected.map((s) =>
                el('li', { 'data-sequence': String(s.id), 'data-reason': s.reason },
                  seqName(s) + ': not protected, ' + (NOT_PROTECTED[s.reason] || s.reason) + (s.detail ? ' (' + s.detail + ')' : '')))));
            }
            const fresh = await api('/api/v1/incidents/projects/' + id);
            project = fresh;
            render();
            document.getElementById('inc-protect-result').replaceChildren(...lines);
          } catch (e) {
            button.disabled = false;
            result.textContent = '';
            failed(e, result);
          }
        } }, 'Protect sequences')
        : null;
      const lockItem = (l) => el('li', { class: 'inc-lock', 'data-lock': l.lock_id },
        (l.cameras.length ? l.cameras.join(', ') : 'cameras not available to you') + (l.hidden && l.cameras.length ? ' and cameras not available to you' : '') +
        ' ' + timeOfUs(l.start_wall_us) + ' – ' + timeOfUs(l.end_wall_us) + ': ' +
        (!l.exists ? 'lock deleted' : !l.active ? 'expired' : l.expires_wall_us === null ? 'locked indefinitely' : 'locked until ' + timeOfUs(l.expires_wall_us)),
        el('span', { class: 'muted' }, ' (by ' + l.added_by + ')'));
      return el('div', { id: 'inc-protect-panel' },
        el('h4', {}, 'Evidence locks'),
        (project.locks || []).length
          ? el('ul', { id: 'inc-locks' }, project.locks.map(lockItem))
          : el('p', { class: 'muted' }, 'No sequence of this project is protected by an evidence lock.'),
        button, result);
    }

    /** The project log (IM-11), oldest first, a page of 100 at a time ("More" reads the next). */
    function logPanel() {
      const box = el('div', { id: 'inc-log' }, el('p', { class: 'muted' }, 'Loading the log…'));
      const rows = el('tbody', {});
      const more = el('button', { type: 'button', id: 'inc-log-more', hidden: true }, 'More');
      const row = (e) => el('tr', {},
        el('td', { class: 'nowrap' }, timeOfUs(e.wall_us)), el('td', {}, e.user), el('td', {}, e.action), el('td', {}, e.detail));
      let first = true;
      async function page(after) {
        more.disabled = true;
        try {
          const l = await api('/api/v1/incidents/projects/' + id + '/log?limit=100' + (after ? '&after=' + encodeURIComponent(after) : ''));
          rows.append(...l.entries.map(row));
          if (first) {
            first = false;
            box.replaceChildren(el('div', { class: 'table-wrap' }, el('table', { class: 'rows' },
              el('thead', {}, el('tr', {}, ['Time', 'User', 'Action', 'Detail'].map((h) => el('th', {}, h)))), rows)), more);
          }
          more.hidden = !l.next;
          more.onclick = () => page(l.next);
        } catch (e) {
          box.append(el('p', { class: 'error' }, e.message));
        } finally {
          more.disabled = false;
        }
      }
      page(null);
      return el('section', { class: 'panel', id: 'inc-log-panel' }, el('h3', {}, 'Project log'), box);
    }

    load();
    return { stop() { stopped = true; } };
  }

  /** The input of data field `f` (IM-5) by its kind, holding `value` (null: empty). */
  function dataInput(f, value, disabled) {
    const attrs = { 'data-field': f.key, disabled };
    let input;
    switch (f.kind) {
      case 'whole_number':
        input = el('input', { ...attrs, type: 'number', step: 1, value: value === null ? '' : String(value) });
        break;
      case 'decimal':
        input = el('input', { ...attrs, type: 'number', step: 'any', value: value === null ? '' : String(value) });
        break;
      case 'check_box':
        // Three states: a project may leave the field unset (IM-5: optional per project).
        input = el('select', attrs,
          el('option', { value: '', selected: value === null }, '–'),
          el('option', { value: 'true', selected: value === true }, 'yes'),
          el('option', { value: 'false', selected: value === false }, 'no'));
        break;
      case 'date_time':
        input = el('input', { ...attrs, type: 'datetime-local', step: 1, value: value === null ? '' : inputOfUs(value) });
        break;
      default:
        input = el('input', { ...attrs, value: value === null ? '' : String(value) });
    }
    return el('label', { class: 'field', title: f.description || null }, f.name, input);
  }

  /** The value of data field `f` in `form` as the API takes it (null: empty); throws on bad input. */
  function readData(form, f) {
    const raw = form.querySelector('[data-field="' + f.key + '"]').value;
    if (raw === '') return null;
    switch (f.kind) {
      case 'whole_number': {
        const n = Number(raw);
        if (!Number.isSafeInteger(n)) throw new Error(f.name + ' takes a whole number.');
        return n;
      }
      case 'decimal': {
        const n = Number(raw);
        if (!Number.isFinite(n)) throw new Error(f.name + ' takes a number.');
        return n;
      }
      case 'check_box':
        return raw === 'true';
      case 'date_time': {
        const us = usOfInput(raw);
        if (us === null) throw new Error(f.name + ' takes a date and time.');
        return us;
      }
      default:
        return raw;
    }
  }

  UI.views.incidents = {
    nav: 'Incidents',
    title: 'incidents',
    allowed: () => may('incident_projects_view'),
    start(main, args, query) {
      if (args[0] === 'new' || args[0] === 'add') {
        if (!may('incident_projects_manage')) {
          main.replaceChildren(el('p', { class: 'error' }, 'You may not create or change incident projects.'));
          return null;
        }
        return startNew(main, query);
      }
      if (args[0]) return startProject(main, encodeURIComponent(args[0]));
      return startList(main, query);
    },
  };

  // ---- the properties (IM-2..IM-7), `#/incident-properties` ----

  /**
   * The administrator's page of the properties: types, statuses, the five category slots with
   * their values, the fifteen data fields and the settings. Each row saves with `If-Match` of
   * its revision; a refusal (an item in use, I1; a stale revision) is shown as the API words it,
   * next to the row. A change that succeeds reads the properties again.
   */
  function startProperties(main) {
    let stopped = false;
    main.replaceChildren(el('h1', {}, 'Incident properties'), el('p', { class: 'muted' }, 'Loading…'));
    const base = '/api/v1/incidents/properties';

    async function load() {
      let props;
      try {
        props = await api(base);
      } catch (e) {
        if (!stopped) main.replaceChildren(el('h1', {}, 'Incident properties'), el('p', { class: 'error' }, e.message));
        return;
      }
      if (stopped) return;
      main.replaceChildren(el('h1', {}, 'Incident properties'),
        itemsPanel('Types', 'types', props.types, base + '/types', base + '/types/'),
        itemsPanel('Statuses', 'statuses', props.statuses, base + '/statuses', base + '/statuses/'),
        el('section', { class: 'panel', id: 'ip-categories' }, el('h3', {}, 'Categories'), props.categories.map(categoryBlock)),
        dataFieldsPanel(props.data_fields),
        settingsPanel(props.settings));
    }

    /** Runs `call`; on success reads everything again, on failure shows the API's message in `error`. */
    async function act(error, call) {
      error.textContent = '';
      try {
        await call();
        await load();
      } catch (e) {
        error.textContent = e.message;
      }
    }
    const tagOf = (item) => ({ 'If-Match': '"' + item.revision + '"' });

    /** One editable item (a type, a status or a category value): name, description, Save, Delete. */
    function itemRow(item, url) {
      const error = el('div', { class: 'error form-error', role: 'alert' });
      const name = el('input', { value: item.name, 'aria-label': 'Name', required: true });
      const description = el('input', { value: item.description, 'aria-label': 'Description', placeholder: 'description (help text)' });
      const form = el('form', { class: 'inline', 'data-item': String(item.id) },
        name, description,
        el('button', { type: 'submit' }, 'Save'),
        confirmButton('Delete', 'Really delete?', () => act(error, () => api(url, { method: 'DELETE', headers: tagOf(item) })), { 'data-action': 'delete' }),
        item.in_use ? el('span', { class: 'badge', title: 'Projects use it: it cannot be changed or deleted' }, 'in use') : null,
        error);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        act(error, () => api(url, { method: 'PUT', headers: tagOf(item), json: { name: name.value, description: description.value } }));
      });
      return form;
    }

    /** A form that adds an item to `url` (POST). */
    function addForm(idPrefix, url, label) {
      const error = el('div', { class: 'error form-error', role: 'alert', id: idPrefix + '-add-error' });
      const name = el('input', { id: idPrefix + '-add-name', 'aria-label': 'New name', placeholder: 'name', required: true });
      const description = el('input', { id: idPrefix + '-add-description', 'aria-label': 'New description', placeholder: 'description (help text)' });
      const form = el('form', { class: 'inline', id: idPrefix + '-add' }, name, description, el('button', { type: 'submit' }, label), error);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        act(error, () => api(url, { method: 'POST', json: { name: name.value, description: description.value } }));
      });
      return form;
    }

    function itemsPanel(title, idPrefix, items, addUrl, itemUrl) {
      return el('section', { class: 'panel', id: 'ip-' + idPrefix }, el('h3', {}, title),
        items.length ? items.map((i) => itemRow(i, itemUrl + i.id)) : el('p', { class: 'muted' }, 'None yet.'),
        addForm('ip-' + idPrefix, addUrl, 'Add'));
    }

    function slotForm(url, item, attrs) {
      const error = el('div', { class: 'error form-error', role: 'alert' });
      const enabled = el('input', { type: 'checkbox', checked: item.enabled, 'aria-label': 'Enabled' });
      const name = el('input', { value: item.name, 'aria-label': 'Name', required: true });
      const description = el('input', { value: item.description, 'aria-label': 'Description', placeholder: 'description (help text)' });
      const form = el('form', { class: 'inline', ...attrs },
        el('label', { class: 'check' }, enabled, ' enabled'), name, description, el('button', { type: 'submit' }, 'Save'), error);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        act(error, () => api(url, { method: 'PUT', headers: tagOf(item), json: { enabled: enabled.checked, name: name.value, description: description.value } }));
      });
      return form;
    }

    function categoryBlock(c) {
      return el('div', { class: 'ip-category', 'data-slot': String(c.slot) },
        el('h4', {}, 'Category ' + c.slot),
        slotForm(base + '/categories/' + c.slot, c, { 'data-category': String(c.slot) }),
        el('div', { class: 'ip-values' }, c.values.map((v) => itemRow(v, base + '/category-values/' + v.id)),
          addForm('ip-cat' + c.slot, base + '/categories/' + c.slot + '/values', 'Add value')));
    }

    function dataFieldsPanel(fields) {
      return el('section', { class: 'panel', id: 'ip-data-fields' }, el('h3', {}, 'Incident data fields'),
        fields.map((f) => el('div', {},
          el('span', { class: 'muted' }, (KINDS[f.kind] || f.kind) + ' ' + f.key.split('_').pop()),
          slotForm(base + '/data-fields/' + f.key, f, { 'data-field': f.key }))));
    }

    function settingsPanel(s) {
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'ip-settings-error' });
      const days = el('input', { id: 'ip-retention', type: 'number', min: 1, max: 365000, step: 1, value: String(s.retention_days), required: true });
      const title = el('input', { id: 'ip-report-title', value: s.report_title });
      const form = el('form', { class: 'panel', id: 'ip-settings' }, el('h3', {}, 'Settings'),
        el('div', { class: 'grid-form' },
          el('label', { class: 'field' }, 'Keep projects (days, 1 to 365000)', days),
          el('label', { class: 'field' }, 'Report title', title)),
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Save settings')), error);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        act(error, () => api(base + '/settings', { method: 'PUT', headers: tagOf(s), json: { retention_days: Number(days.value), report_title: title.value } }));
      });
      return form;
    }

    load();
    return { stop() { stopped = true; } };
  }

  UI.views['incident-properties'] = {
    nav: 'Incident properties',
    title: 'incident properties',
    allowed: () => may('incident_properties_manage'),
    start: (main) => startProperties(main),
  };
})();
