// Roundtable browser client: one WebSocket for signaling, one
// RTCPeerConnection to the server, one data channel for chat.
// The client is the polite peer of perfect negotiation (docs/protocol.md).

const $ = (id) => document.getElementById(id);
const roomFromPath = decodeURIComponent((location.pathname.match(/^\/r\/([^/]+)/) || [])[1] || '');
const params = new URLSearchParams(location.search);

if (!roomFromPath || !params.get('name')) {
  $('lobby').hidden = false;
  $('room').value = roomFromPath || Math.random().toString(36).slice(2, 10);
  $('name').value = params.get('name') || '';
  $('join-form').onsubmit = (e) => {
    e.preventDefault();
    location.href = `/r/${encodeURIComponent($('room').value)}?name=${encodeURIComponent($('name').value)}`;
  };
} else {
  start(roomFromPath, params.get('name'));
}

function start(room, name) {
  $('call').hidden = false;
  $('room-title').textContent = room;
  const state = { ws: null, pc: null, dc: null, id: null, local: null, people: new Map(),
    makingOffer: false, pendingCandidates: [] };
  window.roundtable = state; // for tests and debugging

  const setStatus = (s) => { $('status').textContent = s; };
  const send = (m) => state.ws.readyState === 1 && state.ws.send(JSON.stringify(m));

  function person(id) {
    let p = state.people.get(id);
    if (!p) {
      const tile = document.createElement('div');
      tile.className = 'tile';
      tile.dataset.participant = id;
      const video = document.createElement('video');
      video.autoplay = true; video.playsInline = true;
      const label = document.createElement('span');
      label.className = 'label';
      tile.append(video, label);
      $('grid').append(tile);
      p = { id, name: '', tile, video, label, stream: new MediaStream() };
      state.people.set(id, p);
    }
    return p;
  }
  function setName(id, n) { const p = person(id); p.name = n; p.label.textContent = n; }
  function removePerson(id) { const p = state.people.get(id); if (p) { p.tile.remove(); state.people.delete(id); } }
  function attach(p) { if (p.stream.getTracks().length && p.video.srcObject !== p.stream) p.video.srcObject = p.stream; }

  function chatLine(from, text) {
    const li = document.createElement('li');
    const t = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    li.textContent = `${t} ${from}: ${text}`;
    $('messages').append(li);
    li.scrollIntoView();
  }

  async function setupPeer(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    state.pc = pc;
    state.dc = pc.createDataChannel('roundtable');
    state.dc.onmessage = (e) => {
      const s = typeof e.data === 'string' ? e.data : '';
      const i = s.indexOf(':');
      if (i < 0) return;
      const from = state.people.get(s.slice(0, i));
      chatLine(from ? from.name : 'someone', s.slice(i + 1));
    };
    pc.onicecandidate = (e) => e.candidate && send({ type: 'candidate', candidate: e.candidate.toJSON() });
    pc.onconnectionstatechange = () => setStatus(pc.connectionState);
    pc.ontrack = (e) => {
      const id = e.streams[0] ? e.streams[0].id : null;
      if (!id) return;
      const p = person(id);
      p.stream.addTrack(e.track);
      e.streams[0].onremovetrack = (ev) => p.stream.removeTrack(ev.track);
      attach(p);
    };
    pc.onnegotiationneeded = async () => {
      try {
        state.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: 'offer', sdp: pc.localDescription.sdp });
      } finally { state.makingOffer = false; }
    };
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
    } catch (err) {
      $('hint').hidden = false;
      $('hint').textContent = 'No camera or microphone: you can see and hear the others, they cannot see or hear you.';
    }
    const me = person(state.id);
    me.tile.classList.add('self');
    me.video.muted = true;
    setName(state.id, `${name} (you)`);
    if (state.local) {
      for (const t of state.local.getTracks()) { pc.addTrack(t, state.local); me.stream.addTrack(t); }
      attach(me);
    }
  }

  async function onOffer(sdp) {
    // Polite peer: setRemoteDescription rolls back our own pending offer.
    await state.pc.setRemoteDescription({ type: 'offer', sdp });
    await state.pc.setLocalDescription();
    send({ type: 'answer', sdp: state.pc.localDescription.sdp });
    flushCandidates();
  }
  async function flushCandidates() {
    for (const c of state.pendingCandidates.splice(0)) await state.pc.addIceCandidate(c).catch(() => {});
  }

  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  state.ws = ws;
  ws.onopen = () => send({ type: 'join', room, name });
  ws.onclose = () => setStatus('disconnected');
  ws.onmessage = async (e) => {
    const m = JSON.parse(e.data);
    switch (m.type) {
      case 'joined':
        state.id = m.id;
        for (const p of m.participants) setName(p.id, p.name);
        await setupPeer(m.iceServers);
        break;
      case 'participant-joined': setName(m.participant.id, m.participant.name); break;
      case 'participant-left': removePerson(m.id); break;
      case 'track-unpublished': {
        const p = state.people.get(m.participant);
        if (p) for (const t of p.stream.getTracks()) if (t.id === m.trackId) p.stream.removeTrack(t);
        break;
      }
      case 'offer': await onOffer(m.sdp); break;
      case 'answer': await state.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }); flushCandidates(); break;
      case 'candidate':
        if (state.pc && state.pc.remoteDescription) await state.pc.addIceCandidate(m.candidate).catch(() => {});
        else state.pendingCandidates.push(m.candidate);
        break;
      case 'error': $('hint').hidden = false; $('hint').textContent = `${m.code}: ${m.message}`; break;
      case 'bye': setStatus(`closed (${m.reason})`); break;
    }
  };

  $('chat-form').onsubmit = (e) => {
    e.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text || !state.dc || state.dc.readyState !== 'open') return;
    state.dc.send(text);
    chatLine(`${name} (you)`, text);
    $('chat-input').value = '';
  };
  const toggle = (btn, kind, label) => () => {
    if (!state.local) return;
    const on = btn.getAttribute('aria-pressed') !== 'true';
    for (const t of state.local.getTracks()) if (t.kind === kind) t.enabled = on;
    btn.setAttribute('aria-pressed', String(on));
    btn.textContent = `${label} ${on ? 'on' : 'off'}`;
  };
  $('mic').onclick = toggle($('mic'), 'audio', 'Mic');
  $('cam').onclick = toggle($('cam'), 'video', 'Camera');
  $('invite').onclick = () => navigator.clipboard.writeText(`${location.origin}/r/${encodeURIComponent(room)}`);
  $('leave').onclick = () => { send({ type: 'leave' }); if (state.pc) state.pc.close(); location.href = '/'; };
}
