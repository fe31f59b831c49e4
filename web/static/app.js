// @ts-check
// Roundtable web client: routing, the start and pre-join screens, and the
// call page, wired from the modules that each do one job:
//   session.js   the connection and the protocol (docs/protocol.md)
//   media.js     camera and microphone, device switching
//   tiles.js     video tiles and the viewport hints they send
//   layout.js    where the tiles go (grid, speaker, pages)
//   chat.js      messages, unread count, history
//   controls.js  sheets, keyboard shortcuts, announcements
//   settings.js  the in-call settings dialog
import { Session } from './session.js';
import { LocalMedia, fillSelect, getMedia, listDevices, prefs } from './media.js';
import { Tiles } from './tiles.js';
import { Stage } from './layout.js';
import { Chat } from './chat.js';
import { Sheets, announcer, bindShortcuts, setPressed } from './controls.js';
import { Settings } from './settings.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
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

async function prejoin(room) {
  show('prejoin');
  $('prejoin-room').textContent = room;
  $('prejoin-name').value = savedName();
  /** @type {MediaStream|null} */
  let stream = null;
  const preview = async (/** @type {string} */ camera, /** @type {string} */ mic) => {
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = await getMedia(camera, mic);
    $('preview').srcObject = stream && stream.getVideoTracks().length ? stream : null;
    $('prejoin-hint').hidden = !!stream;
    $('prejoin-hint').textContent = 'No camera or microphone available: you can join to watch and listen.';
  };
  // The form's handler is in place before anything is awaited: a Join
  // pressed while a camera still opens waits for it (without a handler
  // the browser would submit the form natively and reload the page).
  const ready = (async () => {
    await preview(prefs.get('camera', ''), prefs.get('mic', ''));
    const devices = await listDevices();
    fillSelect($('camera-select'), devices.videoinput, LocalMedia.deviceOf(stream?.getVideoTracks()[0] || null));
    fillSelect($('mic-select'), devices.audioinput, LocalMedia.deviceOf(stream?.getAudioTracks()[0] || null));
    $('camera-select').onchange = $('mic-select').onchange = () => {
      pending = preview($('camera-select').value, $('mic-select').value);
    };
  })();
  /** @type {Promise<void>} the newest preview being opened */
  let pending = ready;
  let joining = false;
  $('prejoin-form').onsubmit = async (/** @type {Event} */ e) => {
    e.preventDefault();
    const name = $('prejoin-name').value.trim();
    if (!name || joining) return;
    joining = true;
    await ready;
    await pending;
    localStorage.setItem('roundtable.name', name);
    if ($('camera-select').value) prefs.set('camera', $('camera-select').value);
    if ($('mic-select').value) prefs.set('mic', $('mic-select').value);
    $('preview').srcObject = null;
    const params = new URLSearchParams(location.search);
    params.set('name', name);
    history.replaceState(null, '', `/r/${encodeURIComponent(room)}?${params}`); // keeps ?token=
    startCall(room, name, stream || 'none');
  };
}

// What each error code that ends a call is called on the error page.
const FATAL_TITLES = {
  room_full: 'This room is full', bad_room: 'Bad room name', bad_name: 'Bad name',
  auth_required: 'This room needs an invitation', token_expired: 'Your invitation has expired',
  token_not_yet_valid: 'Your invitation is not valid yet', token_invalid: 'Your invitation is not valid',
  token_wrong_room: 'Your invitation is for another room', token_no_grants: 'Your invitation allows nothing',
  replaced: 'You joined from somewhere else',
  removed: 'You were removed', room_closed: 'The room was closed',
};

const hint = (/** @type {string} */ text) => { $('hint').hidden = !text; $('hint').textContent = text || ''; };

/**
 * @typedef {object} Call what one call's wiring shares
 * @property {string} room
 * @property {string} name
 * @property {string} token
 * @property {Session} session
 * @property {Tiles} tiles
 * @property {Stage} stage
 * @property {LocalMedia} local
 * @property {Chat} chat
 * @property {Sheets} sheets
 * @property {Settings} settings
 * @property {(text: string) => void} announce
 * @property {MediaStreamTrack|null} screen
 */

/**
 * startCall shows the call page and joins: media is what the pre-join
 * screen opened, 'none' for no devices, or null to open them now.
 * @param {string} room
 * @param {string} name
 * @param {MediaStream|'none'|null} media
 */
async function startCall(room, name, media) {
  show('call');
  $('room-title').textContent = room;
  document.title = `${room} · Roundtable`;
  // A join token from the room link (?token=…), for servers that require one;
  // ?codec=h264 (or vp9, vp8) picks the camera's codec.
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  const session = new Session({ room, name, token, codec: params.get('codec') || '' });
  const tiles = new Tiles(session, $('stage'));
  const stage = new Stage($('stage'), tiles, { pager: $('pager'), prev: $('page-prev'), next: $('page-next'), page: $('page') });
  const announce = announcer($('announcer'));
  tiles.onChange = () => stage.layout();
  tiles.onPin = (key) => {
    stage.togglePin(key);
    announce(`${stage.pinned ? 'Pinned' : 'Unpinned'} ${tiles.tiles.get(key)?.name.textContent || ''}`);
  };
  const stream = media === 'none' ? null : media || await getMedia(prefs.get('camera', ''), prefs.get('mic', ''));
  const local = new LocalMedia(session, stream);
  const chat = new Chat({ room, list: $('messages'), badge: $('chat-unread'), announce });
  const sheets = new Sheets({
    // On a touch screen the message list, not the field: focusing the
    // field would cover the sheet with the on-screen keyboard.
    chat: { panel: $('chat'), button: $('chat-toggle'), focus: () => (matchMedia('(pointer: coarse)').matches ? $('messages') : $('chat-input')) },
    people: { panel: $('people'), button: $('people-toggle'), focus: () => $('people').querySelector('.close') },
  }, (sheet, open) => {
    if (sheet === 'chat') chat.setOpen(open);
    tiles.hints(); // a sheet over the tiles hides some of them
  });
  tiles.covers = [$('chat'), $('people')];
  const settings = new Settings(local, tiles, $('stage'), announce);
  /** @type {Call} */
  const call = { room, name, token, session, tiles, stage, local, chat, sheets, settings, announce, screen: null };
  // For tests and the curious: the call's objects; shareStream publishes any
  // video stream as a screen share (headless browsers cannot capture one).
  Object.assign(window, { roundtable: { session, tiles, stage, local, chat,
    shareStream: (/** @type {MediaStream} */ s) => shareScreen(call, s), stopScreen: () => stopScreen(call) } });
  if (!stream) hint('No camera or microphone: you can see and hear the others, they cannot see or hear you.');
  local.publish();
  wireSession(call);
  wireTracks(call);
  wireButtons(call);
  wireChat(call);
  session.start();
}

/** @param {Call} call */
function wireSession(call) {
  const { session, tiles, stage, announce } = call;
  session.addEventListener('status', (/** @type {any} */ e) => {
    const s = e.detail.state;
    $('status').textContent = s === 'reconnecting' ? 'Reconnecting…' : s;
    $('status').classList.toggle('bad', s === 'reconnecting');
  });
  session.addEventListener('joined', () => {
    // After a rejoin the participant id is new: rebuild every tile.
    tiles.clear();
    showSelf(call);
    renderPeople(call);
  });
  session.addEventListener('reset', () => { tiles.clearRemote(); renderPeople(call); });
  session.addEventListener('resumed', () => {
    // Hints sent while the socket was down were lost: send them all again.
    tiles.sent.clear();
    tiles.hints();
    renderPeople(call);
  });
  session.addEventListener('participant', (/** @type {any} */ e) => {
    const { id, name, present, initial } = e.detail;
    if (present) {
      tiles.get(id, 'camera');
      tiles.label(id);
      tiles.refresh(id);
    } else {
      tiles.removeParticipant(id);
    }
    if (!initial) announce(`${name || 'Someone'} ${present ? 'joined' : 'left'}`);
    renderPeople(call);
  });
  session.addEventListener('speaker', (/** @type {any} */ e) => stage.setSpeaker(e.detail.participant));
  session.addEventListener('quality', (/** @type {any} */ e) => tiles.setQuality(e.detail.participant, e.detail.up, e.detail.down));
  session.addEventListener('chat', (/** @type {any} */ e) => call.chat.add(e.detail.name, e.detail.text, e.detail.at, false));
  session.addEventListener('fatal', (/** @type {any} */ e) => onFatal(call, e.detail));
  session.addEventListener('problem', (/** @type {any} */ e) => hint(e.detail.code === 'unreachable' ? e.detail.message : `${e.detail.code}: ${e.detail.message}`));
}

/** wireTracks follows remote tracks and the user's own device switches. @param {Call} call */
function wireTracks(call) {
  const { session, tiles, announce } = call;
  session.addEventListener('track', (/** @type {any} */ e) => {
    const { participant, trackId, track, meta } = e.detail;
    const screen = meta && (meta.source === 'screen' || meta.source === 'screen-audio');
    tiles.add(participant, screen ? 'screen' : 'camera', trackId, track);
    if (screen && track.kind === 'video') announce(`${session.people.get(participant) || 'Someone'} is presenting`);
    renderPeople(call);
  });
  session.addEventListener('track-ended', (/** @type {any} */ e) => { tiles.removeTrack(e.detail.trackId); renderPeople(call); });
  session.addEventListener('meta', (/** @type {any} */ e) => { tiles.refresh(e.detail.participant); renderPeople(call); });
  call.local.addEventListener('change', (/** @type {any} */ e) => {
    const { kind, from, to } = e.detail;
    if (kind === 'camera' && session.id) {
      if (from) tiles.removeTrack(from.id);
      tiles.add(session.id, 'camera', to.id, to);
    }
    syncButtons(call);
  });
}

/** showSelf makes the user's own tiles (again, after a rejoin). @param {Call} call */
function showSelf(call) {
  const { session, tiles, local } = call;
  const me = /** @type {string} */ (session.id);
  if (local.camera) tiles.add(me, 'camera', local.camera.id, local.camera);
  else tiles.get(me, 'camera');
  if (call.screen) tiles.add(me, 'screen', call.screen.id, call.screen);
  tiles.label(me);
  tiles.refresh(me);
}

/** @param {Call} call */
function wireButtons(call) {
  const { session, stage, settings, sheets } = call;
  $('mic').onclick = () => toggleTrack(call, 'mic');
  $('cam').onclick = () => toggleTrack(call, 'camera');
  $('screen').hidden = !navigator.mediaDevices?.getDisplayMedia;
  $('screen').onclick = () => toggleScreen(call);
  $('settings-open').onclick = () => settings.open();
  $('layout-toggle').onclick = () => toggleLayout(call);
  setPressed($('layout-toggle'), stage.mode === 'speaker');
  $('help-open').onclick = () => $('help').showModal();
  $('invite').onclick = async () => {
    const url = roomURL(call.room);
    try {
      await navigator.clipboard.writeText(url);
      hint(`Invite link copied: ${url}`);
    } catch {
      hint(`Invite link: ${url}`);
    }
  };
  $('leave').onclick = () => leave(call);
  window.addEventListener('pagehide', () => session.leave());
  bindShortcuts(() => !session.closed, {
    mic: () => toggleTrack(call, 'mic'),
    camera: () => toggleTrack(call, 'camera'),
    screen: () => { if (!$('screen').hidden) toggleScreen(call); },
    chat: () => sheets.toggle('chat'),
    people: () => sheets.toggle('people'),
    layout: () => toggleLayout(call),
    page: (delta) => stage.turn(delta),
    leave: () => leave(call),
    help: () => $('help').showModal(),
    close: () => sheets.close(),
  });
  syncButtons(call);
}

/** syncButtons shows the microphone and camera buttons' state. @param {Call} call */
function syncButtons(call) {
  /** @type {[string, MediaStreamTrack|null][]} */
  const buttons = [['mic', call.local.mic], ['cam', call.local.camera]];
  for (const [id, track] of buttons) {
    $(id).disabled = !track;
    setPressed($(id), !!track && track.enabled);
  }
}

/**
 * toggleTrack switches the microphone or camera off or on.
 * @param {Call} call
 * @param {'mic'|'camera'} which
 */
function toggleTrack(call, which) {
  const track = call.local[which];
  if (!track) return;
  const muted = track.enabled;
  call.session.setMuted(track, muted);
  syncButtons(call);
  call.tiles.refresh(/** @type {string} */ (call.session.id));
  renderPeople(call);
  call.announce(`${which === 'mic' ? 'Microphone' : 'Camera'} ${muted ? 'off' : 'on'}`);
}

/** @param {Call} call */
function toggleLayout(call) {
  call.stage.setMode(call.stage.mode === 'speaker' ? 'grid' : 'speaker');
  setPressed($('layout-toggle'), call.stage.mode === 'speaker');
  call.announce(call.stage.mode === 'speaker' ? 'Speaker layout' : 'Grid layout');
}

/** @param {Call} call */
async function toggleScreen(call) {
  if (call.screen) { stopScreen(call); return; }
  try {
    shareScreen(call, await navigator.mediaDevices.getDisplayMedia({ video: true }));
  } catch { /* cancelled */ }
}

/**
 * shareScreen publishes a screen (or any video stream) as an extra tile.
 * @param {Call} call
 * @param {MediaStream} s
 */
function shareScreen(call, s) {
  stopScreen(call);
  const track = s.getVideoTracks()[0];
  if (!track) return;
  call.screen = track;
  track.addEventListener('ended', () => { if (call.screen === track) stopScreen(call); });
  call.session.publish(track, s, 'screen');
  call.tiles.add(/** @type {string} */ (call.session.id), 'screen', track.id, track);
  call.tiles.label(/** @type {string} */ (call.session.id));
  setPressed($('screen'), true);
  call.announce('You are presenting');
}

/** @param {Call} call */
function stopScreen(call) {
  const track = call.screen;
  if (!track) return;
  call.screen = null;
  call.session.unpublish(track);
  call.tiles.removeTrack(track.id);
  track.stop();
  setPressed($('screen'), false);
}

/** @param {Call} call */
function leave(call) {
  stopScreen(call);
  call.session.leave();
  call.local.stop();
  call.chat.forget();
  location.href = '/';
}

/** @param {Call} call */
function wireChat(call) {
  $('chat-form').onsubmit = (/** @type {Event} */ e) => {
    e.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    if (call.session.sendChat(text)) {
      call.chat.add(`${call.name} (you)`, text, new Date(), true);
      $('chat-input').value = '';
    }
  };
}

/** renderPeople lists who is in the room, with their muted states. @param {Call} call */
function renderPeople(call) {
  const { session, tiles } = call;
  const list = $('people-list');
  list.textContent = '';
  const entries = [[session.id, `${session.name} (you)`], ...session.people];
  for (const [id, name] of entries) {
    const t = tiles.tiles.get(`${id}:camera`);
    const states = [];
    if (t?.micMuted) states.push('mic muted');
    if (t?.cameraOff) states.push('camera off');
    const li = document.createElement('li');
    li.textContent = states.length ? `${name} (${states.join(', ')})` : name;
    list.append(li);
  }
  $('people-count').textContent = String(entries.length);
}

/**
 * onFatal ends the call page with an explanation.
 * @param {Call} call
 * @param {{code: string, message: string, reason?: string}} d
 */
function onFatal(call, d) {
  stopScreen(call);
  call.local.stop();
  if (d.code === 'ice_failed') {
    const q = new URLSearchParams({ room: call.room });
    if (call.token) q.set('token', call.token);
    fatal('Your network blocks this call', ICE_FAILED[d.reason || ''] || d.message, `/doctor?${q}`);
    return;
  }
  fatal(FATAL_TITLES[d.code] || 'Cannot join', d.message);
}

route();
