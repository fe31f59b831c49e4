// @ts-check
// Session: one participant's connection to Roundtable (docs/protocol.md).
// One WebSocket for signaling, one RTCPeerConnection for all media, one
// data channel for chat. The browser is the polite peer of perfect
// negotiation. When the PeerConnection loses its path (or the server asks)
// it restarts ICE. When the WebSocket drops, it resumes: a new socket sends
// "resume" with the token the server gave, and the same participant, the
// same PeerConnection and its tracks carry on (docs/protocol.md, "Resume");
// only if the server refuses (resume_failed: the window ran out, the
// server restarted), or says bye, does it join again with the same name
// and republish its tracks. Events (EventTarget, detail in e.detail):
//   status {state}           connecting | connected | reconnecting | closed
//   joined {id}              (also after every rejoin; not after a resume)
//   resumed {id}             the socket came back, the participant is the same
//                            (also after a move to another node: a new PeerConnection)
//   reset                    all remote state is gone (before a rejoin)
//   participant {id, name, present, initial}  initial: in the joined snapshot
//   track {participant, trackId, track, meta}   a remote track arrived
//   track-ended {participant, trackId}
//   meta {participant, trackId, meta}           source / muted changed
//   chat {from, name, text, at}
//   speaker {participant}    the room's active speaker changed
//   fatal {code, message, reason?}  cannot join: room full, bad name, ...;
//                            replaced by the same identity elsewhere; or
//                            ice_failed (reason: the server's diagnosis)
//   problem {code, message}  a refused request; the session goes on

const FATAL = new Set(['room_full', 'bad_room', 'bad_name', 'too_many_rooms', 'already_joined', 'auth_required', 'token_invalid', 'token_expired', 'token_not_yet_valid', 'token_wrong_room', 'token_no_grants']);

// midToTrack maps each m-line's mid to its msid track id in an SDP.
export function midToTrack(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = (section.match(/\r?\na=mid:(\S+)/) || [])[1];
    const msid = section.match(/\r?\na=msid:(\S+) (\S+)/);
    if (mid && msid) out.set(mid, msid[2]);
  }
  return out;
}

export class Session extends EventTarget {
  /**
   * @param {{room: string, name: string, url?: string, token?: string, codec?: string}} o
   *   url: the signaling WebSocket (default: this page's /ws); token: a
   *   join token; codec: the preferred video codec (vp8, vp9, h264)
   */
  constructor({ room, name, url, token, codec }) {
    super();
    this.room = room;
    this.name = name;
    this.token = token || '';
    this.codec = (codec || '').toLowerCase(); // preferred video codec: vp8, vp9 or h264
    this.url = url || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    this.homeURL = this.url;
    this.id = null;
    this.ws = null;
    this.pc = null;
    this.dc = null;
    this.closed = false;
    this.everJoined = false;
    this.attempt = 0;
    /** the newest resume token ("" when the next socket must join) */
    this.resumeToken = '';
    // MediaStreamTrack -> {id, source, stream, muted, sender}; id is the
    // msid track id the server knows it by, which replaceTrack keeps.
    this.local = new Map();
    this.people = new Map(); // id -> name
    this.meta = new Map(); // server track id -> {participant, kind, source, muted}
    this.quality = new Map(); // participant id (own too) -> {up, down}: connection quality levels
    this.pendingCandidates = [];
    this.makingOffer = false;
    this.queue = Promise.resolve();
    this.state = 'connecting';
    /** @type {Promise<void>} settles when the current PeerConnection is torn down */
    this.peerGone = new Promise(() => {});
    /** @type {() => void} */
    this.endPeer = () => {};
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  setState(state) {
    if (this.state !== state) {
      this.state = state;
      this.emit('status', { state });
    }
  }

  send(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  start() { this.connect(); }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      if (this.resumeToken && this.pc) this.send({ type: 'resume', room: this.room, token: this.resumeToken });
      else this.join();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      this.queue = this.queue.then(() => this.handle(m)).catch((err) => console.warn('roundtable:', err));
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return;
      this.reconnect();
    };
  }

  join() { this.send({ type: 'join', room: this.room, name: this.name, token: this.token || undefined }); }

  // reconnect opens a new socket after a backoff. With a resume token it
  // keeps the PeerConnection, to resume; without, it drops it, to rejoin.
  reconnect() {
    if (!this.resumeToken) this.teardownPeer();
    if (this.url !== this.homeURL) {
      // The node a reconnect named is unreachable (or refuses this page's
      // origin): back to this page's own URL at once, through its load
      // balancer.
      this.url = this.homeURL;
      if (!this.closed) this.connect();
      return;
    }
    this.setState(this.everJoined ? 'reconnecting' : 'connecting');
    const delay = Math.min(5000, 500 * 2 ** this.attempt++);
    if (this.attempt > 1 && !this.everJoined) {
      this.emit('problem', { code: 'unreachable', message: 'Cannot reach the server; retrying…' });
    }
    setTimeout(() => { if (!this.closed) this.connect(); }, delay);
  }

  // teardownPeer closes the PeerConnection; unless keepRoom (a move to
  // another node of a cluster, where the room is the same), what this side
  // knew of the room goes too ("reset").
  teardownPeer(keepRoom = false) {
    this.endPeer();
    if (this.pc) {
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onnegotiationneeded = null;
      this.pc.oniceconnectionstatechange = this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    this.pc = null;
    this.dc = null;
    for (const l of this.local.values()) l.sender = null;
    this.pendingCandidates = [];
    // Operations pending on a closed PeerConnection never settle (WebRTC
    // §4.4.1.2): messages of the next connection must not wait behind them.
    this.queue = Promise.resolve();
    if (!keepRoom && (this.people.size || this.meta.size)) {
      this.people.clear();
      this.meta.clear();
      this.quality.clear();
      this.emit('reset', {});
    }
  }

  async handle(m) {
    switch (m.type) {
      case 'joined':
        this.id = m.id;
        this.everJoined = true;
        this.resumeToken = m.resumeToken || '';
        this.emit('joined', { id: m.id });
        for (const p of m.participants) {
          this.people.set(p.id, p.name);
          for (const t of p.tracks) this.setMeta(p.id, t);
          this.emit('participant', { id: p.id, name: p.name, present: true, initial: true });
        }
        this.setupPeer(m.iceServers || []);
        break;
      case 'resumed': this.onResumed(m); break;
      case 'resume-token': this.resumeToken = m.token; break;
      case 'ice-restart': if (this.pc) this.pc.restartIce(); break;
      case 'reconnect': this.onReconnect(m); break;
      case 'participant-joined':
        this.people.set(m.participant.id, m.participant.name);
        this.emit('participant', { id: m.participant.id, name: m.participant.name, present: true });
        break;
      case 'participant-left':
        for (const [tid, meta] of this.meta) {
          if (meta.participant === m.id) { this.meta.delete(tid); this.emit('track-ended', { participant: m.id, trackId: tid }); }
        }
        this.emit('participant', { id: m.id, name: this.people.get(m.id) || '', present: false });
        this.people.delete(m.id);
        this.quality.delete(m.id);
        break;
      case 'track-published': this.setMeta(m.participant, m.track); break;
      case 'track-updated': this.setMeta(m.participant, m.track, true); break;
      case 'active-speaker': this.emit('speaker', { participant: m.participant }); break;
      case 'connection-quality':
        for (const q of m.participants) {
          this.quality.set(q.id, { up: q.up, down: q.down });
          this.emit('quality', { participant: q.id, up: q.up, down: q.down });
        }
        break;
      case 'track-unpublished':
        this.meta.delete(m.trackId);
        this.emit('track-ended', { participant: m.participant, trackId: m.trackId });
        break;
      case 'offer': await this.onOffer(m.sdp); break;
      case 'answer':
        if (this.pc && this.pc.signalingState === 'have-local-offer') {
          await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          await this.flushCandidates();
        }
        break;
      case 'candidate':
        if (this.pc && this.pc.remoteDescription) await this.pc.addIceCandidate(m.candidate).catch(() => {});
        else this.pendingCandidates.push(m.candidate);
        break;
      case 'error':
        if (m.code === 'resume_failed') {
          // The participant is gone (or the server restarted): join afresh
          // on this socket, with a new PeerConnection.
          this.resumeToken = '';
          this.teardownPeer();
          this.join();
          break;
        }
        // The media connection failed for a reason a rejoin will not fix
        // (docs/protocol.md, ice_failed); consent_lost is a network that
        // went away during the call, and rejoining is right.
        if (m.code === 'ice_failed' && m.reason !== 'consent_lost') {
          this.closed = true;
          this.setState('closed');
          this.emit('fatal', { code: m.code, reason: m.reason, message: m.message });
          this.ws.close();
        } else if (FATAL.has(m.code)) {
          this.closed = true;
          this.setState('closed');
          this.emit('fatal', { code: m.code, message: m.message });
          this.ws.close();
        } else {
          this.emit('problem', { code: m.code, message: m.message });
        }
        break;
      case 'bye':
        // The server ended the participant: the next socket joins afresh.
        this.resumeToken = '';
        if (m.reason === 'left') { this.closed = true; this.setState('closed'); }
        if (m.reason === 'removed' || m.reason === 'room_closed') {
          // An operator ended it (docs/api.md): rejoining would undo that.
          this.closed = true;
          this.setState('closed');
          this.emit('fatal', { code: m.reason, message: m.reason === 'removed' ? 'You were removed from this room.' : 'This room was closed.' });
        }
        if (m.reason === 'replaced') {
          // The same identity joined again elsewhere (another tab, another
          // device): rejoining would only push that one out in turn.
          this.closed = true;
          this.setState('closed');
          this.emit('fatal', { code: 'replaced', message: 'You joined this room from another tab or device.' });
        }
        break; // any other reason: the socket closes and we rejoin
    }
  }

  // onReconnect: the node drains, or sends a join elsewhere (cluster,
  // docs/cluster.md): a new socket at once, to the node it names if any
  // (back to this page's own if that fails), and resume (or join) there. The old socket is left
  // open and ignored: a close frame would end the participant; the old
  // node closes it once the participant moved.
  onReconnect(m) {
    if (m.url) this.url = m.url.replace(/^http/, 'ws').replace(/\/?$/, '/ws');
    if (this.ws) this.ws.onclose = null;
    if (!this.closed) this.connect();
  }

  // onResumed takes the room as it is now (the resumed snapshot) in place
  // of what this side knew: who left and which tracks ended meanwhile go,
  // who came and what they publish arrive, and the tiles of those who
  // stayed are untouched. What this side sent into the dead socket is sent
  // again: its own tracks' state, and an offer of its that never got an
  // answer (an ICE restart during the outage). The ICE servers (minted TURN
  // credentials) are the new ones.
  onResumed(m) {
    this.id = m.id;
    this.resumeToken = m.resumeToken || '';
    // migrated: the participant continues on another node of a cluster
    // (its node was lost or is draining): same id and room, a new
    // PeerConnection; the others' tracks keep their ids and come again on
    // it, so their tiles stay.
    if (m.migrated) this.teardownPeer(true);
    // Fresh TURN credentials, for an ICE restart on a new network.
    if (this.pc && m.iceServers) {
      try {
        this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: m.iceServers });
      } catch (err) {
        console.warn('roundtable: new ICE servers', err);
      }
    }
    const now = new Map(m.participants.map((/** @type {any} */ p) => [p.id, p]));
    for (const [tid, meta] of [...this.meta]) {
      const p = now.get(meta.participant);
      if (!p || !p.tracks.some((/** @type {any} */ t) => t.id === tid)) {
        this.meta.delete(tid);
        this.emit('track-ended', { participant: meta.participant, trackId: tid });
      }
    }
    for (const id of [...this.people.keys()]) {
      if (!now.has(id)) {
        this.emit('participant', { id, name: this.people.get(id) || '', present: false });
        this.people.delete(id);
      }
    }
    for (const p of now.values()) {
      const known = this.people.has(p.id);
      this.people.set(p.id, p.name);
      for (const t of p.tracks) this.setMeta(p.id, t, this.meta.has(t.id));
      if (!known) this.emit('participant', { id: p.id, name: p.name, present: true });
    }
    if (m.migrated) {
      this.setupPeer(m.iceServers || []); // republishes the local tracks and offers
      this.emit('resumed', { id: m.id });
      return;
    }
    for (const l of this.local.values()) this.send({ type: 'track-update', track: l.id, source: l.source, muted: l.muted });
    if (this.pc && this.pc.signalingState === 'have-local-offer' && this.pc.localDescription) {
      this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
    }
    if (this.pc && (this.pc.connectionState === 'connected')) this.setState('connected');
    this.emit('resumed', { id: m.id });
  }

  setMeta(participant, t, updated) {
    const meta = { participant, kind: t.kind, source: t.source || (t.kind === 'audio' ? 'microphone' : 'camera'), muted: !!t.muted };
    this.meta.set(t.id, meta);
    if (updated) this.emit('meta', { participant, trackId: t.id, meta });
  }

  setupPeer(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    this.peerGone = new Promise((resolve) => { this.endPeer = resolve; });
    this.dc = pc.createDataChannel('roundtable');
    this.dc.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const i = e.data.indexOf(':');
      if (i < 0) return;
      const from = e.data.slice(0, i);
      this.emit('chat', { from, name: this.people.get(from) || 'someone', text: e.data.slice(i + 1), at: new Date() });
    };
    pc.onicecandidate = (e) => { if (e.candidate) this.send({ type: 'candidate', candidate: e.candidate.toJSON() }); };
    pc.onconnectionstatechange = () => {
      // Connected means both: media and a socket (a resume sets it too).
      if (pc.connectionState === 'connected' && this.ws && this.ws.readyState === WebSocket.OPEN) this.setState('connected');
      else if (pc.connectionState === 'disconnected' || pc.connectionState === 'failed') this.setState('reconnecting');
    };
    pc.oniceconnectionstatechange = () => {
      // The PeerConnection survives a lost path: restart ICE over the same socket.
      if (pc.iceConnectionState === 'failed') pc.restartIce();
      if (pc.iceConnectionState === 'disconnected') {
        setTimeout(() => { if (this.pc === pc && pc.iceConnectionState === 'disconnected') pc.restartIce(); }, 2000);
      }
    };
    pc.ontrack = (e) => {
      const participant = e.streams[0] ? e.streams[0].id : null;
      const trackId = midToTrack(pc.remoteDescription.sdp).get(e.transceiver.mid);
      if (!participant || !trackId) return;
      this.emit('track', { participant, trackId, track: e.track, meta: this.meta.get(trackId) });
    };
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.send({ type: 'offer', sdp: pc.localDescription.sdp });
      } catch (err) {
        console.warn('roundtable: offer failed', err);
      } finally {
        this.makingOffer = false;
      }
    };
    // With nothing to send, the data channel alone triggers the first offer.
    for (const [track, l] of this.local) this.attachLocal(track, l);
  }

  // onOffer: polite peer. setRemoteDescription of an offer rolls back an
  // offer of ours that crossed it; the browser offers again afterwards.
  async onOffer(sdp) {
    if (!this.pc) return;
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.pc.setLocalDescription();
    this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    await this.flushCandidates();
  }

  async flushCandidates() {
    for (const c of this.pendingCandidates.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
  }

  // attachLocal sends a local track on a new sendonly transceiver. Not
  // addTrack: it may reuse a transceiver the server created, whose msid
  // track id is not the track's id, and the server knows tracks by that id.
  //
  // A camera captured at 640x360 or more is sent as three simulcast layers
  // (quarter, half and full resolution), from which the server picks one per
  // subscriber; a screen share stays a single layer.
  attachLocal(track, l) {
    l.id = track.id; // the msid track id of the new transceiver
    this.send({ type: 'track-update', track: l.id, source: l.source, muted: l.muted });
    if (!this.pc) return;
    /** @type {RTCRtpTransceiverInit} */
    const init = { direction: 'sendonly', streams: [l.stream] };
    const s = track.kind === 'video' && l.source === 'camera' ? track.getSettings() : {};
    if (s.width >= 640 && s.height >= 360) {
      init.sendEncodings = [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'f', maxBitrate: 1500000 },
      ];
    }
    const tr = this.pc.addTransceiver(track, init);
    l.sender = tr.sender;
    if (track.kind === 'video') this.preferCodec(tr);
  }

  // preferCodec puts the preferred video codec (?codec=) first in the
  // transceiver's offer, so the server answers with it. The browser's own
  // order stays for the rest, and an unknown or unsupported codec changes
  // nothing.
  preferCodec(tr) {
    if (!this.codec || !tr.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
    const all = RTCRtpReceiver.getCapabilities('video').codecs;
    const want = all.filter((c) => c.mimeType.toLowerCase() === `video/${this.codec}`);
    if (want.length === 0) return;
    try {
      tr.setCodecPreferences([...want, ...all.filter((c) => !want.includes(c))]);
    } catch (err) {
      console.warn('roundtable: codec preference', err);
    }
  }

  // publish sends a local track (source: camera, microphone, screen).
  publish(track, stream, source) {
    const l = { id: track.id, source, stream, muted: !track.enabled, sender: null };
    this.local.set(track, l);
    if (this.pc) this.attachLocal(track, l);
  }

  unpublish(track) {
    const l = this.local.get(track);
    if (!l) return;
    this.local.delete(track);
    if (this.pc && l.sender) this.pc.removeTrack(l.sender);
  }

  setMuted(track, muted) {
    const l = this.local.get(track);
    if (!l) return;
    track.enabled = !muted;
    l.muted = muted;
    this.send({ type: 'track-update', track: l.id, source: l.source, muted });
  }

  // replaceTrack sends track in place of a published one, on the same
  // sender (RTCRtpSender.replaceTrack): no renegotiation, and the server
  // and the others keep knowing it by the first track's id. The new track
  // takes over the old one's muted state.
  //
  // The local map moves to the new track first, so a rejoin meanwhile
  // publishes the new one; and a PeerConnection torn down meanwhile (its
  // pending operations never settle) does not hold the caller forever.
  async replaceTrack(old, track) {
    const l = this.local.get(old);
    if (!l) throw new Error('replaceTrack: not a published track');
    track.enabled = !l.muted;
    this.local.delete(old);
    this.local.set(track, l);
    if (!l.sender) return;
    try {
      await Promise.race([l.sender.replaceTrack(track), this.peerGone]);
    } catch (err) {
      if (this.local.get(track) === l) { this.local.delete(track); this.local.set(old, l); }
      throw err;
    }
  }

  // setViewport tells the server how a received track is shown: its size
  // in device pixels, and whether it is visible at all (hidden video is
  // paused by the server and resumes with a keyframe).
  setViewport(trackId, width, height, visible) {
    this.send({ type: 'viewport', track: trackId, width: Math.round(width), height: Math.round(height), visible });
  }

  sendChat(text) {
    if (!this.dc || this.dc.readyState !== 'open') return false;
    try {
      // The browser refuses a message over the server's a=max-message-size.
      this.dc.send(text);
    } catch (err) {
      this.emit('problem', { code: 'data_too_large', message: `Message not sent: ${err.message}` });
      return false;
    }
    return true;
  }

  leave() {
    this.closed = true;
    this.send({ type: 'leave' });
    this.teardownPeer();
    if (this.ws) this.ws.close();
    this.setState('closed');
  }
}
