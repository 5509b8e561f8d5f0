// Playback (issue 12 point 5): pick a camera the user may play back and a day; a timeline shows
// the day's recordings (REC-11 runs), motion spans and events, with the gaps between runs
// visible; a click plays from that moment through `playback.mp4` (the export's virtual MP4 with
// Range support, under the playback permission, which a <video> plays directly), one window after
// another across runs; a range dragged across the timeline downloads as MP4 through the export.
'use strict';

(() => {
  const { el, api, may, mayOn } = UI;
  /** The longest export one window asks for: the MP4's header grows with the frames it lists.
   * The server's `PLAYBACK_WINDOW_US` (playback.mp4 refuses more than it plus 5 min). */
  const WINDOW_MS = 10 * 60 * 1000;
  /** The timeline's zoom levels: seconds across its width, with the step between its labels. */
  const SPANS = [
    { s: 86400, label: '24 h' },
    { s: 6 * 3600, label: '6 h' },
    { s: 3600, label: '1 h' },
    { s: 600, label: '10 min' },
    { s: 60, label: '1 min' },
  ];
  /** Steps between the timeline's labels, in seconds: the first that leaves room for a label. */
  const TICKS_S = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
  /** The room a label needs, in CSS pixels, with a gap: `00:00` and `00:00:00` in the axis' small type. */
  const LABEL_PX = { minutes: 56, seconds: 84 };
  /** Wait before asking again for recordings once playback has caught up with the newest one. */
  const CATCH_UP_MS = 3000;
  /** The shortest window played on near today's newest recording: less waits for more (each window is a request, a plan and a decode from a key frame). */
  const MIN_WINDOW_MS = 5000;
  /** A press that moves less than this many CSS pixels is a click, more is a range selection. */
  const DRAG_PX = 6;
  /** What an MJPEG camera's playback says (review-b 6, issue 14): no browser plays MJPEG in an MP4. */
  const MJPEG_NOTE = 'This browser cannot play MJPEG recordings; use Download (ffmpeg/VLC play them).';
  /** Events are read 1000 at a time (the API's cap); at most this many pages for one day. */
  const MAX_EVENT_PAGES = 20;

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  /** `YYYY-MM-DD` of a local date. */
  const dayText = (d) => d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  /** Local `HH:MM:SS`, with tenths when `tenths`. */
  function clockText(ms, tenths) {
    const d = new Date(ms);
    const s = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    return tenths ? s + '.' + Math.floor(d.getMilliseconds() / 100) : s;
  }
  /** A length of time a person reads: `1 h 3 min`, `4 min 10 s`, `7 s`. */
  function lengthText(ms) {
    const s = Math.round(ms / 1000);
    if (s >= 3600) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
    if (s >= 60) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return s + ' s';
  }
  /**
   * The MP4 of `camera` over [from, to) (ms): `playback.mp4` for the player (needs `playback`),
   * `export.mp4` for the download link (needs `export`). Both are the same virtual MP4.
   */
  function mp4Url(file, camera, fromMs, toMs) {
    return '/api/v1/cameras/' + encodeURIComponent(camera) + '/' + file + '?from=' +
      encodeURIComponent(new Date(fromMs).toISOString()) + '&to=' + encodeURIComponent(new Date(toMs).toISOString());
  }
  /** The spans of an API list (`{start, end}` in RFC 3339) in ms. */
  const spansOf = (list) => list.map((r) => ({ start: Date.parse(r.start), end: Date.parse(r.end) }))
    .filter((r) => r.end > r.start).sort((a, b) => a.start - b.start);

  /** Whether event `e` is about `camera`: its own camera, or one its data names. */
  function eventOf(e, camera) {
    if (e.camera) return e.camera === camera;
    const named = e.data && Array.isArray(e.data.cameras) ? e.data.cameras : null;
    return !!named && named.includes(camera);
  }

  /** The events of `camera` in [fromMs, toMs), read page by page; `partial` when capped. */
  async function dayEvents(camera, fromMs, toMs) {
    const found = [];
    let after = 0;
    for (let page = 0; page < MAX_EVENT_PAGES; page++) {
      const p = await api('/api/v1/events?after=' + after + '&limit=1000');
      for (const e of p.events) {
        const t = Date.parse(e.time);
        if (t >= fromMs && t < toMs && eventOf(e, camera)) found.push({ t, kind: e.kind, name: e.name, message: e.message });
      }
      const last = p.events.length ? Date.parse(p.events[p.events.length - 1].time) : null;
      if (p.next_after === after || (last !== null && last >= toMs)) return { events: found, partial: false };
      after = p.next_after;
    }
    return { events: found, partial: true };
  }

  /** The playback page of `camera` on local day `day` (a Date at its midnight). */
  function page(main, cams, camera, day, spanS) {
    const dayStart = day.getTime();
    const dayEnd = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1).getTime();
    let stopped = false;
    let timers = [];
    const later = (fn, ms) => { const t = setTimeout(() => { timers = timers.filter((x) => x !== t); if (!stopped) fn(); }, ms); timers.push(t); };
    /** The day's runs, motion spans and events, in ms. */
    let runs = [];
    let motion = [];
    let events = [];
    /** The part of the day the timeline shows. */
    let span = SPANS.find((s) => s.s === spanS) || SPANS[0];
    let viewStart = dayStart;
    /** The range chosen for download, or null. */
    let selection = null;
    /** The window the video plays: its wall-clock start and end (ms), or null. */
    let playing = null;
    /** Counts the windows started: a wait or request begun for an older one must not act (a click overrides it). */
    let generation = 0;
    /** Wall-clock time of the frame on screen (ms), or null. */
    let shownMs = null;

    const goto = (cam, d) => { location.hash = '#/playback/' + encodeURIComponent(cam) + '?day=' + d + '&span=' + span.s; };
    const pickCamera = el('select', { id: 'pb-camera', 'aria-label': 'Camera', onchange: (e) => goto(e.target.value, dayText(day)) },
      cams.map((c) => el('option', { value: c.id, selected: c.id === camera }, c.name || c.id)));
    const pickDay = el('input', { id: 'pb-day', type: 'date', value: dayText(day), max: dayText(new Date()), 'aria-label': 'Day',
      onchange: (e) => { if (e.target.value) goto(camera, e.target.value); } });
    const pickSpan = el('select', { id: 'pb-span', 'aria-label': 'Zoom', onchange: (e) => zoom(Number(e.target.value)) },
      SPANS.map((s) => el('option', { value: s.s, selected: s === span }, s.label)));
    const earlier = el('button', { type: 'button', id: 'pb-earlier', title: 'Earlier', onclick: () => pan(-0.5) }, '◀');
    const laterBtn = el('button', { type: 'button', id: 'pb-later', title: 'Later', onclick: () => pan(0.5) }, '▶');
    // A moment typed to the second: where a finger on a phone's timeline cannot be that exact.
    const pickTime = el('input', { id: 'pb-time', type: 'time', step: 1, 'aria-label': 'Time to play from' });
    const go = el('button', { type: 'button', id: 'pb-go', onclick: () => goToTime() }, 'Play from');

    const track = el('div', { class: 'pb-track', id: 'pb-track', title: 'Click to play from a moment, drag to choose a range' });
    const axis = el('div', { class: 'pb-axis', 'aria-hidden': 'true' });
    const summary = el('p', { class: 'muted', id: 'pb-summary' }, 'Loading recordings…');
    const video = el('video', { id: 'pb-video', controls: true, playsinline: true, preload: 'auto' });
    const clock = el('div', { class: 'pb-clock', id: 'pb-clock', 'aria-live': 'off' }, '–');
    const note = el('p', { class: 'pb-note', id: 'pb-note', role: 'status' });
    const markIn = el('button', { type: 'button', id: 'pb-mark-in', onclick: () => mark(0) }, 'Range starts here');
    const markOut = el('button', { type: 'button', id: 'pb-mark-out', onclick: () => mark(1) }, 'Range ends here');
    const download = el('div', { class: 'pb-download', id: 'pb-download-box' });
    const mayExport = mayOn('export', camera);
    // Issue 13 (EL-1): the range chosen, else the part of the timeline shown, opens the lock form.
    // The lock pages show only locks the user may see, so the link needs view as well as create.
    const lockLink = mayOn('evidence_lock_create', camera) && mayOn('evidence_lock_view', camera) ? el('a', { id: 'pb-lock', class: 'button' }, 'Lock this range') : null;
    // Issue 15 (IM-10): the same range, as a sequence of a new or an existing incident project.
    const incidentLink = may('incident_projects_manage') ? el('a', { id: 'pb-incident', class: 'button' }, 'Add to incident') : null;
    /** Review-b 6 (issue 14): no browser plays MJPEG in an MP4 (`mp4v`, 0x6C); say so, not a vague failure. */
    const cam = cams.find((c) => c.id === camera);
    const isMjpeg = !!cam && cam.codec === 'mjpeg';

    main.replaceChildren(
      el('h1', {}, 'Playback'),
      el('div', { class: 'controls pb-controls' }, pickCamera, pickDay, pickSpan, earlier, laterBtn,
        el('span', { class: 'pb-goto' }, pickTime, go)),
      el('div', { class: 'pb-timeline', id: 'pb-timeline' }, track, axis),
      el('div', { class: 'pb-legend muted' },
        el('span', { class: 'pb-key run' }, 'recorded'), el('span', { class: 'pb-key gap' }, 'gap'),
        mayOn('smart_search', camera) ? el('span', { class: 'pb-key motion' }, 'motion') : null,
        may('status') ? el('span', { class: 'pb-key event' }, 'event') : null),
      summary,
      el('div', { class: 'pb-body' },
        el('div', { class: 'pb-player' }, video),
        el('div', { class: 'pb-side' },
          clock,
          note,
          mayExport ? el('div', { class: 'controls' }, markIn, markOut) : null,
          download, lockLink, incidentLink)));

    const say = (text) => { note.textContent = text; };
    if (isMjpeg) say(MJPEG_NOTE);

    /** Position of wall time `t` on the timeline, in % of its width. */
    const pct = (t) => (100 * (t - viewStart) / (span.s * 1000));
    const viewEnd = () => viewStart + span.s * 1000;
    /** Shows [start, end) of the day, clamped to the day. */
    function show(center) {
      const len = span.s * 1000;
      viewStart = Math.min(Math.max(center - len / 2, dayStart), Math.max(dayStart, dayEnd - len));
      render();
    }
    function zoom(s) {
      const center = shownMs !== null && shownMs >= viewStart && shownMs < viewEnd() ? shownMs : viewStart + span.s * 500;
      span = SPANS.find((x) => x.s === s) || span;
      show(center);
    }
    function pan(f) { show(viewStart + span.s * 500 + f * span.s * 1000); }

    /** A bar on the track for [a, b), clipped to the view; null when outside it. */
    function bar(cls, a, b, attrs) {
      const l = Math.max(0, pct(a)), r = Math.min(100, pct(b));
      if (r <= 0 || l >= 100 || r <= l) return null;
      return el('div', { class: cls, style: 'left:' + l.toFixed(3) + '%;width:' + Math.max(r - l, 0.15).toFixed(3) + '%', ...attrs });
    }

    function render() {
      const now = Date.now();
      const items = [];
      // What lies after now has not happened yet: drawn apart from the gaps.
      if (now < viewEnd()) items.push(bar('pb-future', Math.max(now, viewStart), viewEnd(), { title: 'not yet' }));
      for (const r of runs) {
        items.push(bar('pb-run', r.start, r.end, { 'data-start-ms': r.start, 'data-end-ms': r.end, title: clockText(r.start) + ' – ' + clockText(r.end) }));
      }
      // A gap between two runs is marked at least a few pixels wide, so that a short one shows
      // at every zoom (the runs' own bars would cover it).
      for (let i = 1; i < runs.length; i++) {
        const a = runs[i - 1].end, b = runs[i].start;
        if (b > a) items.push(bar('pb-gapmark', a, b, { title: 'gap ' + clockText(a) + ' – ' + clockText(b) + ' (' + lengthText(b - a) + ')', 'data-gap-ms': b - a }));
      }
      for (const m of motion) items.push(bar('pb-motion', m.start, m.end, { title: 'motion ' + clockText(m.start) + ' – ' + clockText(m.end) }));
      for (const e of events) {
        const text = clockText(e.t) + ' ' + (e.name || e.kind.replace(/_/g, ' ')) + (e.message ? ': ' + e.message : '');
        items.push(bar('pb-event', e.t, e.t + 1, { title: text, 'data-kind': e.kind }));
      }
      if (selection) items.push(bar('pb-selection', selection.from, selection.to, { id: 'pb-selection' }));
      if (shownMs !== null) items.push(bar('pb-playhead', shownMs, shownMs + 1, { id: 'pb-playhead' }));
      track.replaceChildren(...items.filter(Boolean));
      track.dataset.viewStartMs = String(viewStart);
      track.dataset.viewEndMs = String(viewEnd());
      const width = track.getBoundingClientRect().width || 1000;
      const tickS = TICKS_S.find((t) => t * width / span.s >= (t < 60 ? LABEL_PX.seconds : LABEL_PX.minutes)) || 21600;
      const step = tickS * 1000;
      const labels = [];
      for (let t = Math.ceil(viewStart / step) * step; t <= viewEnd(); t += step) {
        // Ticks fall on local hours and minutes: the offset of local time is whole minutes.
        const p = pct(t);
        // A label at the left end is kept inside the timeline; none is put at the right end,
        // where it would run out of it.
        const shift = p < 4 ? '0' : '-50%';
        if (p >= 0 && p <= 96) labels.push(el('span', { style: 'left:' + p.toFixed(3) + '%;transform:translateX(' + shift + ')' }, tickS < 60 ? clockText(t) : clockText(t).slice(0, 5)));
      }
      axis.replaceChildren(...labels);
      const shownRange = selection || { from: viewStart, to: Math.min(viewEnd(), Math.max(viewStart + 1000, now)) };
      if (lockLink) lockLink.href = '#/locks/new?camera=' + encodeURIComponent(camera) + '&from=' + new Date(shownRange.from).toISOString() + '&to=' + new Date(shownRange.to).toISOString();
      if (incidentLink) incidentLink.href = '#/incidents/add?camera=' + encodeURIComponent(camera) + '&from=' + new Date(shownRange.from).toISOString() + '&to=' + new Date(shownRange.to).toISOString();
      earlier.disabled = viewStart <= dayStart;
      laterBtn.disabled = viewEnd() >= dayEnd;
    }

    /** The summary line: how much of the day is recorded and how many gaps lie between runs. */
    function summarise(extra) {
      if (!runs.length) {
        summary.textContent = 'Nothing recorded on ' + dayText(day) + '.' + extra;
        return;
      }
      const recorded = runs.reduce((n, r) => n + (r.end - r.start), 0);
      const gaps = runs.slice(1).map((r, i) => r.start - runs[i].end).filter((g) => g > 0);
      summary.textContent = 'Recorded ' + lengthText(recorded) + ' in ' + runs.length + (runs.length === 1 ? ' run' : ' runs') +
        ', from ' + clockText(runs[0].start) + ' to ' + clockText(runs[runs.length - 1].end) +
        (gaps.length ? '; ' + gaps.length + (gaps.length === 1 ? ' gap' : ' gaps') + ' (longest ' + lengthText(Math.max(...gaps)) + ')' : '; no gaps') +
        '.' + extra;
    }

    async function loadRuns() {
      const q = '?from=' + encodeURIComponent(new Date(dayStart).toISOString()) + '&to=' + encodeURIComponent(new Date(dayEnd).toISOString());
      runs = spansOf((await api('/api/v1/cameras/' + encodeURIComponent(camera) + '/recordings' + q)).recordings);
      return q;
    }

    async function load() {
      let q;
      try {
        q = await loadRuns();
      } catch (e) {
        if (!stopped) summary.textContent = e.message;
        return;
      }
      if (stopped) return;
      let extra = '';
      if (mayOn('smart_search', camera)) {
        try {
          motion = spansOf((await api('/api/v1/cameras/' + encodeURIComponent(camera) + '/motion' + q)).motion);
        } catch (e) {
          extra += ' Motion: ' + e.message;
        }
      }
      if (may('status')) {
        try {
          const found = await dayEvents(camera, dayStart, dayEnd);
          events = found.events;
          if (found.partial) extra += ' Only the oldest ' + MAX_EVENT_PAGES * 1000 + ' events of the log were read.';
        } catch (e) {
          extra += ' Events: ' + e.message;
        }
      }
      if (stopped) return;
      summarise(extra);
      // Start where the newest recording of the day ends, so today's run is in view.
      show(runs.length ? runs[runs.length - 1].end : dayStart + 12 * 3600 * 1000);
    }

    /**
     * Plays from wall time `t`: the run holding `t` (or the next one, when `t` falls in a gap)
     * through the export of [t, min(run end, t + WINDOW_MS)); `ended` continues after it.
     */
    function playFrom(t, why) {
      const run = runs.find((r) => t >= r.start && t < r.end) || runs.find((r) => r.start > t);
      if (!run) return false;
      const from = Math.max(t, run.start);
      const to = Math.min(run.end, from + WINDOW_MS);
      if (isMjpeg) say(MJPEG_NOTE);
      else if (from > t) say((why || 'Nothing recorded at ' + clockText(t) + ': ') + 'playing from ' + clockText(from) + ', ' + lengthText(from - t) + ' later.');
      else say(why || '');
      generation += 1;
      playing = { from, to };
      video.dataset.fromMs = String(from);
      video.dataset.toMs = String(to);
      video.src = mp4Url('playback.mp4', camera, from, to);
      video.play().catch(() => {});
      return true;
    }

    /** Plays from the time typed into `pickTime` (local, on the page's day). */
    function goToTime() {
      const m = /^(\d{2}):(\d{2})(?::(\d{2}))?/.exec(pickTime.value);
      if (!m) { say('Type a time to play from.'); return; }
      const t = new Date(day.getFullYear(), day.getMonth(), day.getDate(), Number(m[1]), Number(m[2]), Number(m[3] || 0)).getTime();
      show(t);
      if (!playFrom(t)) say('Nothing recorded after ' + clockText(t) + ' on ' + dayText(day) + '.');
    }

    /** At the end of a window: the next one, after refreshing the runs (today's run grows). */
    async function next() {
      if (!playing || stopped) return;
      // Review 3 finding 3: a window the user chose while this waited or loaded wins.
      const gen = generation;
      const after = playing.to;
      try {
        await loadRuns();
      } catch (e) {
        if (gen === generation) say(e.message);
        return;
      }
      if (stopped || gen !== generation) return;
      summarise('');
      render();
      const gapFrom = after;
      const inRun = runs.find((r) => after >= r.start && after < r.end - 100);
      // Review 3 finding 9: close behind today's newest recorded moment, wait until a window of a
      // few seconds is there rather than play a stutter of short windows.
      const live = dayEnd > Date.now() && inRun === runs[runs.length - 1];
      if (inRun && live && inRun.end - after < MIN_WINDOW_MS) {
        say('Caught up with the newest recording; waiting for more…');
        later(() => { if (gen === generation) next(); }, CATCH_UP_MS);
      } else if (inRun) {
        playFrom(after, '');
      } else if (runs.find((r) => r.start > after)) {
        playFrom(after, 'Skipped a gap from ' + clockText(gapFrom) + ': ');
      } else if (dayEnd > Date.now()) {
        say('Caught up with the newest recording; waiting for more…');
        later(() => { if (gen === generation) next(); }, CATCH_UP_MS);
      } else {
        say('End of the recordings of ' + dayText(day) + '.');
      }
    }

    /** The wall-clock time of the frame on screen: the window's start plus the frame's media time. */
    function shown(mediaS) {
      if (!playing) return;
      shownMs = playing.from + mediaS * 1000;
      clock.textContent = dayText(new Date(shownMs)) + ' ' + clockText(shownMs, true);
      clock.dataset.wallMs = String(Math.round(shownMs));
      const head = track.querySelector('#pb-playhead');
      if (shownMs < viewStart || shownMs >= viewEnd()) show(shownMs);
      else if (head) head.style.left = pct(shownMs).toFixed(3) + '%';
      else render();
    }
    // Each presented frame's own media time where the browser tells it (requestVideoFrameCallback),
    // else the current time as the video reports it.
    if (video.requestVideoFrameCallback) {
      const onFrame = (_now, meta) => { if (stopped) return; shown(meta.mediaTime); video.requestVideoFrameCallback(onFrame); };
      video.requestVideoFrameCallback(onFrame);
      video.addEventListener('seeked', () => shown(video.currentTime));
    } else {
      video.addEventListener('timeupdate', () => shown(video.currentTime));
    }
    video.addEventListener('ended', next);
    video.addEventListener('error', async () => {
      if (!playing || !video.getAttribute('src')) return;
      const failed = playing;
      const unsupported = video.error && video.error.code === 4; // MEDIA_ERR_SRC_NOT_SUPPORTED
      // The video element does not tell why; the same request does, as JSON.
      let why = 'the recording could not be played';
      let retryS = null;
      try {
        const r = await fetch(video.src, { credentials: 'same-origin', headers: { Range: 'bytes=0-0', 'X-Requested-With': 'edgerec-ui' } });
        if (r.status === 503) retryS = Math.max(1, Number(r.headers.get('Retry-After')) || 1);
        if (!r.ok) why = (await r.json()).error.message;
      } catch (_) { /* keep the general message */ }
      if (stopped || playing !== failed) return;
      if (retryS === null && why === 'the recording could not be played' && (isMjpeg || unsupported)) {
        // The server had the recording: the browser cannot decode it (review-b 6).
        say(isMjpeg ? MJPEG_NOTE : 'This browser cannot play ' + (cam && cam.codec ? cam.codec.toUpperCase() + ' recordings' : 'this recording') +
          '; use Download (ffmpeg/VLC play it).');
        return;
      }
      if (retryS === null) { say('Playback failed: ' + why); return; }
      // Review 3 finding 4: a full server (503) is passing; play on from the frame shown after
      // the wait it asks for, unless the user chose another moment meanwhile.
      say('Playback paused: ' + why + '; trying again in ' + retryS + ' s.');
      later(() => {
        if (playing !== failed) return;
        const at = shownMs !== null && shownMs >= failed.from && shownMs < failed.to ? shownMs : failed.from;
        playFrom(at, '');
      }, retryS * 1000);
    });

    /** Sets one end of the download range (0 start, 1 end) to the frame on screen. */
    function mark(end) {
      if (shownMs === null) { say('Play the recording first, then mark the range at the frame shown.'); return; }
      if (end) selection = { from: selection && selection.from < shownMs ? selection.from : shownMs - 60000, to: shownMs };
      else selection = { from: shownMs, to: selection && selection.to > shownMs ? selection.to : shownMs + 60000 };
      offerDownload();
    }

    function offerDownload() {
      render();
      if (!mayExport) {
        download.replaceChildren(el('p', { class: 'muted' }, 'You may not export recordings of this camera.'));
        return;
      }
      if (!selection) {
        download.replaceChildren(el('p', { class: 'muted' }, 'Drag across the timeline, or mark the frames shown, to choose a range to download.'));
        return;
      }
      const name = camera + '-' + new Date(selection.from).toISOString().replace(/[:]/g, '') + '.mp4';
      download.replaceChildren(
        el('span', {}, 'Range ' + clockText(selection.from) + ' – ' + clockText(selection.to) + ' (' + lengthText(selection.to - selection.from) + ')'),
        el('a', { id: 'pb-download', class: 'button', href: mp4Url('export.mp4', camera, selection.from, selection.to), download: name }, 'Download MP4'));
    }

    // Pointer input on the track: a press that does not move plays from that moment; a drag
    // chooses the download range.
    let press = null;
    const timeAt = (x) => {
      const r = track.getBoundingClientRect();
      return viewStart + Math.min(1, Math.max(0, (x - r.left) / r.width)) * span.s * 1000;
    };
    track.addEventListener('pointerdown', (e) => {
      press = { x: e.clientX, t: timeAt(e.clientX), dragging: false };
      track.setPointerCapture(e.pointerId);
    });
    track.addEventListener('pointermove', (e) => {
      if (!press) return;
      if (Math.abs(e.clientX - press.x) >= DRAG_PX) press.dragging = true;
      if (press.dragging) {
        const t = timeAt(e.clientX);
        selection = { from: Math.min(press.t, t), to: Math.max(press.t, t) };
        render();
      }
    });
    track.addEventListener('pointerup', (e) => {
      if (!press) return;
      const p = press;
      press = null;
      if (p.dragging) {
        offerDownload();
      } else if (!playFrom(p.t)) {
        say('Nothing recorded after ' + clockText(p.t) + ' on ' + dayText(day) + '.');
      }
    });
    track.addEventListener('pointercancel', () => { press = null; });

    const onResize = () => render();
    window.addEventListener('resize', onResize);
    offerDownload();
    load();
    // The day goes on: the runs of today are read again now and then while nothing plays.
    const refresh = () => {
      if (dayEnd > Date.now() && (!playing || video.paused)) {
        loadRuns().then(() => { if (!stopped) { summarise(''); render(); } }, () => {});
      }
      later(refresh, 10000);
    };
    later(refresh, 10000);

    return {
      stop() {
        stopped = true;
        window.removeEventListener('resize', onResize);
        timers.forEach(clearTimeout);
        video.removeAttribute('src');
        video.load();
      },
    };
  }

  UI.views.playback = {
    /** In the navigation only for a user who may play back at least one camera. */
    get nav() { return UI.cameras().some((c) => mayOn('playback', c.id)) ? 'Playback' : null; },
    title: 'playback',
    allowed: () => true,
    start(main, args, query) {
      const cams = UI.cameras().filter((c) => mayOn('playback', c.id));
      if (!cams.length) {
        main.replaceChildren(el('h1', {}, 'Playback'),
          el('p', { class: 'muted', id: 'pb-none' }, 'There is no camera you may play back. An administrator can grant the playback permission.'));
        return null;
      }
      const camera = cams.some((c) => c.id === args[0]) ? args[0] : cams[0].id;
      const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(query.get('day') || '');
      const day = m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : new Date(new Date().setHours(0, 0, 0, 0));
      return page(main, cams, camera, isNaN(day) ? new Date(new Date().setHours(0, 0, 0, 0)) : day, Number(query.get('span')) || 86400);
    },
  };
})();
