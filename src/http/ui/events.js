// Events and logs (issue 12 point 7). The events page follows the durable event stream (IC-8)
// as it happens: it starts a little before the newest event (the answer's `newest`), reads up to
// it, then keeps a long poll (`wait`) open with the resumable cursor `after`, puts new events at
// the top, and aborts the poll when the user leaves.
// The logs page queries the system, rule and audit logs (LG-2..LG-4) with the filters the API has
// (LG-6) and links the same query as CSV.
'use strict';

(() => {
  const { el, api, fmt, may } = UI;
  /** Seconds one long poll waits for an event (the server allows up to 60). */
  const WAIT_S = 25;
  /** Events asked for per request. */
  const PAGE_EVENTS = 500;
  /** Events the page keeps; older ones fall off the bottom. */
  const SHOWN_EVENTS = 200;
  /**
   * How many cursors before the newest the page starts reading (review 1 finding 5): enough for
   * `SHOWN_EVENTS` even where some events are of cameras the user may not see, instead of the
   * whole log (up to a million events).
   */
  const START_BACK_EVENTS = 2 * SHOWN_EVENTS;
  /** Wait before asking again after a failed poll (the recorder restarting, a network break). */
  const RETRY_MS = 3000;

  /** An event's row: newest rows go on top. */
  function eventRow(e) {
    const cams = e.camera ? [e.camera] : (e.data && Array.isArray(e.data.cameras) ? e.data.cameras : []);
    const what = e.name ? e.kind + ': ' + e.name : e.kind;
    const extra = e.data ? Object.entries(e.data).filter(([k]) => k !== 'cameras')
      .map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' ') : '';
    return el('tr', { class: 'event', 'data-cursor': String(e.cursor), 'data-kind': e.kind, 'data-name': e.name || null, 'data-cameras': cams.join(' ') },
      el('td', { class: 'nowrap' }, fmt.time(e.time)),
      el('td', {}, what),
      el('td', {}, cams.length ? cams.join(', ') : (e.storage ? 'storage ' + e.storage : '–')),
      el('td', {}, [e.message, extra].filter(Boolean).join(' · ') || ''));
  }

  UI.views.events = {
    nav: 'Events',
    title: 'events',
    // The event stream needs `status` (route table); the server leaves out events of cameras
    // the user may not read (PR-11).
    allowed: () => may('status'),
    start(main) {
      let stopped = false;
      let abort = null;
      let timer = null;
      const state = el('p', { class: 'muted', id: 'events-state', role: 'status' }, 'Reading the events…');
      const body = el('tbody', { id: 'events' });
      const empty = el('p', { class: 'muted', id: 'events-empty' }, 'No events yet.');
      main.replaceChildren(
        el('h1', {}, 'Events'),
        state,
        el('div', { class: 'table-wrap' },
          el('table', { class: 'rows' },
            el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'Event'), el('th', {}, 'Camera'), el('th', {}, 'Details'))),
            body)),
        empty);

      /** Puts events (oldest first, as the server sends them) on top, newest first. */
      function show(events) {
        for (const e of events) body.prepend(eventRow(e));
        while (body.children.length > SHOWN_EVENTS) body.lastElementChild.remove();
        empty.hidden = body.children.length > 0;
      }

      /**
       * Asks for up to `limit` events after `after`; `wait` seconds of long poll (0: answer at
       * once).
       */
      function ask(after, wait, limit = PAGE_EVENTS) {
        abort = new AbortController();
        return api('/api/v1/events?after=' + after + '&limit=' + limit + '&wait=' + wait, { signal: abort.signal });
      }

      async function follow() {
        let after = 0;
        let logId = null;
        let caughtUp = false;
        /** Whether the page has chosen where to start: near the log's newest cursor. */
        let started = false;
        /** Whether the next page is the first after the start was chosen. */
        let skipped = false;
        while (!stopped) {
          try {
            // The first question reads no event: it learns the newest cursor (`limit=0`).
            const page = await (started ? ask(after, caughtUp ? WAIT_S : 0) : ask(after, 0, 0));
            if (stopped) return;
            if (logId !== null && page.log_id !== logId) {
              // The event log was recreated: cursors of the old one mean nothing; start over.
              body.replaceChildren();
              after = 0;
              caughtUp = false;
              started = false;
              logId = page.log_id;
              continue;
            }
            logId = page.log_id;
            if (!started) {
              // Review 1 finding 5: only the newest events are shown, so only they are read.
              after = Math.max(after, page.newest - START_BACK_EVENTS);
              started = true;
              skipped = true;
              continue;
            }
            show(page.events);
            // Events before the chosen start that retention removed were never to be read: only
            // a removal after the page began reading is worth a warning.
            const lost = page.truncated && !skipped;
            skipped = false;
            const moved = page.next_after !== after;
            after = page.next_after;
            if (!caughtUp && !moved) caughtUp = true;
            state.textContent = lost
              ? 'Some events were removed by retention before this page could read them. Following new events.'
              : caughtUp ? 'Following new events as they happen.' : 'Reading the events…';
            state.className = lost ? 'warn-text' : 'muted';
          } catch (e) {
            if (stopped || e.status === 401) return;
            state.textContent = 'The recorder does not answer (' + e.message + '); trying again.';
            state.className = 'error';
            await new Promise((resolve) => { timer = setTimeout(resolve, RETRY_MS); });
          }
        }
      }
      follow();
      return {
        stop() {
          stopped = true;
          clearTimeout(timer);
          if (abort) abort.abort();
        },
      };
    },
  };

  /** The filters each log takes beyond time, search and limit (`GET /api/v1/logs`, LG-6). */
  const FILTERS = {
    system: ['category', 'source', 'level'],
    rule: ['category', 'source', 'rule'],
    audit: ['user'],
  };
  /** The columns each log answers, after `id`, as the API names them. */
  const COLUMNS = {
    system: ['local_time', 'level', 'category', 'source_type', 'source_name', 'event_type', 'message'],
    rule: ['local_time', 'rule', 'event_type', 'category', 'source_type', 'source_name', 'message'],
    audit: ['local_time', 'user', 'peer', 'action', 'target', 'outcome', 'detail'],
  };
  /** Entries shown when the user asks for no other number. */
  const DEFAULT_LIMIT = 200;

  /** An RFC 3339 time of a `datetime-local` value (the browser's zone), or '' for none. */
  function isoOf(local) {
    if (!local) return '';
    const t = new Date(local);
    return isNaN(t) ? '' : t.toISOString();
  }

  /** The `datetime-local` value of an RFC 3339 time, for putting a query back into the form. */
  function localOf(iso) {
    const t = iso ? new Date(iso) : null;
    if (!t || isNaN(t)) return '';
    const pad = (n) => String(n).padStart(2, '0');
    return t.getFullYear() + '-' + pad(t.getMonth() + 1) + '-' + pad(t.getDate()) + 'T' + pad(t.getHours()) + ':' + pad(t.getMinutes());
  }

  UI.views.logs = {
    nav: 'Logs',
    title: 'logs',
    allowed: () => may('read_logs'),
    // The query lives in the hash (`#/logs?kind=audit&user=ann`): a reload or a shared link
    // shows the same entries.
    start(main, _args, query) {
      const kind = FILTERS[query.get('kind')] ? query.get('kind') : 'audit';
      const field = (name, label, input) => el('label', { class: 'field', 'data-filter': name }, label, input);
      const text = (name, placeholder) => el('input', { name, id: 'log-' + name, value: query.get(name) || '', placeholder: placeholder || '' });
      const kindSelect = el('select', { name: 'kind', id: 'log-kind' },
        ['audit', 'system', 'rule'].map((k) => el('option', { value: k, selected: k === kind }, k[0].toUpperCase() + k.slice(1) + ' log')));
      const level = el('select', { name: 'level', id: 'log-level' },
        el('option', { value: '' }, 'any'),
        ['info', 'warning', 'error'].map((l) => el('option', { value: l, selected: query.get('level') === l }, l + ' and above')));
      const from = el('input', { type: 'datetime-local', name: 'from', id: 'log-from', value: localOf(query.get('from')) });
      const to = el('input', { type: 'datetime-local', name: 'to', id: 'log-to', value: localOf(query.get('to')) });
      const limit = el('input', { type: 'number', name: 'limit', id: 'log-limit', min: 1, max: 10000, value: query.get('limit') || DEFAULT_LIMIT });
      const error = el('div', { class: 'error form-error', role: 'alert', id: 'logs-error' });
      const form = el('form', { class: 'filters', id: 'logs-form' },
        field('kind', 'Log', kindSelect),
        field('from', 'From', from),
        field('to', 'To', to),
        field('category', 'Category', text('category')),
        field('source', 'Source (camera, storage…)', text('source')),
        field('level', 'Level', level),
        field('rule', 'Rule', text('rule')),
        field('user', 'User', text('user')),
        field('q', 'Search', text('q', 'text in the entry')),
        field('limit', 'At most', limit),
        el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Show')),
        error);
      /** Shows only the filters the chosen log takes (the API refuses the others). */
      const showFilters = () => {
        for (const f of form.querySelectorAll('[data-filter]')) {
          const name = f.dataset.filter;
          f.hidden = ['category', 'source', 'level', 'rule', 'user'].includes(name) && !FILTERS[kindSelect.value].includes(name);
        }
      };
      kindSelect.addEventListener('change', showFilters);
      showFilters();

      /** The API query of the form's values: only filters of the chosen log, only those set. */
      const params = () => {
        const k = kindSelect.value;
        const p = new URLSearchParams({ kind: k });
        if (isoOf(from.value)) p.set('from', isoOf(from.value));
        if (isoOf(to.value)) p.set('to', isoOf(to.value));
        for (const name of FILTERS[k].concat(['q'])) {
          const v = form.elements[name].value.trim();
          if (v) p.set(name, v);
        }
        if (limit.value) p.set('limit', limit.value);
        return p;
      };
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const target = '#/logs?' + params().toString();
        // The same query again: the hash does not change, so load it here.
        if (location.hash === target) load();
        else location.hash = target;
      });

      const csv = el('a', { id: 'logs-csv', class: 'button', download: '' }, 'Download CSV');
      const count = el('p', { class: 'muted', id: 'logs-count' });
      const table = el('div', { class: 'table-wrap', id: 'logs-table' });
      main.replaceChildren(el('h1', {}, 'Logs'), form, el('div', { class: 'log-tools' }, count, csv), table);

      let stopped = false;
      async function load() {
        error.textContent = '';
        const p = params();
        const csvQuery = new URLSearchParams(p);
        csvQuery.set('format', 'csv');
        // LG-6: the CSV honours exactly the filters of the table.
        csv.setAttribute('href', '/api/v1/logs?' + csvQuery.toString());
        try {
          const page = await api('/api/v1/logs?' + p.toString());
          if (stopped) return;
          const cols = COLUMNS[page.kind];
          const rows = page.entries.map((e) => el('tr', { 'data-id': String(e.id) },
            cols.map((c) => el('td', { class: c === 'local_time' ? 'nowrap' : null, 'data-col': c }, e[c] === undefined ? '' : e[c]))));
          table.replaceChildren(el('table', { class: 'rows', id: 'logs-entries', 'data-kind': page.kind },
            el('thead', {}, el('tr', {}, cols.map((c) => el('th', {}, c === 'local_time' ? 'Time (' + page.time_zone + ')' : c.replace(/_/g, ' '))))),
            el('tbody', {}, rows)));
          count.textContent = page.entries.length + (page.entries.length === 1 ? ' entry' : ' entries') + ', newest first';
        } catch (e) {
          if (stopped) return;
          table.replaceChildren();
          count.textContent = '';
          error.textContent = e.message;
        }
      }
      load();
      return { stop() { stopped = true; } };
    },
  };
})();
