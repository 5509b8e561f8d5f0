// The raw TOML editor (issue 12 point 9, DESIGN §6): the fallback for everything the forms do not
// cover. It loads `GET /api/v1/config?format=toml` with its revision (the ETag) and saves with
// `PUT /api/v1/config` and `If-Match`, so a change made meanwhile by someone else is refused and
// said as such (the user's text stays in the editor). A refused document leaves the running
// config as it was; the page shows the server's file, line, key and reason and selects the line.
// Unsaved text is never dropped without a word (review 1 finding 3): leaving the page or an
// ended session keeps it as a draft in this tab's sessionStorage, offered again when the page
// opens; Reload asks first. Save is offered only to a user the server lets replace the file.
'use strict';

(() => {
  const { el, may } = UI;

  /**
   * One call of `/api/v1/config` with the page's session. The TOML text is not JSON, so this is
   * not `UI.api`; a 401 is thrown to the page, which keeps the user's text before it signs in.
   */
  async function call(method, text, revision, signal) {
    const headers = { 'X-Requested-With': 'edgerec-ui', Accept: 'application/toml' };
    if (text !== undefined) headers['Content-Type'] = 'application/toml; charset=utf-8';
    if (revision !== undefined) headers['If-Match'] = '"' + revision + '"';
    const r = await fetch('/api/v1/config?format=toml', { method, headers, body: text, credentials: 'same-origin', cache: 'no-store', signal });
    if (r.status === 401) {
      // The page keeps the user's text before it goes to the sign-in page (review 1 finding 3).
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
    return { text: body, json, etag: r.headers.get('ETag'), mayReplace: r.headers.get('X-Edgerec-May-Replace') === 'true' };
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

  /**
   * Where the editor keeps unsaved text for this tab (review 1 finding 3): per user, so that
   * another user signing in here is never offered it (it may name cameras they may not see).
   */
  const draftKey = () => 'edgerec.config.draft.' + (UI.user() || '');

  /** The draft `{revision, text}` kept under `key`, or null. */
  function readDraft(key) {
    try {
      const d = JSON.parse(sessionStorage.getItem(key) || 'null');
      return d && typeof d.text === 'string' && typeof d.revision === 'number' ? d : null;
    } catch (_) {
      return null;
    }
  }

  UI.views.config = {
    nav: 'Config',
    title: 'configuration',
    allowed: () => may('read_config'),
    start(main) {
      let stopped = false;
      /** The revision the text in the editor was loaded from (what a save is made against). */
      let revision = null;
      /** The text as the server last gave or took it: the editor is "dirty" when it differs. */
      let loadedText = null;
      /**
       * Whether this user may save the whole document: `edit_config` and read on every camera,
       * as the server says in `X-Edgerec-May-Replace` (review 1 finding 9). Until the first
       * answer, nothing may be edited.
       */
      let canEdit = false;
      /** Whether a request is under way (review 1 finding 8: Save and Reload wait for it). */
      let busy = false;
      /** This user's draft key, taken now: signing out must not move the draft elsewhere. */
      const key = draftKey();
      const abort = new AbortController();
      const area = el('textarea', { id: 'config-text', spellcheck: 'false', autocomplete: 'off', wrap: 'off', readonly: true, 'aria-label': 'Configuration (TOML)' });
      const info = el('p', { class: 'muted', id: 'config-revision' });
      const message = el('div', { id: 'config-message', role: 'status' });
      const draftNote = el('div', { id: 'config-draft', hidden: true });
      const save = el('button', { class: 'primary', type: 'button', id: 'config-save', hidden: true }, 'Save');
      const reload = el('button', { type: 'button', id: 'config-reload' }, 'Reload');
      main.replaceChildren(
        el('h1', {}, 'Configuration'),
        el('p', { class: 'muted' }, 'The whole configuration file as TOML, for everything the other pages do not cover. A document with a mistake is refused and the running configuration stays as it is.'),
        info,
        el('div', { class: 'controls' }, save, reload),
        draftNote,
        message,
        area);

      const dirty = () => canEdit && loadedText !== null && area.value !== loadedText;

      /**
       * Keeps the unsaved text for this tab, or forgets the draft when the text is the saved one.
       * Before anything was loaded, a draft of an earlier visit stays as it is.
       */
      function keepDraft() {
        if (!canEdit || loadedText === null) return;
        try {
          if (dirty()) sessionStorage.setItem(key, JSON.stringify({ revision, text: area.value }));
          else sessionStorage.removeItem(key);
        } catch (_) {
          // Storage full or switched off: the page's own guards still ask before dropping text.
        }
      }

      function forgetDraft() {
        try {
          sessionStorage.removeItem(key);
        } catch (_) {
          // Nothing was kept.
        }
      }

      function setBusy(on) {
        busy = on;
        save.disabled = on;
        reload.disabled = on;
      }

      /** The session ended: keep the text, then sign in and come back here to restore it. */
      function signInAgain() {
        keepDraft();
        location.hash = '#/login?next=' + encodeURIComponent('#/config');
      }

      /** Offers the text kept from an earlier visit, if it differs from what the server has. */
      function offerDraft() {
        const d = readDraft(key);
        if (!d || !canEdit || d.text === area.value) {
          if (d) forgetDraft();
          return;
        }
        const restore = el('button', { type: 'button', class: 'primary', id: 'config-draft-restore' }, 'Restore my edits');
        const discard = el('button', { type: 'button', id: 'config-draft-discard' }, 'Discard them');
        restore.addEventListener('click', () => {
          area.value = d.text;
          // Saved against the revision it was made from: if someone saved since, the save is
          // refused as a conflict and the text stays, as for any conflict.
          revision = d.revision;
          area.dataset.revision = String(revision);
          draftNote.hidden = true;
        });
        discard.addEventListener('click', () => {
          forgetDraft();
          draftNote.hidden = true;
        });
        draftNote.replaceChildren(el('div', { class: 'problem', role: 'alert' },
          el('strong', {}, 'You have unsaved edits from earlier in this tab (made against revision ' + d.revision + ').'),
          d.revision !== revision ? el('p', {}, 'The configuration has changed since (now revision ' + revision + '): a save of your edits will be refused as a conflict, so that you can merge them.') : null,
          el('div', { class: 'controls' }, restore, discard)));
        draftNote.hidden = false;
      }

      /** Loads the server's document; `first` offers a kept draft (a user's Reload drops it). */
      async function load(first) {
        message.replaceChildren();
        draftNote.hidden = true;
        if (!first) forgetDraft();
        setBusy(true);
        try {
          const r = await call('GET', undefined, undefined, abort.signal);
          if (stopped) return;
          canEdit = may('edit_config') && r.mayReplace;
          area.readOnly = !canEdit;
          save.hidden = !canEdit;
          area.value = r.text;
          loadedText = r.text;
          revision = Number((r.etag || '').replace(/^W\//, '').replace(/"/g, ''));
          info.textContent = 'Revision ' + revision + (canEdit ? ''
            : may('edit_config')
              ? ' (read only: it names cameras you may not see, so you may not save the whole file; change single cameras through /api/v1/config/cameras/{id})'
              : ' (read only: you may not edit the configuration)');
          area.dataset.revision = String(revision);
          if (first) offerDraft();
        } catch (e) {
          if (stopped) return;
          if (e.status === 401) signInAgain();
          else message.replaceChildren(el('p', { class: 'error' }, e.message));
        } finally {
          if (!stopped) setBusy(false);
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
        again.addEventListener('click', () => load(false));
        message.replaceChildren(el('div', { class: 'problem', id: 'config-conflict', role: 'alert' },
          el('strong', {}, 'Not saved: someone else saved the configuration after you loaded it (revision ' + revision + ').'),
          el('p', {}, e.message),
          el('p', {}, 'Your text is still in the editor: copy what you need, reload, and apply your change again.'),
          again));
      }

      save.addEventListener('click', async () => {
        if (busy || !canEdit) return;
        setBusy(true);
        message.replaceChildren(el('p', { class: 'muted' }, 'Saving…'));
        const text = area.value;
        try {
          const r = await call('PUT', text, revision, abort.signal);
          if (stopped) return;
          const done = r.json || {};
          revision = done.revision;
          loadedText = text;
          forgetDraft();
          area.dataset.revision = String(revision);
          info.textContent = 'Revision ' + revision;
          message.replaceChildren(el('div', { class: 'saved', id: 'config-saved' },
            el('strong', {}, 'Saved as revision ' + done.revision + '.'),
            (done.applied || []).length ? el('p', {}, 'Applied: ' + done.applied.join(', ') + '.') : el('p', {}, 'Nothing to apply.'),
            (done.restart_required || []).length ? el('p', { class: 'warn-text' }, 'Takes effect at the next start: ' + done.restart_required.join(', ') + '.') : null));
        } catch (e) {
          if (stopped) return;
          if (e.status === 401) signInAgain();
          else if (e.status === 409) showConflict(e);
          else if (e.status === 400) showInvalid(e);
          else message.replaceChildren(el('div', { class: 'error', id: 'config-error' }, e.message));
        } finally {
          if (!stopped) setBusy(false);
        }
      });

      // Review 1 finding 3: Reload asks before it drops unsaved text.
      reload.addEventListener('click', () => {
        if (busy) return;
        if (!dirty()) {
          load(false);
          return;
        }
        const drop = el('button', { type: 'button', class: 'danger', id: 'config-reload-confirm' }, 'Drop my edits and reload');
        const keep = el('button', { type: 'button', id: 'config-reload-cancel' }, 'Keep editing');
        drop.addEventListener('click', () => load(false));
        keep.addEventListener('click', () => message.replaceChildren());
        message.replaceChildren(el('div', { class: 'problem', id: 'config-reload-ask', role: 'alert' },
          el('strong', {}, 'Reload replaces your unsaved edits with the saved configuration.'),
          el('div', { class: 'controls' }, drop, keep)));
      });

      // Leaving the page (another page, a reload, closing the tab) keeps the unsaved text for
      // this tab, and the browser asks before the tab goes.
      const beforeUnload = (ev) => {
        keepDraft();
        if (dirty()) {
          ev.preventDefault();
          ev.returnValue = '';
        }
      };
      window.addEventListener('beforeunload', beforeUnload);
      load(true);
      return {
        stop() {
          keepDraft();
          stopped = true;
          abort.abort();
          window.removeEventListener('beforeunload', beforeUnload);
        },
      };
    },
  };
})();
