// Remote sites (issue 16, IC-10, IC-4b, IC-13): on `edgerec pull`, the central, each remote site's
// link (up, down, or waiting outside its window) with since when and its last error, and the bytes
// received; per mirrored camera its mode, what is retrieved and what is not yet, the transfer in
// progress, its error or why its retrievals are cancelled, and its manual ranges, which a user
// holding `retrieve_remote_recordings` on the camera asks for and cancels here (the server checks
// the same permission). Read from `/api/v1/status` every 3 s; the forms are kept across
// refreshes, so what a user types stays.
'use strict';

(() => {
  const { el, api, fmt, may, mayOn } = UI;
  /** How often the page reads the status again. */
  const REFRESH_MS = 3000;
  /** How many of a camera's retrieved or pending ranges are listed (the newest ones). */
  const SHOWN_RANGES = 4;

  function facts(rows) {
    return el('dl', { class: 'facts' }, rows.filter((r) => r[1] !== undefined).flatMap(([label, value, attrs]) =>
      [el('dt', {}, label), el('dd', attrs || {}, value)]));
  }

  /** Seconds covered by `ranges` ({from, to} in RFC 3339). */
  function seconds(ranges) {
    return ranges.reduce((s, r) => s + (Date.parse(r.to) - Date.parse(r.from)) / 1000, 0);
  }

  /** "from – to" of a range, the end without its date when it is the same day. */
  function span(r) {
    const a = new Date(r.from), b = new Date(r.to);
    const end = a.toDateString() === b.toDateString() ? b.toLocaleTimeString() : b.toLocaleString();
    return a.toLocaleString() + ' – ' + end;
  }

  /** The newest `SHOWN_RANGES` of `ranges` as a list, and how many more there are. */
  function rangeList(ranges, cls) {
    const shown = ranges.slice(-SHOWN_RANGES);
    const more = ranges.length - shown.length;
    return el('ul', { class: 'ranges ' + cls },
      shown.map((r) => el('li', {}, span(r))),
      more > 0 ? el('li', { class: 'muted' }, more + ' earlier') : null);
  }

  function linkLevel(s) {
    return s.link === 'up' ? 'ok' : s.link === 'waiting' ? 'warn' : 'bad';
  }

  /** A mirrored camera's colour and word: failing, cancelled, retrieving, behind, or caught up. */
  function cameraState(c) {
    if (c.cancelled) return ['off', 'cancelled'];
    if (c.last_error) return ['bad', 'failing'];
    if (c.transfer) return ['ok', 'retrieving'];
    if (c.pending.length) return ['warn', 'behind'];
    return ['ok', 'caught up'];
  }

  /** An RFC 3339 time of a `datetime-local` value (the browser's zone), or '' for none. */
  function isoOf(local) {
    if (!local) return '';
    const t = new Date(local);
    return isNaN(t) ? '' : t.toISOString();
  }

  /**
   * The form that asks for a manual range of camera `id` (IC-4b); made once per camera and kept,
   * so a refresh does not clear what the user typed. `done` reads the status again.
   */
  function rangeForm(id, done) {
    const from = el('input', { type: 'datetime-local', step: 1, name: 'from', required: true });
    const to = el('input', { type: 'datetime-local', step: 1, name: 'to', required: true });
    const error = el('div', { class: 'error form-error', role: 'alert' });
    const form = el('form', { class: 'filters range-form', 'data-camera': id },
      el('label', { class: 'field' }, 'From', from),
      el('label', { class: 'field' }, 'To', to),
      el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Retrieve')),
      error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const body = { from: isoOf(from.value), to: isoOf(to.value) };
      if (!body.from || !body.to) {
        error.textContent = 'Give a start and an end.';
        return;
      }
      try {
        await api('/api/v1/pull/cameras/' + encodeURIComponent(id) + '/ranges', { method: 'POST', json: body });
        from.value = '';
        to.value = '';
        done();
      } catch (e) {
        error.textContent = e.message;
      }
    });
    return form;
  }

  /**
   * One manual range, with a Cancel button while it is wanted and the user may cancel it. A
   * cancel under way (`kept.cancelling`) and its refusal (`kept.refused`) outlive a refresh.
   */
  function manualItem(c, r, may, kept) {
    const open = r.state === 'pending' || r.state === 'retrieving';
    const cancel = async () => {
      kept.cancelling.add(r.id);
      kept.refused.delete(r.id);
      kept.done();
      try {
        await api('/api/v1/pull/cameras/' + encodeURIComponent(c.camera) + '/ranges/' + r.id, { method: 'DELETE' });
      } catch (e) {
        kept.refused.set(r.id, e.message);
      }
      kept.cancelling.delete(r.id);
      kept.done();
    };
    const busy = kept.cancelling.has(r.id);
    return el('li', { 'data-range': r.id, 'data-state': r.state },
      span(r), ' ', el('span', { class: 'badge ' + (r.state === 'done' ? 'ok' : r.state === 'cancelled' ? 'off' : 'warn') }, r.state),
      r.cancelled ? el('div', { class: 'muted' }, r.cancelled) : null,
      open && may ? el('button', { type: 'button', class: 'cancel-range', onclick: cancel, disabled: busy }, busy ? 'Cancelling…' : 'Cancel') : null,
      kept.refused.has(r.id) ? el('div', { class: 'error' }, kept.refused.get(r.id)) : null);
  }

  /**
   * A list a user opens or closes (`key` within camera `c`), kept open or closed across
   * refreshes (`kept.open`); `first` whether it starts open.
   */
  function folding(kept, key, first, label, list) {
    const open = kept.open.has(key) || (first && !kept.closed.has(key));
    const ontoggle = (ev) => {
      (ev.target.open ? kept.open : kept.closed).add(key);
      (ev.target.open ? kept.closed : kept.open).delete(key);
    };
    return el('details', { open, ontoggle }, el('summary', {}, label), list);
  }

  function cameraCard(c, kept) {
    const [level, word] = cameraState(c);
    const retrieve = mayOn('retrieve_remote_recordings', c.camera);
    const done = kept.done;
    let form = null;
    if (retrieve) {
      form = kept.forms.get(c.camera) || rangeForm(c.camera, done);
      kept.forms.set(c.camera, form);
    }
    const t = c.transfer;
    return el('article', { class: 'card mirror ' + level, 'data-camera': c.camera, 'data-level': level },
      el('h3', {}, el('span', {}, c.camera, ' ', el('span', { class: 'id' }, '← ' + c.remote)), el('span', { class: 'badge ' + level }, word)),
      facts([
        ['Mode', c.mode],
        ['Retrieved', c.retrieved.length ? fmt.duration(seconds(c.retrieved)) + ' in ' + c.retrieved.length + (c.retrieved.length === 1 ? ' range' : ' ranges') : 'nothing yet', { class: 'retrieved' }],
        ['Not yet', c.pending.length ? fmt.duration(seconds(c.pending)) : 'nothing', { class: 'pending' }],
        ['Transfer', t ? span(t) + ', ' + fmt.bytes(t.bytes) : undefined, { class: 'transfer' }],
        ['Frames written', String(c.frames_written)],
      ]),
      c.retrieved.length ? folding(kept, c.camera + '/retrieved', false, 'Retrieved ranges', rangeList(c.retrieved, 'retrieved')) : null,
      c.pending.length ? folding(kept, c.camera + '/pending', true, 'Not yet retrieved', rangeList(c.pending, 'pending')) : null,
      c.cancelled ? el('div', { class: 'last-error cancelled' }, 'Retrievals cancelled: ' + c.cancelled) : null,
      c.last_error ? el('div', { class: 'last-error' }, c.last_error) : null,
      c.manual_ranges.length || form ? el('h4', {}, 'Ranges asked for') : null,
      c.manual_ranges.length ? el('ul', { class: 'manual' }, c.manual_ranges.slice().reverse().map((r) => manualItem(c, r, retrieve, kept))) : null,
      form,
      el('p', {}, el('a', { href: '#/playback/' + encodeURIComponent(c.camera) }, 'Play back')));
  }

  function siteSection(s, kept) {
    const level = linkLevel(s);
    return el('section', { class: 'site', 'data-site': s.name },
      el('article', { class: 'card site-card ' + level, 'data-level': level },
        el('h3', {}, el('span', {}, 'Site ' + s.name), el('span', { class: 'badge ' + level }, 'link ' + s.link)),
        facts([
          ['Address', s.url, { class: 'path' }],
          ['Since', s.since ? fmt.time(s.since) : '–'],
          ['Received', fmt.bytes(s.bytes_received)],
        ]),
        s.last_error ? el('div', { class: 'last-error' }, s.last_error) : null),
      s.cameras.length
        ? el('div', { class: 'cards' }, s.cameras.map((c) => cameraCard(c, kept)))
        : el('p', { class: 'muted' }, 'No mirrored cameras you may see.'));
  }

  function render(main, status, kept, updated) {
    const sites = (status.pull && status.pull.sites) || [];
    main.replaceChildren(
      el('h1', {}, 'Remote sites'),
      el('p', { class: 'muted' }, 'What this central mirrors from each remote recorder; mirrored recordings play back and export like local ones.'),
      ...(sites.length ? sites.map((s) => siteSection(s, kept)) : [el('p', { class: 'muted' }, 'No remote sites are configured.')]),
      el('p', { class: 'muted', id: 'updated' }, 'Updated ' + updated.toLocaleTimeString()));
  }

  UI.views.sites = {
    nav: 'Remote sites',
    title: 'remote sites',
    allowed: () => UI.pull() && may('status'),
    start(main) {
      let timer = null;
      let stopped = false;
      /** Kept across refreshes: the manual range forms by camera, the lists opened or closed. */
      const kept = {
        forms: new Map(), open: new Set(), closed: new Set(), cancelling: new Set(), refused: new Map(), done: () => tick(),
      };
      /** Whether the user is in a range form's field: the page is not redrawn under them then. */
      const typing = () => {
        const a = document.activeElement;
        return !!a && a.tagName === 'INPUT' && !!a.closest('form.range-form') && main.contains(a);
      };
      // One read at a time: a read asked for while one is under way (after a form's change)
      // follows it at once.
      let reading = false;
      let again = false;
      const tick = async () => {
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        clearTimeout(timer);
        let signedOut = false;
        try {
          const status = await api('/api/v1/status');
          // Review s31 UI1: a redraw moves the kept form, which closes a date picker and takes
          // the focus away; it waits until the user leaves the field.
          if (!stopped && !typing()) render(main, status, kept, new Date());
        } catch (e) {
          signedOut = e.status === 401;
          if (!stopped && !signedOut) {
            main.replaceChildren(el('h1', {}, 'Remote sites'), el('p', { class: 'error' }, 'The recorder does not answer: ' + e.message));
          }
        }
        reading = false;
        if (stopped || signedOut) return;
        if (again) {
          again = false;
          tick();
        } else {
          timer = setTimeout(tick, REFRESH_MS);
        }
      };
      main.replaceChildren(el('h1', {}, 'Remote sites'), el('p', { class: 'muted' }, 'Loading…'));
      tick();
      return { stop() { stopped = true; clearTimeout(timer); } };
    },
  };
})();
