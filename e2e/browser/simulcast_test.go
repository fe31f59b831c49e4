package browser

import (
	"strconv"
	"testing"
	"time"
)

// inboundFrameWidth is the frameWidth of the first remote video stream.
const inboundFrameWidth = `(async () => {
  const pc = window.roundtable && window.roundtable.session.pc;
  if (!pc) return 0;
  let w = 0;
  (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.frameWidth) w = s.frameWidth; });
  return w;
})()`

// inboundCodec is the mimeType of the first remote video stream's codec.
const inboundCodec = `(async () => {
  const pc = window.roundtable && window.roundtable.session.pc;
  if (!pc) return '';
  const stats = await pc.getStats();
  let mime = '';
  stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.codecId && stats.get(s.codecId)) mime = stats.get(s.codecId).mimeType; });
  return mime;
})()`

// A Chromium tab publishing its camera as simulcast is received by another
// tab; shrinking the receiving window (and so its tile) makes the server
// send a smaller layer,
// and the decoded frameWidth reported by getStats() drops. Both codecs the
// issue names: VP8 (Chromium's default) and H.264 (?codec=h264; Debian's
// Chromium encodes it with OpenH264), whose keyframes and layer sizes the
// server reads from the SPS.
func TestSimulcastFromChromium(t *testing.T) {
	for _, tc := range []struct{ codec, mime string }{{"", "video/VP8"}, {"h264", "video/H264"}} {
		t.Run(tc.mime, func(t *testing.T) { simulcastFromChromium(t, tc.codec, tc.mime) })
	}
}

func simulcastFromChromium(t *testing.T, codec, mime string) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	pub := b.open(srv.URL() + "r/sim?name=Pub&codec=" + codec)
	sub := b.open(srv.URL() + "r/sim?name=Sub")
	waitJS(t, pub, "three encodings on the camera sender", `(() => {
		const pc = window.roundtable && window.roundtable.session.pc;
		return !!pc && pc.getSenders().some(s => s.track && s.track.kind === 'video' && s.getParameters().encodings.length === 3);
	})()`, 15*time.Second)
	waitJS(t, sub, "the remote video playing", remoteVideosPlaying+"(1)", 20*time.Second)
	if got := eval[string](t, sub, inboundCodec); got != mime {
		t.Fatalf("received codec %q, want %q", got, mime)
	}
	// Chromium enables its layers as its bandwidth estimate grows: wait
	// for the middle one at least.
	deadline := time.Now().Add(15 * time.Second)
	big := 0
	for time.Now().Before(deadline) && big < 320 {
		big = eval[int](t, sub, inboundFrameWidth)
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Second)
	big = max(big, eval[int](t, sub, inboundFrameWidth))
	t.Logf("large tile: frameWidth %d", big)
	if big < 320 {
		t.Fatalf("large tile decodes %d px wide, want the top layers", big)
	}
	setViewport(t, sub, 360, 300) // a tile about 170 px wide
	waitJS(t, sub, "a smaller decoded frame", inboundFrameWidth+`.then(w => w > 0 && w < `+strconv.Itoa(big)+`)`, 15*time.Second)
	small := eval[int](t, sub, inboundFrameWidth)
	t.Logf("small tile: frameWidth %d", small)
}
