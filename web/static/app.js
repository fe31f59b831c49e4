// Roundtable web client: routing, pre-join screen and the room UI. The
// connection itself lives in session.js.
import { Session } from './session.js';

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
const show = (id) => { for (const s of ['home', 'prejoin', 'fatal', 'call']) $(s).hidden = s !== id; };

function fatal(title, message, doctor) {
  $('fatal-title').textContent = title;
  $('fatal-message').textContent = message;
  $('fatal-doctor').hidden = !doctor;
  if (doctor) $('fatal-doctor').href = doctor;
  show('fatal');
}

// What each ice_failed reason (docs/protocol.md) means for the person in
// front of the screen.
const ICE_FAILED = {
  no_response: 'Your network blocks the connection this call uses for audio and video. ' +
    'Ask whoever runs your network to allow it, or try another network, such as your phone\'s hotspot.',
  turn_unreachable: 'Your network blocks the connection this call uses for audio and video, ' +
    'and the relay that would get around it cannot be reached either. ' +
    'Ask whoever runs your network to allow it, or try another network, such as your phone\'s hotspot.',
  dtls_failed: 'Something on your network, such as a firewall or a proxy, interrupts the secure connection ' +
    'for audio and video. Try another network, or ask whoever runs your network.',
  no_candidates: 'Your browser found no network connection to use for audio and video. ' +
    'Check that you are online and that no setting or extension turns off WebRTC.',
};

function randomRoom() {
  const words = ['amber', 'birch', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'iris', 'juniper'];
  const w = () => words[Math.floor(Math.random() * words.length)];
  return `${w()}-${w()}-${Math.floor(Math.random() * 900 + 100)}`;
}

const savedName = () => localStorage.getItem('roundtable.name') || '';
const roomURL = (room) => `${location.origin}/r/${encodeURIComponent(room)}`;

function route() {
  const m = location.pathname.match(/^\/r\/([^/]+)\/?$/);
  if (!m) return home();
  const room = decodeURIComponent(m[1]);
  if (!ROOM_RE.test(room)) {
    return fatal('Bad room name', 'Room names are 1 to 64 letters, digits, ".", "_" or "-".');
  }
  const name = new URLSearchParams(location.search).get('name');
  if (name && name.trim()) return startCall(room, name.trim(), null);
  prejoin(room);
}

function home() {
  show('home');
  $('home-room').value = randomRoom();
  $('home-name').value = savedName();
  $('home-generate').onclick = () => { $('home-room').value = randomRoom(); };
  $('home-form').onsubmit = (e) => {
    e.preventDefault();
    const name = $('home-name').value.trim();
    localStorage.setItem('roundtable.name', name);
    location.href = `/r/${encodeURIComponent($('home-room').value)}?name=${encodeURIComponent(name)}`;
  };
}

// getMedia asks for camera and microphone, then for either alone; null when
// there is neither (denied or absent).
async function getMedia(camera, mic) {
  const video = camera ? { deviceId: { exact: camera }, width: 640, height: 360 } : { width: 640, height: 360 };
  const audio = mic ? { deviceId: { exact: mic } } : true;
  for (const c of [{ video, audio }, { audio }, { video }]) {
    try { return await navigator.mediaDevices.getUserMedia(c); } catch { /* try less */ }
  }
  return null;
}

async function prejoin(room) {
  show('prejoin');
  $('prejoin-room').textContent = room;
  $('prejoin-name').value = savedName();
  let stream = null;
  const preview = async () => {
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = await getMedia($('camera-select').value, $('mic-select').value);
    $('preview').srcObject = stream && stream.getVideoTracks().length ? stream : null;
    $('prejoin-hint').hidden = !!stream;
    $('prejoin-hint').textContent = 'No camera or microphone available: you can join to watch and listen.';
  };
  await preview();
  const devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  for (const [kind, select] of [['videoinput', 'camera-select'], ['audioinput', 'mic-select']]) {
    for (const d of devices.filter((d) => d.kind === kind)) {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || d.kind;
      $(select).append(o);
    }
    $(select).onchange = preview;
  }
  $('prejoin-form').onsubmit = (e) => {
    e.preventDefault();
    const name = $('prejoin-name').value.trim();
    if (!name) return;
    localStorage.setItem('roundtable.name', name);
    $('preview').srcObject = null;
    const params = new URLSearchParams(location.search);
    params.set('name', name);
    history.replaceState(null, '', `/r/${encodeURIComponent(room)}?${params}`); // keeps ?token=
    startCall(room, name, stream || 'none');
  };
}

// Tiles: one per participant for camera and microphone, one more per
// screen share. key = participant + ':camera' | ':screen'.
class Tiles {
  constructor(session) {
    this.session = session;
    this.tiles = new Map();
    this.visible = new Map(); // element -> intersecting
    this.sent = new Map(); // server track id -> last visible state sent
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) this.visible.set(e.target, e.isIntersecting);
      this.hints();
    });
    document.addEventListener('visibilitychange', () => this.hints());
  }

  // hints sends a viewport hint for every received video whose visibility
  // changed: hidden tiles and background tabs get no video.
  hints() {
    for (const t of this.tiles.values()) {
      const shown = !document.hidden && this.visible.get(t.el) !== false;
      for (const [id, track] of t.tracks) {
        if (track.kind !== 'video' || !this.session.meta.has(id) || this.sent.get(id) === shown) continue;
        this.sent.set(id, shown);
        const r = window.devicePixelRatio || 1;
        this.session.setViewport(id, t.el.clientWidth * r, t.el.clientHeight * r, shown);
      }
    }
  }

  get(participant, kind) {
    const key = `${participant}:${kind}`;
    let t = this.tiles.get(key);
    if (!t) {
      const el = document.createElement('div');
      el.className = `tile ${kind}`;
      el.dataset.participant = participant;
      el.dataset.kind = kind;
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      const avatar = document.createElement('div');
      avatar.className = 'avatar';
      const label = document.createElement('span');
      label.className = 'label';
      const name = document.createElement('span');
      const micOff = document.createElement('span');
      micOff.className = 'mic-off';
      micOff.textContent = '(muted)';
      label.append(name, micOff);
      el.append(video, avatar, label);
      if (kind === 'screen') el.classList.add('camera-off');
      $('grid').append(el);
      this.observer.observe(el);
      t = { el, video, avatar, name, stream: new MediaStream(), tracks: new Map() };
      this.tiles.set(key, t);
      this.label(participant);
    }
    return t;
  }

  label(participant) {
    const self = participant === this.session.id;
    const name = self ? `${this.session.name} (you)` : this.session.people.get(participant) || '';
    for (const kind of ['camera', 'screen']) {
      const t = this.tiles.get(`${participant}:${kind}`);
      if (!t) continue;
      t.name.textContent = kind === 'screen' ? `${name}: screen` : name;
      t.avatar.textContent = (name[0] || '?').toUpperCase();
      t.el.setAttribute('aria-label', t.name.textContent);
    }
  }

  add(participant, kind, id, track) {
    const t = this.get(participant, kind);
    t.tracks.set(id, track);
    this.sent.delete(id);
    t.stream.addTrack(track);
    if (t.video.srcObject !== t.stream) t.video.srcObject = t.stream;
    this.refresh(participant);
    this.hints();
  }

  removeTrack(id) {
    for (const [key, t] of this.tiles) {
      const track = t.tracks.get(id);
      if (!track) continue;
      t.tracks.delete(id);
      t.stream.removeTrack(track);
      this.sent.delete(id);
      if (key.endsWith(':screen') && !t.tracks.size) { this.drop(key); }
      this.refresh(key.split(':')[0]);
    }
  }

  drop(key) {
    const t = this.tiles.get(key);
    if (!t) return;
    this.observer.unobserve(t.el);
    this.visible.delete(t.el);
    t.el.remove();
    this.tiles.delete(key);
  }

  removeParticipant(participant) {
    for (const kind of ['camera', 'screen']) this.drop(`${participant}:${kind}`);
  }

  clearRemote() {
    for (const key of [...this.tiles.keys()]) {
      if (!key.startsWith(`${this.session.id}:`)) this.removeParticipant(key.split(':')[0]);
    }
  }

  // refresh shows the camera tile's muted states from track metadata.
  refresh(participant) {
    const t = this.tiles.get(`${participant}:camera`);
    if (t) {
      let video = false; let mic = false;
      if (participant === this.session.id) {
        for (const [track, l] of this.session.local) {
          if (l.source === 'camera') video = !l.muted;
          if (l.source === 'microphone') mic = l.muted;
        }
      } else {
        for (const [id] of t.tracks) {
          const m = this.session.meta.get(id);
          if (!m) continue;
          if (m.kind === 'video') video = !m.muted;
          if (m.kind === 'audio') mic = m.muted;
        }
      }
      t.el.classList.toggle('camera-off', !video);
      t.el.classList.toggle('mic-muted', mic);
    }
    renderPeople(this.session);
  }
}

function renderPeople(session) {
  const list = $('people-list');
  list.textContent = '';
  const entries = [[session.id, `${session.name} (you)`], ...session.people];
  for (const [id, name] of entries) {
    const li = document.createElement('li');
    const tile = document.querySelector(`.tile.camera[data-participant="${CSS.escape(id || '')}"]`);
    const states = [];
    if (tile && tile.classList.contains('mic-muted')) states.push('mic muted');
    if (tile && tile.classList.contains('camera-off')) states.push('camera off');
    li.textContent = states.length ? `${name} (${states.join(', ')})` : name;
    list.append(li);
  }
  $('people-count').textContent = String(entries.length);
}

async function startCall(room, name, media) {
  show('call');
  $('room-title').textContent = room;
  document.title = `${room} · Roundtable`;
  // A join token from the room link (?token=…), for servers that require one.
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  // ?codec=h264 (or vp9, vp8) picks the camera's codec; the browser's choice otherwise.
  const session = new Session({ room, name, token, codec: params.get('codec') || '' });
  const tiles = new Tiles(session);
  window.roundtable = { session, tiles };
  const hint = (text) => { $('hint').hidden = !text; $('hint').textContent = text || ''; };

  const stream = media === 'none' ? null : media || await getMedia('', '');
  let camera = null; let mic = null; let screen = null;
  if (!stream) {
    hint('No camera or microphone: you can see and hear the others, they cannot see or hear you.');
  } else {
    camera = stream.getVideoTracks()[0] || null;
    mic = stream.getAudioTracks()[0] || null;
    if (camera) session.publish(camera, stream, 'camera');
    if (mic) session.publish(mic, stream, 'microphone');
  }
  $('cam').disabled = !camera;
  $('mic').disabled = !mic;

  const showSelf = () => {
    const me = session.id;
    if (camera) tiles.add(me, 'camera', camera.id, camera);
    else tiles.get(me, 'camera');
    const t = tiles.get(me, 'camera');
    t.el.classList.add('self');
    t.video.muted = true;
    if (screen) {
      tiles.add(me, 'screen', screen.id, screen);
      tiles.get(me, 'screen').el.classList.add('self');
    }
    tiles.label(me);
    tiles.refresh(me);
  };

  session.addEventListener('status', (e) => {
    const s = e.detail.state;
    $('status').textContent = s === 'reconnecting' ? 'reconnecting…' : s;
    $('status').classList.toggle('bad', s === 'reconnecting');
  });
  session.addEventListener('joined', () => {
    // After a rejoin the participant id is new: rebuild every tile.
    for (const key of [...tiles.tiles.keys()]) tiles.drop(key);
    tiles.sent.clear();
    showSelf();
  });
  session.addEventListener('reset', () => tiles.clearRemote());
  session.addEventListener('participant', (e) => {
    const { id, present } = e.detail;
    if (present) { tiles.get(id, 'camera'); tiles.label(id); tiles.refresh(id); } else { tiles.removeParticipant(id); renderPeople(session); }
  });
  session.addEventListener('track', (e) => {
    const { participant, trackId, track, meta } = e.detail;
    const kind = meta && (meta.source === 'screen' || meta.source === 'screen-audio') ? 'screen' : 'camera';
    tiles.add(participant, kind, trackId, track);
  });
  session.addEventListener('track-ended', (e) => tiles.removeTrack(e.detail.trackId));
  session.addEventListener('meta', (e) => tiles.refresh(e.detail.participant));
  session.addEventListener('speaker', (e) => {
    for (const el of document.querySelectorAll('.tile.camera')) {
      el.classList.toggle('speaking', el.dataset.participant === e.detail.participant);
    }
  });
  session.addEventListener('chat', (e) => chatLine(e.detail.name, e.detail.text, e.detail.at));
  session.addEventListener('fatal', (e) => {
    const titles = {
      room_full: 'This room is full', bad_room: 'Bad room name', bad_name: 'Bad name',
      auth_required: 'This room needs an invitation', token_expired: 'Your invitation has expired',
      token_not_yet_valid: 'Your invitation is not valid yet', token_invalid: 'Your invitation is not valid',
      token_wrong_room: 'Your invitation is for another room', token_no_grants: 'Your invitation allows nothing',
      replaced: 'You joined from somewhere else',
    };
    if (e.detail.code === 'ice_failed') {
      const q = new URLSearchParams({ room });
      if (token) q.set('token', token);
      fatal('Your network blocks this call', ICE_FAILED[e.detail.reason] || e.detail.message, `/doctor?${q}`);
      return;
    }
    fatal(titles[e.detail.code] || 'Cannot join', e.detail.message);
  });
  session.addEventListener('problem', (e) => hint(e.detail.code === 'unreachable' ? e.detail.message : `${e.detail.code}: ${e.detail.message}`));

  const toggle = (btn, getTrack, on, off) => () => {
    const track = getTrack();
    if (!track) return;
    const muted = track.enabled;
    session.setMuted(track, muted);
    btn.setAttribute('aria-pressed', String(!muted));
    btn.textContent = muted ? off : on;
    tiles.refresh(session.id);
  };
  $('mic').onclick = toggle($('mic'), () => mic, 'Mute mic', 'Unmute mic');
  $('cam').onclick = toggle($('cam'), () => camera, 'Stop camera', 'Start camera');

  // shareStream publishes a screen (or any video stream: tests pass a canvas
  // capture) as an extra tile; stopScreen ends it.
  const stopScreen = () => {
    if (!screen) return;
    session.unpublish(screen);
    tiles.removeTrack(screen.id);
    screen.stop();
    screen = null;
    $('screen').setAttribute('aria-pressed', 'false');
    $('screen').textContent = 'Share screen';
  };
  const shareStream = (s) => {
    stopScreen();
    screen = s.getVideoTracks()[0];
    if (!screen) return;
    screen.addEventListener('ended', stopScreen);
    session.publish(screen, s, 'screen');
    tiles.add(session.id, 'screen', screen.id, screen);
    tiles.get(session.id, 'screen').el.classList.add('self');
    tiles.label(session.id);
    $('screen').setAttribute('aria-pressed', 'true');
    $('screen').textContent = 'Stop sharing';
  };
  Object.assign(window.roundtable, { shareStream, stopScreen });
  $('screen').disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  $('screen').onclick = async () => {
    if (screen) return stopScreen();
    try { shareStream(await navigator.mediaDevices.getDisplayMedia({ video: true })); } catch { /* cancelled */ }
  };
  $('people-toggle').onclick = () => {
    $('people').hidden = !$('people').hidden;
    $('people-toggle').setAttribute('aria-expanded', String(!$('people').hidden));
  };
  $('invite').onclick = async () => {
    try {
      await navigator.clipboard.writeText(roomURL(room));
      hint(`Invite link copied: ${roomURL(room)}`);
    } catch {
      hint(`Invite link: ${roomURL(room)}`);
    }
  };
  $('leave').onclick = () => { session.leave(); location.href = '/'; };
  window.addEventListener('pagehide', () => session.leave());

  $('chat-form').onsubmit = (e) => {
    e.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    if (session.sendChat(text)) {
      chatLine(`${name} (you)`, text, new Date());
      $('chat-input').value = '';
    }
  };
  session.start();
}

function chatLine(from, text, at) {
  const li = document.createElement('li');
  const time = document.createElement('time');
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const who = document.createElement('strong');
  who.textContent = `${from}: `;
  li.append(time, who, document.createTextNode(text));
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
}

route();
