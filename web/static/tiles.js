// @ts-check
// Tiles: one video tile per participant's camera and microphone, one more
// per screen share, keyed "participant:camera" / "participant:screen".
// A tile owns its element, its MediaStream and the tracks in it, and its
// state (camera off, microphone muted); the Stage (layout.js) decides
// where it goes. Tiles also tell the server how each received video is
// shown (viewport hints: size in device pixels, visible or not) whenever
// that changes: on resize, paging, hiding, or the tab going to the
// background. Main thread.

/**
 * @typedef {object} Tile
 * @property {string} key
 * @property {string} participant
 * @property {'camera'|'screen'} kind
 * @property {boolean} self
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} avatar
 * @property {HTMLElement} name
 * @property {HTMLButtonElement} pin
 * @property {HTMLButtonElement} full
 * @property {HTMLElement} quality
 * @property {MediaStream} stream
 * @property {Map<string, MediaStreamTrack>} tracks  track id -> track
 * @property {boolean} cameraOff
 * @property {boolean} micMuted
 */

const HINT_DELAY = 100; // ms: at most one round of hints per 100 ms while a window is dragged

const ICONS = {
  pin: 'M9 3h6l-1 6 4 4H6l4-4zM12 13v8',
  full: 'M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5',
};

/**
 * tileButton makes a small icon button; label() gives it its name.
 * @param {'pin'|'full'} icon
 */
function tileButton(icon) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `tile-button ${icon}`;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', ICONS[icon]);
  svg.append(path);
  b.append(svg);
  return b;
}

/**
 * covered is true when el lies wholly under one of the rectangles (a sheet
 * over the tiles on a phone): nobody sees it, so it needs no video.
 * @param {HTMLElement} el
 * @param {DOMRect[]} covers
 */
function covered(el, covers) {
  if (!covers.length) return false;
  const r = el.getBoundingClientRect();
  return covers.some((c) => r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom);
}

export class Tiles {
  /**
   * @param {import('./session.js').Session} session
   * @param {HTMLElement} container the stage the tiles live in
   */
  constructor(session, container) {
    this.session = session;
    this.container = container;
    /** @type {Map<string, Tile>} in the order tiles were made */
    this.tiles = new Map();
    /** @type {Map<Element, boolean>} element -> intersecting the viewport */
    this.visible = new Map();
    /** @type {Map<string, string>} server track id -> last hint sent ("WxH" or "hidden") */
    this.sent = new Map();
    this.sinkId = '';
    /** @type {HTMLElement[]} sheets that may lie over the tiles (on a phone) */
    this.covers = [];
    /** Called when tiles come or go (the stage lays out again). */
    this.onChange = () => {};
    /** Called with a tile's key when its pin button is pressed. */
    this.onPin = (/** @type {string} */ _key) => {};
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.pending = null;
    this.intersections = new IntersectionObserver((entries) => {
      for (const e of entries) this.visible.set(e.target, e.isIntersecting);
      this.hints();
    });
    this.sizes = new ResizeObserver(() => this.hints());
    document.addEventListener('visibilitychange', () => this.hints());
  }

  /** hints schedules viewport hints for every received video (debounced). */
  hints() {
    if (this.pending) return;
    this.pending = setTimeout(() => { this.pending = null; this.sendHints(); }, HINT_DELAY);
  }

  /** sendHints sends a hint for each received video whose size or visibility changed. */
  sendHints() {
    const r = window.devicePixelRatio || 1;
    const covers = this.covers.filter((c) => !c.hidden).map((c) => c.getBoundingClientRect());
    for (const t of this.tiles.values()) {
      const shown = !document.hidden && !t.el.hidden && this.visible.get(t.el) !== false && !covered(t.el, covers);
      const w = Math.round(t.el.clientWidth * r);
      const h = Math.round(t.el.clientHeight * r);
      const hint = shown && w > 0 ? `${w}x${h}` : 'hidden';
      for (const [id, track] of t.tracks) {
        if (track.kind !== 'video' || !this.session.meta.has(id) || this.sent.get(id) === hint) continue;
        this.sent.set(id, hint);
        this.session.setViewport(id, w, h, hint !== 'hidden');
      }
    }
  }

  /**
   * get returns participant's tile of kind, made on first use.
   * @param {string} participant
   * @param {'camera'|'screen'} kind
   * @returns {Tile}
   */
  get(participant, kind) {
    const key = `${participant}:${kind}`;
    let t = this.tiles.get(key);
    if (!t) {
      t = this.make(participant, kind);
      this.tiles.set(key, t);
      this.container.append(t.el);
      this.intersections.observe(t.el);
      this.sizes.observe(t.el);
      this.label(participant);
      this.onChange();
    }
    return t;
  }

  /**
   * make builds a tile's elements: video, avatar (camera off), name label,
   * and the pin and full-screen buttons.
   * @param {string} participant
   * @param {'camera'|'screen'} kind
   * @returns {Tile}
   */
  make(participant, kind) {
    const el = document.createElement('div');
    el.className = `tile ${kind}`;
    el.dataset.participant = participant;
    el.dataset.kind = kind;
    el.setAttribute('role', 'group');
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const self = participant === this.session.id;
    if (self) { video.muted = true; el.classList.add('self'); }
    else if (this.sinkId) this.applySink(video);
    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'label';
    const name = document.createElement('span');
    name.className = 'name';
    const micOff = document.createElement('span');
    micOff.className = 'mic-off';
    micOff.textContent = '(muted)';
    // Connection quality: three bars, as many lit as the level allows.
    const quality = document.createElement('span');
    quality.className = 'quality';
    quality.setAttribute('role', 'img');
    for (let i = 0; i < 3; i++) quality.append(document.createElement('i'));
    label.append(quality, name, micOff);
    const key = `${participant}:${kind}`;
    const pin = tileButton('pin');
    pin.setAttribute('aria-pressed', 'false');
    pin.onclick = () => this.onPin(key);
    const full = tileButton('full');
    full.onclick = () => this.fullscreen(key);
    const bar = document.createElement('div');
    bar.className = 'tile-bar';
    bar.append(pin, full);
    el.append(video, avatar, label, bar);
    el.ondblclick = () => this.fullscreen(key);
    const t = { key, participant, kind, self, el, video, avatar, name, pin, full, quality, stream: new MediaStream(), tracks: new Map(), cameraOff: kind === 'camera', micMuted: false };
    const q = this.session.quality.get(participant);
    this.showQuality(t, q ? q.up : '', q ? q.down : '');
    return t;
  }

  /**
   * setQuality shows participant's connection quality on its tiles: the
   * worse of what it sends and what it receives ("excellent", "good",
   * "poor", "lost"; "" not known yet).
   * @param {string} participant
   * @param {string} up
   * @param {string} down
   */
  setQuality(participant, up, down) {
    for (const kind of /** @type {const} */ (['camera', 'screen'])) {
      const t = this.tiles.get(`${participant}:${kind}`);
      if (t) this.showQuality(t, up, down);
    }
  }

  /**
   * @param {Tile} t
   * @param {string} up
   * @param {string} down
   */
  showQuality(t, up, down) {
    const order = ['excellent', 'good', 'poor', 'lost'];
    const level = up && down ? order[Math.max(order.indexOf(up), order.indexOf(down))] : '';
    t.quality.dataset.level = level;
    t.quality.hidden = !level;
    const text = level ? `Connection ${level} (sending: ${up}, receiving: ${down})` : '';
    t.quality.title = text;
    t.quality.setAttribute('aria-label', text);
  }

  /**
   * fullscreen shows one tile on the whole screen, or leaves full screen.
   * @param {string} key
   */
  fullscreen(key) {
    const t = this.tiles.get(key);
    if (!t) return;
    if (document.fullscreenElement) { document.exitFullscreen().catch(() => {}); return; }
    if (t.el.requestFullscreen) t.el.requestFullscreen().catch(() => {});
    // @ts-ignore: iPhone Safari puts only a video element full screen
    else t.video.webkitEnterFullscreen?.();
  }

  /**
   * label names participant's tiles (and their buttons, for screen readers).
   * @param {string} participant
   */
  label(participant) {
    const self = participant === this.session.id;
    const name = self ? `${this.session.name} (you)` : this.session.people.get(participant) || '';
    for (const kind of /** @type {const} */ (['camera', 'screen'])) {
      const t = this.tiles.get(`${participant}:${kind}`);
      if (!t) continue;
      const what = kind === 'screen' ? `${name}: screen` : name;
      t.name.textContent = what;
      t.avatar.textContent = ([...name][0] || '?').toUpperCase();
      t.el.setAttribute('aria-label', what);
      t.pin.setAttribute('aria-label', `Pin ${what}`);
      t.pin.title = 'Pin: show large';
      t.full.setAttribute('aria-label', `Show ${what} full screen`);
      t.full.title = 'Full screen';
    }
  }

  /**
   * add puts a track (local or received) on participant's tile of kind.
   * @param {string} participant
   * @param {'camera'|'screen'} kind
   * @param {string} id the server's track id (a local track's own id)
   * @param {MediaStreamTrack} track
   */
  add(participant, kind, id, track) {
    const t = this.get(participant, kind);
    t.tracks.set(id, track);
    this.sent.delete(id);
    t.stream.addTrack(track);
    if (t.video.srcObject !== t.stream) t.video.srcObject = t.stream;
    this.refresh(participant);
    this.hints();
  }

  /** @param {string} id */
  removeTrack(id) {
    for (const [key, t] of this.tiles) {
      const track = t.tracks.get(id);
      if (!track) continue;
      t.tracks.delete(id);
      t.stream.removeTrack(track);
      this.sent.delete(id);
      if (t.kind === 'screen' && !t.tracks.size) this.drop(key);
      this.refresh(t.participant);
    }
  }

  /** @param {string} key */
  drop(key) {
    const t = this.tiles.get(key);
    if (!t) return;
    this.intersections.unobserve(t.el);
    this.sizes.unobserve(t.el);
    this.visible.delete(t.el);
    t.el.remove();
    this.tiles.delete(key);
    this.onChange();
  }

  /** @param {string} participant */
  removeParticipant(participant) {
    for (const kind of ['camera', 'screen']) this.drop(`${participant}:${kind}`);
  }

  /** clear drops every tile (after a rejoin, ids are new). */
  clear() {
    for (const key of [...this.tiles.keys()]) this.drop(key);
    this.sent.clear();
  }

  /** clearRemote drops everyone's tiles but the user's own. */
  clearRemote() {
    for (const t of [...this.tiles.values()]) if (!t.self) this.drop(t.key);
  }

  /**
   * refresh reads participant's camera and microphone state from the
   * session (its own tracks, or the track metadata of others) into the
   * camera tile.
   * @param {string} participant
   */
  refresh(participant) {
    const t = this.tiles.get(`${participant}:camera`);
    if (!t) return;
    let video = false; let mic = false;
    if (t.self) {
      for (const l of this.session.local.values()) {
        if (l.source === 'camera') video = !l.muted;
        if (l.source === 'microphone') mic = l.muted;
      }
    } else {
      for (const id of t.tracks.keys()) {
        const m = this.session.meta.get(id);
        if (m && m.kind === 'video') video = !m.muted;
        if (m && m.kind === 'audio') mic = m.muted;
      }
    }
    t.cameraOff = !video;
    t.micMuted = mic;
    t.el.classList.toggle('camera-off', !video);
    t.el.classList.toggle('mic-muted', mic);
  }

  /**
   * setSpeaker outlines participant's camera tile.
   * @param {string|null} participant
   */
  setSpeaker(participant) {
    for (const t of this.tiles.values()) t.el.classList.toggle('speaking', t.kind === 'camera' && t.participant === participant);
  }

  /**
   * setSink plays every received tile on the speaker (audio output
   * device) deviceId.
   * @param {string} deviceId
   */
  setSink(deviceId) {
    this.sinkId = deviceId;
    for (const t of this.tiles.values()) if (!t.self) this.applySink(t.video);
  }

  /** @param {HTMLVideoElement} video */
  applySink(video) {
    // @ts-ignore: setSinkId is not in every lib.dom yet
    if (video.setSinkId) video.setSinkId(this.sinkId).catch((err) => console.warn('roundtable: speaker', err));
  }
}
