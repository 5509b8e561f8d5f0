// Archives (issue 13, AR-1, AR-2, AR-8, ST-7): each storage's chain as data moves through it, the
// ring first and then each archive stage in order, with what the stage holds (bytes, hour slices,
// oldest and newest record), whether it is available (an unmounted share says why), and its last
// round (when, how many slices it copied and deleted, and its error). Read from `/api/v1/status`
// every 5 s, so an archive that goes away or comes back shows without a reload.
'use strict';

(() => {
  const { el, api, fmt, may } = UI;
  /** How often the page reads the status again. */
  const REFRESH_MS = 5000;

  /** A fact list from [label, value, attrs?] rows, skipping rows whose value is undefined. */
  function facts(rows) {
    return el('dl', { class: 'facts' }, rows.filter((r) => r[1] !== undefined).flatMap(([label, value, attrs]) =>
      [el('dt', {}, label), el('dd', attrs || {}, value)]));
  }

  /** The ring of storage `s`: the first tier, which every stage is fed from. */
  function ringCard(s) {
    const level = s.state === 'available' ? 'ok' : s.state === 'stalled' ? 'warn' : 'bad';
    const days = s.recording_days_at_current_rate;
    return el('article', { class: 'card tier ring ' + level, 'data-tier': 'ring', 'data-level': level },
      el('h3', {}, el('span', {}, 'Ring'), el('span', { class: 'badge ' + level }, s.state.replace(/_/g, ' '))),
      facts([
        ['Used', fmt.bytes(s.used_bytes) + ' of ' + fmt.bytes(s.capacity_bytes)],
        ['Oldest', fmt.time(s.oldest_recording)],
        ['Newest', fmt.time(s.newest_recording)],
        ['Retention', s.retention_days + ' days'],
        ['Holds', days === undefined || days === null ? '–' : '≈ ' + days.toFixed(1) + ' days at this rate'],
      ]));
  }

  /** One archive stage (`n` counts from 1) of a storage's chain. */
  function stageCard(a, n) {
    const level = a.available ? (a.last_round && a.last_round.error ? 'warn' : 'ok') : 'bad';
    const round = a.last_round;
    const days = a.days_at_current_rate;
    return el('article', { class: 'card tier stage ' + level, 'data-stage': a.name, 'data-level': level },
      el('h3', {}, el('span', {}, 'Stage ' + n + ' ', el('span', { class: 'id' }, a.name)),
        el('span', { class: 'badge ' + level }, a.available ? 'available' : 'unavailable')),
      facts([
        ['Path', a.path, { class: 'path' }],
        ['Holds', fmt.bytes(a.bytes) + ' in ' + a.slices + (a.slices === 1 ? ' hour slice' : ' hour slices'), { class: 'held' }],
        ['Oldest', fmt.time(a.oldest_record)],
        ['Newest', fmt.time(a.newest_record)],
        ['Lasts', days === undefined ? undefined : days === null ? '–' : '≈ ' + days.toFixed(1) + ' days at this rate'],
        ['Last round', round ? fmt.time(round.start) + ' – ' + fmt.time(round.end) : 'none yet', { class: 'round' }],
        ['Copied / deleted', round ? round.copied + ' / ' + round.deleted : '–'],
      ]),
      a.available ? null : el('div', { class: 'last-error unavailable-reason' }, a.unavailable_reason || 'The archive cannot be reached.'),
      round && round.error ? el('div', { class: 'last-error round-error' }, round.error) : null);
  }

  function render(main, status, updated) {
    const storages = status.storages || [];
    main.replaceChildren(
      el('h1', {}, 'Archives'),
      el('p', { class: 'muted' }, 'Data moves from each storage\'s ring to its first archive stage, then to the next; ' +
        'recordings, playback and export read every tier as one.'),
      ...storages.map((s) => {
        const stages = s.archives || [];
        return el('section', { class: 'chain', 'data-storage': s.id },
          el('h2', {}, 'Storage ' + s.id),
          el('div', { class: 'cards' }, ringCard(s), stages.map((a, i) => stageCard(a, i + 1))),
          stages.length ? null : el('p', { class: 'muted no-stages' }, 'No archive stages: the ring alone keeps this storage\'s recordings.'));
      }),
      el('p', { class: 'muted', id: 'updated' }, 'Updated ' + updated.toLocaleTimeString()));
  }

  UI.views.archives = {
    nav: 'Archives',
    title: 'archives',
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
          main.replaceChildren(el('h1', {}, 'Archives'), el('p', { class: 'error' }, 'The recorder does not answer: ' + e.message));
        }
        if (!stopped) timer = setTimeout(tick, REFRESH_MS);
      };
      main.replaceChildren(el('h1', {}, 'Archives'), el('p', { class: 'muted' }, 'Loading…'));
      tick();
      return { stop() { stopped = true; clearTimeout(timer); } };
    },
  };
})();
