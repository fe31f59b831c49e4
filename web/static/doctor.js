// @ts-check
// The connection check (/doctor): one probe per path (docs/protocol.md,
// "Connection check"), each its own WebSocket and RTCPeerConnection with a
// data channel only, in no room. The server keeps its candidates to the
// probed transport; the relay probe uses the TURN servers the server hands
// out with iceTransportPolicy "relay". Results go into a table, a sentence
// and a report the user can copy.

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

export const CHECKS = [
  { transport: 'udp', label: 'Direct, over UDP (the fastest)' },
  { transport: 'tcp', label: 'Direct, over TCP' },
  { transport: 'relay', label: 'Through the relay (TURN)' },
];

const TIMEOUT_MS = 20000;

// probe runs one check; it resolves to {transport, connected, path?,
// reason?, ms}. It never rejects.
/**
 * @param {string} transport
 * @param {{room?: string, token?: string}} [opts]
 */
export function probe(transport, { room, token } = {}) {
  const started = performance.now();
  return new Promise((resolve) => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    let pc = null;
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (pc) pc.close();
      ws.close();
      resolve({ transport, ms: Math.round(performance.now() - started), ...r });
    };
    const timer = setTimeout(() => finish({ connected: false, reason: 'timeout' }), TIMEOUT_MS);
    const send = (m) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
    // The browser's own candidates of the probed transport only.
    const wanted = (c) => transport === 'relay' || !c || c.toLowerCase().includes(` ${transport} `);
    ws.onopen = () => send({ type: 'probe', transport, room: room || undefined, token: token || undefined });
    ws.onclose = () => finish({ connected: false, reason: 'closed' });
    ws.onerror = () => finish({ connected: false, reason: 'unreachable' });
    ws.onmessage = async (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      try {
        switch (m.type) {
          case 'probe-ready': {
            const relay = transport === 'relay';
            pc = new RTCPeerConnection({ iceServers: relay ? m.iceServers : [], iceTransportPolicy: relay ? 'relay' : 'all' });
            pc.onicecandidate = (ev) => {
              if (ev.candidate && wanted(ev.candidate.candidate)) send({ type: 'candidate', candidate: ev.candidate.toJSON() });
            };
            pc.createDataChannel('roundtable'); // the one label the server accepts
            const offer = await pc.createOffer();
            await pc.setLocalDescription(offer);
            send({ type: 'offer', sdp: offer.sdp });
            break;
          }
          case 'answer': await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }); break;
          case 'candidate': if (pc) await pc.addIceCandidate(m.candidate).catch(() => {}); break;
          case 'probe-result': finish({ connected: m.connected, path: m.path, reason: m.reason }); break;
          case 'error': finish({ connected: false, reason: m.code }); break;
        }
      } catch (err) {
        finish({ connected: false, reason: String(err) });
      }
    };
  });
}

// summarize turns the results into one sentence.
export function summarize(results) {
  const ok = (t) => results.some((r) => r.transport === t && r.connected);
  if (ok('udp')) return 'Your network works for calls on this server.';
  if (ok('tcp')) return 'Your network blocks UDP, so calls go over TCP: they work, with a little more delay.';
  if (ok('relay')) return 'Your network blocks direct connections; calls work through the relay, with a little more delay.';
  return 'Your network blocks every way to this server\'s audio and video. ' +
    'Copy the report below and send it to whoever runs your network or this server.';
}

function row(check) {
  const tr = document.createElement('tr');
  const th = document.createElement('th');
  th.scope = 'row';
  th.textContent = check.label;
  const td = document.createElement('td');
  td.textContent = 'checking…';
  td.dataset.transport = check.transport;
  tr.append(th, td);
  $('doctor-results').tBodies[0].append(tr);
  return td;
}

function describe(r) {
  if (r.connected) return `works (${r.path}, ${r.ms} ms)`;
  return `blocked (${r.reason})`;
}

async function run() {
  const q = new URLSearchParams(location.search);
  const opts = { room: q.get('room') || '', token: q.get('token') || '' };
  if (opts.room) $('doctor-back').href = `/r/${encodeURIComponent(opts.room)}${opts.token ? `?token=${encodeURIComponent(opts.token)}` : ''}`;
  $('doctor-results').tBodies[0].textContent = '';
  $('doctor-summary').textContent = 'Checking…';
  $('doctor-copy').disabled = $('doctor-again').disabled = true;
  const cells = CHECKS.map(row);
  const results = await Promise.all(CHECKS.map(async (c, i) => {
    const r = await probe(c.transport, opts);
    cells[i].textContent = describe(r);
    cells[i].dataset.result = r.connected ? 'ok' : 'blocked';
    return r;
  }));
  $('doctor-summary').textContent = summarize(results);
  $('doctor-report').value = JSON.stringify({
    server: location.host, at: new Date().toISOString(), userAgent: navigator.userAgent, results,
  }, null, 2);
  $('doctor-copy').disabled = $('doctor-again').disabled = false;
  document.body.dataset.done = 'true';
}

$('doctor-copy').onclick = async () => {
  try {
    await navigator.clipboard.writeText($('doctor-report').value);
    $('doctor-copy').textContent = 'Copied';
  } catch {
    $('doctor-report').select(); // the user copies by hand
  }
};
$('doctor-again').onclick = () => { document.body.dataset.done = ''; run(); };
run();
