package browser

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pickOther selects, in a settings select, an option other than the
// chosen one and fires its change; it returns the new value.
func pickOther(id string) string {
	return `(() => { const s = document.getElementById('` + id + `');
	  const o = [...s.options].find(o => o.value !== s.value); if (!o) return '';
	  s.value = o.value; s.dispatchEvent(new Event('change')); return o.value; })()`
}

// Issue 12, test 4: switching camera, microphone and speaker during the
// call, from the settings dialog. The sender's track is replaced, nothing
// is renegotiated, and the other tab keeps receiving video and audio on
// the same track ids. The mirror and the audio processing toggles work
// too, and muting after a switch still reaches the others.
func TestSwitchDevicesDuringCall(t *testing.T) {
	srv := startServer(t)
	// Chromium's second fake camera delivers depth frames (Y16), which
	// its encoder drops: the switch goes from the first to the third.
	b := startBrowser(t, true, chromedp.Flag("use-fake-device-for-media-stream", "device-count=3"))
	defer b.screenshots()
	tabs := openRoom(b, srv.URL(), "switch", "Ann", "Bob")
	ann, bob := tabs[0], tabs[1]
	for _, tab := range tabs {
		waitJS(t, tab, "the remote video", remoteVideosPlaying+"(1)", 20*time.Second)
	}
	annID := selfID(t, ann)
	// Count what Ann's session sends from now on: a renegotiation is an offer.
	eval[bool](t, ann, `(() => { const s = window.roundtable.session; window.sentTypes = [];
		const send = s.send.bind(s); s.send = (m) => { window.sentTypes.push(m.type); send(m); }; return true; })()`)
	sdp := eval[string](t, ann, `window.roundtable.session.pc.localDescription.sdp`)
	bobTracks := eval[string](t, bob, `JSON.stringify([...window.roundtable.session.meta.keys()].sort())`)
	videoBefore := senderTrack(t, ann, "video")

	eval[bool](t, ann, `document.getElementById('settings-open').click(); true`)
	waitJS(t, ann, "the settings dialog with three cameras", `document.getElementById('settings').open &&
		document.getElementById('set-camera').options.length === 3`, 5*time.Second)
	camera := eval[string](t, ann, `(() => { const s = document.getElementById('set-camera');
		s.value = s.options[2].value; s.dispatchEvent(new Event('change')); return s.value; })()`)
	waitJS(t, ann, "the new camera on the sender", `(() => { const s = window.roundtable.session.pc.getSenders().find(s => s.track && s.track.kind === 'video');
		return s.track.getSettings().deviceId === '`+camera+`' && s.track.readyState === 'live'; })()`, 10*time.Second)
	if after := senderTrack(t, ann, "video"); after == videoBefore {
		t.Fatal("the video sender still has the old track")
	}
	waitJS(t, ann, "the preview showing the new camera", `document.getElementById('settings-preview').srcObject.getVideoTracks()[0] === window.roundtable.local.camera`, 5*time.Second)
	waitJS(t, ann, "the self view showing the new camera", `window.roundtable.tiles.tiles.get(window.roundtable.session.id + ':camera').stream.getVideoTracks()[0] === window.roundtable.local.camera`, 5*time.Second)

	audioBefore := senderTrack(t, ann, "audio")
	mic := eval[string](t, ann, pickOther("set-mic"))
	waitJS(t, ann, "the new microphone on the sender", `(() => { const s = window.roundtable.session.pc.getSenders().find(s => s.track && s.track.kind === 'audio');
		return s.track.id !== '`+audioBefore+`' && s.track.getSettings().deviceId === '`+mic+`'; })()`, 10*time.Second)
	eval[bool](t, ann, `(() => { const c = document.getElementById('set-ns'); c.checked = false; c.dispatchEvent(new Event('change')); return true; })()`)
	waitJS(t, ann, "noise suppression off on the microphone", `window.roundtable.local.mic.getSettings().noiseSuppression === false &&
		window.roundtable.session.pc.getSenders().some(s => s.track === window.roundtable.local.mic)`, 10*time.Second)
	speaker := eval[string](t, ann, pickOther("set-speaker"))
	waitJS(t, ann, "Bob's tile playing on the chosen speaker", tileOf(selfID(t, bob), "camera")+`.querySelector('video').sinkId === '`+speaker+`'`, 5*time.Second)
	eval[bool](t, ann, `(() => { const c = document.getElementById('set-mirror'); c.checked = false; c.dispatchEvent(new Event('change')); return true; })()`)
	if m := eval[string](t, ann, `getComputedStyle(`+tileOf(annID, "camera")+`.querySelector('video')).transform`); m != "none" {
		t.Errorf("self view transform %q with the mirror off", m)
	}
	eval[bool](t, ann, `document.getElementById('settings-done').click(); true`)
	waitJS(t, ann, "the dialog closed", `!document.getElementById('settings').open`, 5*time.Second)

	// Bob saw none of it: same tracks, still playing and hearing Ann.
	waitJS(t, bob, "Ann's video after the switch", remoteVideosPlaying+"(1)", 10*time.Second)
	waitJS(t, bob, "Ann's audio after the switch", remoteAudioFlowing+"(1)", 10*time.Second)
	if got := eval[string](t, bob, `JSON.stringify([...window.roundtable.session.meta.keys()].sort())`); got != bobTracks {
		t.Errorf("Bob's tracks changed: %s, were %s", got, bobTracks)
	}
	if got := eval[string](t, ann, `window.roundtable.session.pc.localDescription.sdp`); got != sdp {
		t.Error("Ann's local description changed: the switch renegotiated")
	}
	if sent := eval[string](t, ann, `window.sentTypes.join(',')`); sent != "" {
		t.Errorf("Ann sent %q during the switch, want nothing", sent)
	}

	// The replaced camera keeps the id the server knows: muting it reaches Bob.
	eval[bool](t, ann, `document.getElementById('cam').click(); true`)
	waitJS(t, bob, "Ann's camera shown off", tileOf(annID, "camera")+`.classList.contains('camera-off')`, 5*time.Second)
	eval[bool](t, ann, `document.getElementById('cam').click(); true`)
	waitJS(t, bob, "Ann's camera shown on", `!`+tileOf(annID, "camera")+`.classList.contains('camera-off')`, 5*time.Second)
}
