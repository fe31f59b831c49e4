// @ts-check
// Media devices: the user's camera and microphone, opened with the
// preferences kept in localStorage, and switched during the call by
// replacing the sender's track (RTCRtpSender.replaceTrack: no
// renegotiation, the other side sees the same track go on). Main thread.

/** Preferences kept across reloads, under "roundtable." in localStorage. */
export const prefs = {
  /** @param {string} key @param {string} fallback */
  get(key, fallback) {
    try { return localStorage.getItem(`roundtable.${key}`) ?? fallback; } catch { return fallback; }
  },
  /** @param {string} key @param {string} value */
  set(key, value) {
    try { localStorage.setItem(`roundtable.${key}`, value); } catch { /* private mode */ }
  },
  /** @param {string} key @param {boolean} fallback */
  flag(key, fallback) { return this.get(key, String(fallback)) === 'true'; },
};

/** @param {string} deviceId @returns {MediaTrackConstraints} */
export function videoConstraints(deviceId) {
  const c = { width: 640, height: 360 };
  return deviceId ? { ...c, deviceId: { exact: deviceId } } : c;
}

/**
 * audioConstraints: the chosen microphone with the browser's noise
 * suppression and echo cancellation as the user set them (both on by
 * default).
 * @param {string} deviceId
 * @returns {MediaTrackConstraints}
 */
export function audioConstraints(deviceId) {
  const c = { noiseSuppression: prefs.flag('noiseSuppression', true), echoCancellation: prefs.flag('echoCancellation', true) };
  return deviceId ? { ...c, deviceId: { exact: deviceId } } : c;
}

/**
 * getMedia asks for camera and microphone (the chosen ones, then any),
 * then for either alone; null when there is neither (denied or absent).
 * @param {string} camera device id, '' for any
 * @param {string} mic device id, '' for any
 * @returns {Promise<MediaStream|null>}
 */
export async function getMedia(camera, mic) {
  /** @type {MediaStreamConstraints[]} */
  const tries = [{ video: videoConstraints(camera), audio: audioConstraints(mic) }];
  if (camera || mic) tries.push({ video: videoConstraints(''), audio: audioConstraints('') });
  tries.push({ audio: audioConstraints('') }, { video: videoConstraints('') });
  for (const c of tries) {
    try { return await navigator.mediaDevices.getUserMedia(c); } catch { /* try less */ }
  }
  return null;
}

/**
 * listDevices groups the browser's devices by kind.
 * @returns {Promise<Record<'videoinput'|'audioinput'|'audiooutput', MediaDeviceInfo[]>>}
 */
export async function listDevices() {
  const out = { videoinput: [], audioinput: [], audiooutput: [] };
  const all = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  for (const d of all) if (d.kind in out && d.deviceId) out[d.kind].push(d);
  return out;
}

/**
 * fillSelect lists devices as a select's options, the current one chosen;
 * with none current (none in use), a first option "None" (value '').
 * @param {HTMLSelectElement} select
 * @param {MediaDeviceInfo[]} devices
 * @param {string} current
 */
export function fillSelect(select, devices, current) {
  select.textContent = '';
  if (devices.length && !devices.some((d) => d.deviceId === current)) {
    const none = document.createElement('option');
    none.value = '';
    none.textContent = 'None';
    select.append(none);
  }
  devices.forEach((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `${d.kind} ${i + 1}`;
    o.selected = d.deviceId === current;
    select.append(o);
  });
  select.disabled = devices.length === 0;
}

/** Whether the browser can choose the speaker a media element plays on. */
export const canChooseSpeaker = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

/**
 * LocalMedia owns the user's camera and microphone tracks for the call.
 * Switching a device opens the new one, puts it on the sender with
 * Session.replaceTrack, then stops the old one; a track switched off
 * stays off. Switches run one at a time, in the order asked. Fires
 * "change" {kind, from, to} after each switch.
 */
export class LocalMedia extends EventTarget {
  /**
   * @param {import('./session.js').Session} session
   * @param {MediaStream|null} stream what the pre-join screen opened
   */
  constructor(session, stream) {
    super();
    this.session = session;
    /** @type {MediaStreamTrack|null} */
    this.camera = stream?.getVideoTracks()[0] || null;
    /** @type {MediaStreamTrack|null} */
    this.mic = stream?.getAudioTracks()[0] || null;
    this.stream = stream || new MediaStream();
    /** @type {Promise<unknown>} the switch in progress, if any */
    this.switching = Promise.resolve();
  }

  /** publish sends the tracks the call started with. */
  publish() {
    if (this.camera) this.session.publish(this.camera, this.stream, 'camera');
    if (this.mic) this.session.publish(this.mic, this.stream, 'microphone');
  }

  /** The device id a track was opened on. @param {MediaStreamTrack|null} t */
  static deviceOf(t) { return (t && t.getSettings().deviceId) || ''; }

  /**
   * serially runs a switch after the ones before it (settled either way).
   * @param {() => Promise<void>} job
   * @returns {Promise<void>}
   */
  serially(job) {
    const run = this.switching.then(job, job);
    this.switching = run.catch(() => {});
    return run;
  }

  /** @param {string} deviceId */
  switchCamera(deviceId) {
    return this.serially(async () => {
      const s = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(deviceId) });
      prefs.set('camera', deviceId);
      await this.swap('camera', s.getVideoTracks()[0]);
    });
  }

  /**
   * switchMic opens deviceId, or the current microphone again after a
   * change of noise suppression or echo cancellation. Chromium keeps one
   * audio processing per device, so the same microphone with other
   * settings opens only once its old track has ended; if it then fails to
   * open, the old settings are tried again so the call does not go
   * silent.
   * @param {string} deviceId
   */
  switchMic(deviceId) {
    return this.serially(async () => {
      const old = this.mic;
      const same = !!old && LocalMedia.deviceOf(old) === deviceId;
      const oldConstraints = old ? old.getConstraints() : null;
      if (same && old) old.stop();
      let s;
      try {
        s = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(deviceId) });
      } catch (err) {
        if (same && oldConstraints) await this.swap('mic', (await navigator.mediaDevices.getUserMedia({ audio: oldConstraints })).getAudioTracks()[0]);
        throw err;
      }
      prefs.set('mic', deviceId);
      await this.swap('mic', s.getAudioTracks()[0]);
    });
  }

  /**
   * swap puts track in place of the current one of kind: on the same
   * sender when there is one, published anew when the call had none. On
   * failure the new track is stopped and the old one stays.
   * @param {'camera'|'mic'} kind
   * @param {MediaStreamTrack} track
   */
  async swap(kind, track) {
    const from = this[kind];
    try {
      if (from) await this.session.replaceTrack(from, track);
    } catch (err) {
      track.stop();
      throw err;
    }
    if (from) {
      this.stream.removeTrack(from);
      from.stop();
    }
    this.stream.addTrack(track);
    this[kind] = track;
    if (!from) this.session.publish(track, this.stream, kind === 'camera' ? 'camera' : 'microphone');
    this.dispatchEvent(new CustomEvent('change', { detail: { kind, from, to: track } }));
  }

  /** stop ends every local track (leaving the call). */
  stop() {
    for (const t of this.stream.getTracks()) t.stop();
  }
}
