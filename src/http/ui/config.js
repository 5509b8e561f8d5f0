// The raw TOML editor (issue 12 point 9, DESIGN §6): the fallback for everything the forms do not
// cover. It loads `GET /api/v1/config?format=toml` with its revision (the ETag) and saves with
// `PUT /api/v1/config` and `If-Match`, so a change made meanwhile by someone else is refused and
// said as such (the user's text stays in the editor). A refused document leaves the running
// config as it was; the page shows the server's file, line, key and reason and selects the line.
'use strict';

(() => {
  const { el, may } = UI;

  /**
   * One call of `/api/v1/config` with the page's session. The TOML text is not JSON, so this is
   * not `UI.api`; a 401 leads to the sign-in page and back, as there.
   */
  async function call(method, text, revision, signal) {
    const headers = { 'X-Requested-With': 'edgerec-ui', Accept: 'application/toml' };
    if (text !== undefined) headers['Content-Type'] = 'application/toml; charset=utf-8';
    if (revision !== undefined) headers['If-Match'] = '"' + revision + '"';
    const r = await fetch('/api/v1/config?format=toml', { method, headers, body: text, credentials: 'same-origin', cache: 'no-store', signal });
    if (r.status === 401) {
      location.hash = '#/login?next=' + encodeURIComponent('#/config');
      throw new UI.ApiError(401, 'unauthenticated', 'Please sign in.');
    }
    const body = await r.text();
    let json = null;
    try {
      json = JSON.parse(body);
    } catch (_) {
      json = null;
    }
    if (!r.ok) {
      const err = json && json.error ? json.error : { code: 'http_' + r.status, message: body || r.statusText };
      throw new UI.ApiError(r.status, err.code, err.message);
    }
    return { text: body, json, etag: r.headers.get('ETag') };
  }

  /**
   * The parts of a config error (`config::Origin`): `FILE:LINE: key `KEY`: REASON`, or
   * `FILE:LINE: REASON` for a TOML syntax error, or `FILE: key ...` without a line; null when the
   * message has another form.
   */
  function parseConfigError(message) {
    const m = /^(.+?):(?:(\d+):)? (?:key `([^`]+)`(?: of [^:]+)?: )?([\s\S]*)$/.exec(message);
    if (!m || (!m[2] && !m[3])) return null;
    return { file: m[1], line: m[2] ? Number(m[2]) : null, key: m[3] || null, reason: m[4] };
  }

  /** Selects line `line` (1-based) of `area`, so the user sees where the error is. */
  function selectLine(area, line) {
    const lines = area.value.split('\n');
    if (line < 1 || line > lines.length) return;
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + lines[line - 1].length);
    const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
    area.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  UI.views.config = {
    nav: 'Config',
    title: 'configuration',
    allowed: () => may('read_config'),
    start(main) {
      const canEdit = may('edit_config');
      let stopped = false;
      /** The revision the text in the editor was loaded from (what a save is made against). */
      let revision = null;
      let abort = new AbortController();
      const area = el('textarea', { id: 'config-text', spellcheck: 'false', autocomplete: 'off', wrap: 'off', readonly: canEdit ? null : true, 'aria-label': 'Configuration (TOML)' });
      const info = el('p', { class: 'muted', id: 'config-revision' });
      const message = el('div', { id: 'config-message', role: 'status' });
      const save = el('button', { class: 'primary', type: 'button', id: 'config-save', hidden: !canEdit }, 'Save');
      const reload = el('button', { type: 'button', id: 'config-reload' }, 'Reload');
      main.replaceChildren(
        el('h1', {}, 'Configuration'),
        el('p', { class: 'muted' }, 'The whole configuration file as TOML, for everything the other pages do not cover. A document with a mistake is refused and the running configuration stays as it is.'),
        info,
        el('div', { class: 'controls' }, save, reload),
        message,
        area);

      async function load() {
        message.replaceChildren();
        try {
          const r = await call('GET', undefined, undefined, abort.signal);
          if (stopped) return;
          area.value = r.text;
          revision = Number((r.etag || '').replace(/^W\//, '').replace(/"/g, ''));
          info.textContent = 'Revision ' + revision + (canEdit ? '' : ' (read only: you may not edit the configuration)');
          area.dataset.revision = String(revision);
        } catch (e) {
          if (!stopped && e.status !== 401) message.replaceChildren(el('p', { class: 'error' }, e.message));
        }
      }

      /** The server refused the document: file, line, key and reason, and the line selected. */
      function showInvalid(e) {
        const parts = parseConfigError(e.message);
        if (!parts) {
          message.replaceChildren(el('div', { class: 'error', id: 'config-error' }, e.message));
          return;
        }
        message.replaceChildren(el('div', { class: 'problem', id: 'config-error', role: 'alert' },
          el('strong', {}, 'Not saved: the configuration has a mistake. The running configuration is unchanged.'),
          el('dl', { class: 'facts' },
            el('dt', {}, 'File'), el('dd', { id: 'config-error-file' }, parts.file),
            el('dt', {}, 'Line'), el('dd', { id: 'config-error-line' }, parts.line === null ? '–' : String(parts.line)),
            el('dt', {}, 'Key'), el('dd', { id: 'config-error-key' }, parts.key || '–'),
            el('dt', {}, 'Reason'), el('dd', { id: 'config-error-reason' }, parts.reason))));
        if (parts.line) selectLine(area, parts.line);
      }

      /** Someone else saved meanwhile: the user's text stays; they may reload the new one. */
      function showConflict(e) {
        const again = el('button', { type: 'button', id: 'config-conflict-reload' }, 'Reload their version (your edits are lost)');
        again.addEventListener('click', load);
        message.replaceChildren(el('div', { class: 'problem', id: 'config-conflict', role: 'alert' },
          el('strong', {}, 'Not saved: someone else saved the configuration after you loaded it (revision ' + revision + ').'),
          el('p', {}, e.message),
          el('p', {}, 'Your text is still in the editor: copy what you need, reload, and apply your change again.'),
          again));
      }

      save.addEventListener('click', async () => {
        message.replaceChildren(el('p', { class: 'muted' }, 'Saving…'));
        try {
          const r = await call('PUT', area.value, revision, abort.signal);
          if (stopped) return;
          const done = r.json || {};
          revision = done.revision;
          area.dataset.revision = String(revision);
          info.textContent = 'Revision ' + revision;
          message.replaceChildren(el('div', { class: 'saved', id: 'config-saved' },
            el('strong', {}, 'Saved as revision ' + done.revision + '.'),
            (done.applied || []).length ? el('p', {}, 'Applied: ' + done.applied.join(', ') + '.') : el('p', {}, 'Nothing to apply.'),
            (done.restart_required || []).length ? el('p', { class: 'warn-text' }, 'Takes effect at the next start: ' + done.restart_required.join(', ') + '.') : null));
        } catch (e) {
          if (stopped || e.status === 401) return;
          if (e.status === 409) showConflict(e);
          else if (e.status === 400) showInvalid(e);
          else message.replaceChildren(el('div', { class: 'error', id: 'config-error' }, e.message));
        }
      });
      reload.addEventListener('click', load);
      load();
      return { stop() { stopped = true; abort.abort(); } };
    },
  };
})();
