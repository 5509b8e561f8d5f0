// Users and roles (issue 12 point 8; AU-1, AU-3, AU-4, PR-1..PR-3, PR-5, PR-9): list, add and
// delete users, reset a password, assign roles; list roles, edit a role's recorder permissions,
// per-camera grants (the evidence lock ones too) and evidence lock profile (EL-6), its incident
// permissions (issue 15, IM-12), delete a role. Every form shows the server's error next to it; the server
// checks every rule (password policy, P2/P3, the built-in Administrators role) itself.
'use strict';

(() => {
  const { el, api, may } = UI;

  /**
   * The permissions a role may be given, as `auth::perm` names them (`Permission::grantable`).
   * A grant of a permission not listed here (a newer server) is kept as it is when a role is saved.
   */
  const CAMERA_PERMISSIONS = ['read', 'view_live', 'playback', 'export', 'smart_search', 'manual_recording',
    // Issue 13 (EL-6, EL-7): the evidence lock permissions, per camera.
    'evidence_lock_create', 'evidence_lock_view', 'evidence_lock_extend', 'evidence_lock_delete',
    // Issue 15 (BK-1): the bookmark permissions, per camera.
    'bookmark_view', 'bookmark_create', 'bookmark_edit', 'bookmark_delete'];
  const RECORDER_PERMISSIONS = ['connect', 'status', 'read_config', 'edit_config', 'manage_users', 'read_logs', 'trigger_events'];
  /** Issue 15 (IM-12): the incident nodes' View and Manage (recorder scope; Manage implies View, P6). */
  const INCIDENT_PERMISSIONS = ['incident_properties_view', 'incident_properties_manage', 'incident_projects_view', 'incident_projects_manage'];

  /** A select of one grant's value: unset, Allow or Deny (PR-2: Deny beats Allow across roles). */
  function valueSelect(value, attrs) {
    return el('select', attrs,
      el('option', { value: '', selected: value === undefined }, '–'),
      el('option', { value: 'allow', selected: value === true }, 'Allow'),
      el('option', { value: 'deny', selected: value === false }, 'Deny'));
  }

  /** A button that asks once more before `action` runs: "Delete" becomes "Really delete X?". */
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

  /** Role check boxes for a user (`checked` roles ticked). */
  function roleBoxes(roles, checked, prefix) {
    return el('div', { class: 'checks' }, roles.map((r) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'role', value: r.name, checked: checked.includes(r.name), 'data-role': r.name, id: prefix + '-' + r.name }),
      ' ', r.name)));
  }

  const ticked = (box) => [...box.querySelectorAll('input[name=role]:checked')].map((i) => i.value);

  UI.views.users = {
    nav: 'Users',
    title: 'users and roles',
    allowed: () => may('manage_users'),
    start(main, args) {
      let stopped = false;
      main.replaceChildren(el('h1', {}, 'Users and roles'), el('p', { class: 'muted' }, 'Loading…'));

      async function load() {
        let users;
        let roles;
        // Issue 13 (EL-6): each role has one evidence lock profile; the editor offers them.
        let profiles;
        try {
          [users, roles, profiles] = await Promise.all([api('/api/v1/users'), api('/api/v1/roles'),
            api('/api/v1/evidence-lock-profiles').then((p) => p.profiles.map((x) => x.name), () => [])]);
        } catch (e) {
          if (!stopped) main.replaceChildren(el('h1', {}, 'Users and roles'), el('p', { class: 'error' }, e.message));
          return;
        }
        if (stopped) return;
        users = users.users;
        roles = roles.roles;
        // `#/users/role/NAME` opens that role's editor (and `#/users/role` a new one).
        const editing = args[0] === 'role' ? (args[1] || '') : null;
        main.replaceChildren(
          el('h1', {}, 'Users and roles'),
          el('h2', {}, 'Users'),
          usersTable(users, roles),
          addUserForm(roles),
          el('h2', {}, 'Roles'),
          rolesTable(roles),
          el('p', {}, el('a', { href: '#/users/role', class: 'button', id: 'role-new' }, 'New role')),
          editing === null ? null : roleEditor(roles.find((r) => r.name === editing) || null, editing, roles, profiles));
        const editor = main.querySelector('#role-editor');
        if (editor) editor.scrollIntoView();
      }

      /**
       * Runs a change; its error goes into `error` next to the form, and success reloads the
       * page's lists unless `reload` is false (the caller goes elsewhere).
       */
      async function change(error, fn, reload = true) {
        error.textContent = '';
        try {
          await fn();
        } catch (e) {
          error.textContent = e.message;
          return false;
        }
        if (reload && !stopped) await load();
        return true;
      }

      function usersTable(users, roles) {
        const rows = users.map((u) => {
          const error = el('div', { class: 'error form-error', role: 'alert' });
          const boxes = roleBoxes(roles, u.roles, 'user-' + u.name);
          const path = '/api/v1/users/' + encodeURIComponent(u.name);
          const saveRoles = el('button', { type: 'button', class: 'save-roles' }, 'Save roles');
          saveRoles.addEventListener('click', () => change(error, () => api(path + '/roles', { method: 'PUT', json: { roles: ticked(boxes) } })));
          // AU-4: an administrator sets a new password, and may require a change at the next login.
          const password = el('input', { type: 'password', class: 'new-password', autocomplete: 'new-password', placeholder: 'New password', 'aria-label': 'New password for ' + u.name });
          const mustChange = el('input', { type: 'checkbox', class: 'must-change', checked: true });
          const reset = el('form', { class: 'inline reset-password' },
            password,
            el('label', { class: 'check' }, mustChange, ' must change at next sign-in'),
            el('button', { type: 'submit' }, 'Set password'));
          reset.addEventListener('submit', (ev) => {
            ev.preventDefault();
            change(error, () => api(path + '/password', { method: 'PUT', json: { password: password.value, must_change_password: mustChange.checked } }));
          });
          const del = confirmButton('Delete', 'Really delete ' + u.name + '?', () => change(error, () => api(path, { method: 'DELETE' })), { class: 'delete-user' });
          const state = [u.enabled ? null : 'disabled', u.must_change_password ? 'must change password' : null, u.locked_until ? 'locked until ' + UI.fmt.time(u.locked_until) : null].filter(Boolean);
          return el('tr', { 'data-user': u.name },
            el('td', {}, el('strong', {}, u.name), state.length ? el('div', { class: 'muted' }, state.join(', ')) : null),
            el('td', {}, boxes, saveRoles),
            el('td', {}, reset, del, error));
        });
        return el('div', { class: 'table-wrap' }, el('table', { class: 'rows', id: 'users' },
          el('thead', {}, el('tr', {}, el('th', {}, 'User'), el('th', {}, 'Roles'), el('th', {}, 'Password, delete'))),
          el('tbody', {}, rows)));
      }

      function addUserForm(roles) {
        const error = el('div', { class: 'error form-error', role: 'alert', id: 'user-add-error' });
        const boxes = roleBoxes(roles, [], 'add');
        const form = el('form', { class: 'panel', id: 'user-add' },
          el('h3', {}, 'Add a user'),
          el('label', { class: 'field' }, 'User name', el('input', { id: 'user-add-name', autocomplete: 'off', required: true })),
          el('label', { class: 'field' }, 'Password', el('input', { id: 'user-add-password', type: 'password', autocomplete: 'new-password', required: true })),
          el('p', { class: 'muted' }, '8 or more characters with a digit, a lower-case and an upper-case letter and a symbol.'),
          el('div', {}, 'Roles'), boxes,
          el('label', { class: 'check' }, el('input', { type: 'checkbox', id: 'user-add-must-change' }), ' must change the password at the first sign-in'),
          el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Add user')),
          error);
        form.addEventListener('submit', (ev) => {
          ev.preventDefault();
          change(error, () => api('/api/v1/users', {
            method: 'POST',
            json: {
              name: form.querySelector('#user-add-name').value.trim(),
              password: form.querySelector('#user-add-password').value,
              roles: ticked(boxes),
              must_change_password: form.querySelector('#user-add-must-change').checked,
            },
          }));
        });
        return form;
      }

      function rolesTable(roles) {
        const rows = roles.map((r) => {
          const error = el('div', { class: 'error form-error', role: 'alert' });
          const summary = r.builtin ? 'everything (built in, cannot be changed)' : r.grants.length
            ? r.grants.map((g) => (g.allow ? '' : 'deny ') + g.permission + (g.camera ? ' on ' + g.camera : '')).join(', ')
            : 'nothing';
          return el('tr', { 'data-role': r.name },
            el('td', {}, el('strong', {}, r.name), r.description ? el('div', { class: 'muted' }, r.description) : null),
            el('td', {}, summary, r.warnings.map((w) => el('div', { class: 'warn-text' }, w))),
            el('td', {}, r.builtin ? null : [
              el('a', { href: '#/users/role/' + encodeURIComponent(r.name), class: 'button edit-role' }, 'Edit'),
              ' ',
              confirmButton('Delete', 'Really delete ' + r.name + '?', () => change(error, () => api('/api/v1/roles/' + encodeURIComponent(r.name), { method: 'DELETE' })), { class: 'delete-role' }),
              error]));
        });
        return el('div', { class: 'table-wrap' }, el('table', { class: 'rows', id: 'roles' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Role'), el('th', {}, 'Grants'), el('th', {}, ''))),
          el('tbody', {}, rows)));
      }

      /**
       * The editor of `role` (null: a new one named `name`, maybe empty; `roles` are all roles,
       * whose names a new one must not take): recorder permissions,
       * then camera permissions for all cameras (present and future, PR-3) and per camera. A
       * permission with an overall value has no per-camera values (P2), so its per-camera choices
       * are disabled while one is set.
       */
      function roleEditor(role, name, roles, profiles) {
        const grants = role ? role.grants : [];
        const valueOf = (p, camera) => {
          const g = grants.find((x) => x.permission === p && (x.camera || null) === camera);
          return g ? g.allow : undefined;
        };
        // Cameras the user sees, and any a grant names that no longer exists (kept, not lost).
        const cameras = UI.cameras().map((c) => c.id);
        for (const g of grants) if (g.camera && !cameras.includes(g.camera)) cameras.push(g.camera);
        const known = CAMERA_PERMISSIONS.concat(RECORDER_PERMISSIONS, INCIDENT_PERMISSIONS);
        const kept = grants.filter((g) => !known.includes(g.permission));
        const error = el('div', { class: 'error form-error', role: 'alert', id: 'role-error' });
        const nameInput = el('input', { id: 'role-name', value: name, required: true, readonly: role ? true : null });
        const description = el('input', { id: 'role-description', value: role ? role.description : '' });
        // EL-6: a role's lock profile (a new role gets Default unless another is chosen).
        const current = role ? role.evidence_lock_profile : 'Default';
        const profileNames = profiles.includes(current) ? profiles : profiles.concat([current]);
        const profile = el('select', { id: 'role-lock-profile' },
          profileNames.map((p) => el('option', { value: p, selected: p === current }, p)));
        const recorder = el('div', { class: 'grid-form' }, RECORDER_PERMISSIONS.map((p) => el('label', { class: 'field' }, p.replace(/_/g, ' '),
          valueSelect(valueOf(p, null), { 'data-permission': p, 'data-camera': '' }))));
        const incident = el('div', { class: 'grid-form', id: 'role-incidents' }, INCIDENT_PERMISSIONS.map((p) => el('label', { class: 'field' }, p.replace(/^incident_/, '').replace(/_/g, ' '),
          valueSelect(valueOf(p, null), { 'data-permission': p, 'data-camera': '' }))));
        const cameraRows = CAMERA_PERMISSIONS.map((p) => {
          const overall = valueSelect(valueOf(p, null), { 'data-permission': p, 'data-camera': '', 'aria-label': p + ' on all cameras' });
          const per = cameras.map((c) => valueSelect(valueOf(p, c), { 'data-permission': p, 'data-camera': c, 'aria-label': p + ' on ' + c }));
          const sync = () => per.forEach((s) => { s.disabled = overall.value !== ''; });
          overall.addEventListener('change', sync);
          sync();
          return el('tr', {}, el('th', {}, p.replace(/_/g, ' ')), el('td', {}, overall), per.map((s) => el('td', {}, s)));
        });
        const cameraTable = el('div', { class: 'table-wrap' }, el('table', { class: 'rows grants', id: 'role-cameras' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Permission'), el('th', {}, 'All cameras'), cameras.map((c) => el('th', {}, c)))),
          el('tbody', {}, cameraRows)));
        const form = el('form', { class: 'panel', id: 'role-editor' },
          el('h3', {}, role ? 'Role ' + role.name : 'New role'),
          el('label', { class: 'field' }, 'Name', nameInput),
          el('label', { class: 'field' }, 'Description', description),
          el('label', { class: 'field' }, 'Evidence lock profile', profile),
          el('h4', {}, 'Recorder permissions'),
          recorder,
          el('h4', {}, 'Incident permissions'),
          el('p', { class: 'muted' }, 'Manage includes view (create, edit and delete as well); operators need properties view to use the types, statuses, categories and data fields.'),
          incident,
          el('h4', {}, 'Camera permissions'),
          el('p', { class: 'muted' }, '"All cameras" covers cameras added later too; a camera needs read for anything else on it.'),
          cameraTable,
          role && role.warnings.length ? el('div', { class: 'warn-text' }, role.warnings.join(' ')) : null,
          el('div', { class: 'actions' },
            el('button', { class: 'primary', type: 'submit' }, 'Save role'), ' ',
            el('a', { href: '#/users', class: 'button' }, 'Close')),
          error);
        form.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          const out = kept.slice();
          for (const s of form.querySelectorAll('select[data-permission]')) {
            if (s.disabled || !s.value) continue;
            out.push({ permission: s.dataset.permission, camera: s.dataset.camera || null, allow: s.value === 'allow' });
          }
          const target = nameInput.value.trim();
          // Review 1 finding 4: the new-role form never replaces an existing role of the same
          // name (its members would lose their permissions without a word). The page says so at
          // once, and `If-None-Match: *` makes the server refuse one made meanwhile.
          if (!role && roles.some((r) => r.name === target)) {
            error.replaceChildren('A role named ' + target + ' exists already; ',
              el('a', { href: '#/users/role/' + encodeURIComponent(target) }, 'edit it'), ' instead, or choose another name.');
            return;
          }
          const ok = await change(error, () => api('/api/v1/roles/' + encodeURIComponent(target), {
            method: 'PUT', json: { description: description.value, grants: out, evidence_lock_profile: profile.value },
            headers: role ? {} : { 'If-None-Match': '*' },
          }), false);
          if (ok) location.hash = '#/users';
        });
        return form;
      }

      load();
      return { stop() { stopped = true; } };
    },
  };
})();
