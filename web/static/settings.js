// @ts-check
// The in-call settings dialog: camera, microphone and speaker, with a
// preview of the camera (mirrored like the self-view); the self-view mirror; the
// browser's noise suppression and echo cancellation. Every change applies
// at once, during the call, without renegotiating (media.js replaces the
// sender's track), and is kept for the next call. Main thread.
import { LocalMedia, canChooseSpeaker, fillSelect, listDevices, prefs } from './media.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

export class Settings {
  /**
   * @param {LocalMedia} media
   * @param {import('./tiles.js').Tiles} tiles
   * @param {HTMLElement} stage
   * @param {(text: string) => void} announce
   */
  constructor(media, tiles, stage, announce) {
    this.media = media;
    this.tiles = tiles;
    this.stage = stage;
    this.announce = announce;
    /** @type {HTMLDialogElement} */
    this.dialog = $('settings');
    this.mirror(prefs.flag('mirror', true));
    const speaker = prefs.get('speaker', '');
    if (canChooseSpeaker && speaker) tiles.setSink(speaker);
    $('set-speaker-label').hidden = !canChooseSpeaker;
    // '' is "None": the call has no such device yet, and stays so.
    $('set-camera').onchange = () => $('set-camera').value && this.apply(() => media.switchCamera($('set-camera').value), 'Camera changed');
    $('set-mic').onchange = () => $('set-mic').value && this.apply(() => media.switchMic($('set-mic').value), 'Microphone changed');
    $('set-speaker').onchange = () => {
      prefs.set('speaker', $('set-speaker').value);
      tiles.setSink($('set-speaker').value);
    };
    $('set-mirror').onchange = () => {
      prefs.set('mirror', String($('set-mirror').checked));
      this.mirror($('set-mirror').checked);
      this.preview();
    };
    for (const [id, key] of [['set-ns', 'noiseSuppression'], ['set-ec', 'echoCancellation']]) {
      $(id).onchange = () => {
        prefs.set(key, String($(id).checked));
        if (media.mic) this.apply(() => media.switchMic(LocalMedia.deviceOf(media.mic)), 'Microphone settings changed');
      };
    }
    media.addEventListener('change', () => this.preview());
    this.dialog.addEventListener('close', () => { $('settings-preview').srcObject = null; });
  }

  /** open shows the dialog with the devices there are now. */
  async open() {
    const devices = await listDevices();
    fillSelect($('set-camera'), devices.videoinput, LocalMedia.deviceOf(this.media.camera));
    fillSelect($('set-mic'), devices.audioinput, LocalMedia.deviceOf(this.media.mic));
    fillSelect($('set-speaker'), devices.audiooutput, this.tiles.sinkId || 'default');
    $('set-mirror').checked = prefs.flag('mirror', true);
    $('set-ns').checked = prefs.flag('noiseSuppression', true);
    $('set-ec').checked = prefs.flag('echoCancellation', true);
    $('settings-error').hidden = true;
    this.preview();
    this.dialog.showModal();
  }

  preview() {
    const cam = this.media.camera;
    $('settings-preview').srcObject = cam ? new MediaStream([cam]) : null;
    $('settings-preview').classList.toggle('mirror', prefs.flag('mirror', true));
  }

  /** @param {boolean} on mirror the self-view (the others always see it unmirrored) */
  mirror(on) {
    this.stage.classList.toggle('mirror', on);
  }

  /**
   * apply runs a device switch, reporting a failure in the dialog.
   * @param {() => Promise<void>} change
   * @param {string} done what to announce when it worked
   */
  async apply(change, done) {
    $('settings-error').hidden = true;
    try {
      await change();
      this.announce(done);
    } catch (err) {
      $('settings-error').textContent = `Could not switch: ${err instanceof Error ? err.message : err}`;
      $('settings-error').hidden = false;
    }
  }
}
