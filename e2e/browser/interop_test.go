package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// inboundMediaJS describes what a tab receives, as JSON: the bytes that
// reached its PeerConnection, per inbound RTP stream its codec, packets,
// decoded frames (video) and samples (audio), and the width of every
// remote tile's video. (Packets of a payload type the browser did not
// negotiate are dropped before any stream counts them, or counted in a
// stream without a codec: the bytes still show them.)
const inboundMediaJS = `(async () => {
  const pc = window.roundtable && window.roundtable.session.pc;
  const out = { bytes: 0, video: [], audio: [], tiles: [...document.querySelectorAll('.tile:not(.self) video')].map(v => v.videoWidth) };
  if (!pc) return JSON.stringify(out);
  const stats = await pc.getStats();
  stats.forEach(s => {
    if (s.type === 'candidate-pair' && s.state === 'succeeded') out.bytes += s.bytesReceived || 0;
    if (s.type !== 'inbound-rtp') return;
    const c = s.codecId && stats.get(s.codecId);
    out[s.kind].push({ codec: c ? c.mimeType + ' pt ' + c.payloadType : 'none', packets: s.packetsReceived || 0,
      frames: s.framesDecoded || 0, samples: s.totalSamplesReceived || 0, concealed: s.concealedSamples || 0 });
  });
  return JSON.stringify(out);
})()`

// inbound is one reading of inboundMediaJS.
type inbound struct {
	Bytes        int64
	Video, Audio []inboundStream
	Tiles        []int
}

type inboundStream struct {
	Codec                               string
	Packets, Frames, Samples, Concealed int64
}

// sum adds up the streams of one kind.
func sum(streams []inboundStream) (s inboundStream) {
	var codecs []string
	for _, x := range streams {
		codecs = append(codecs, x.Codec)
		s.Packets += x.Packets
		s.Frames += x.Frames
		s.Samples += x.Samples
		s.Concealed += x.Concealed
	}
	s.Codec = strings.Join(codecs, ", ")
	return s
}

// peer is a tab in a room, named for failure messages.
type peer struct {
	name, from string // "Chromium (Ann)", receiving from "Firefox"
	tab        context.Context
}

// reception is what one peer has shown of the others' media so far.
type reception struct {
	prev, cur    inbound
	video, audio bool // decoded media seen growing
}

// update takes a new reading: video counts when frames are decoded and a
// remote tile shows a picture, audio when samples are decoded (received,
// not concealed), both growing since the previous reading.
func (r *reception) update(in inbound) {
	r.prev, r.cur = r.cur, in
	pv, cv := sum(r.prev.Video), sum(r.cur.Video)
	pa, ca := sum(r.prev.Audio), sum(r.cur.Audio)
	tile := false
	for _, w := range in.Tiles {
		tile = tile || w > 0
	}
	if tile && cv.Packets > pv.Packets && cv.Frames > pv.Frames {
		r.video = true
	}
	// (Firefox's concealedSamples sometimes goes down between readings.)
	if ca.Packets > pa.Packets && ca.Samples > pa.Samples && ca.Samples-ca.Concealed > pa.Samples-pa.Concealed {
		r.audio = true
	}
}

// String says what the peer saw, with the growth since the reading before.
func (r *reception) String() string {
	pv, cv := sum(r.prev.Video), sum(r.cur.Video)
	pa, ca := sum(r.prev.Audio), sum(r.cur.Audio)
	return fmt.Sprintf("%d bytes received (%+d); video %d stream(s) [%s]: %d packets (%+d), %d frames decoded (%+d), remote tile widths %v; "+
		"audio %d stream(s) [%s]: %d packets (%+d), %d samples (%+d) of which %d concealed (%+d)",
		r.cur.Bytes, r.cur.Bytes-r.prev.Bytes, len(r.cur.Video), cv.Codec, cv.Packets, cv.Packets-pv.Packets, cv.Frames, cv.Frames-pv.Frames, r.cur.Tiles,
		len(r.cur.Audio), ca.Codec, ca.Packets, ca.Packets-pa.Packets, ca.Samples, ca.Samples-pa.Samples,
		ca.Concealed, ca.Concealed-pa.Concealed)
}

// expectMediaBothWays waits until every peer decodes the others' video
// and audio, growing from a first reading taken when it is called (a
// reused receiver keeps its counts); otherwise it fails saying what each
// peer received.
func expectMediaBothWays(t *testing.T, peers []peer, timeout time.Duration) {
	t.Helper()
	seen := make([]reception, len(peers))
	read := func(p peer) (in inbound, ok bool) {
		js, err := evaluate[string](p.tab, inboundMediaJS)
		return in, err == nil && json.Unmarshal([]byte(js), &in) == nil
	}
	for i, p := range peers {
		seen[i].cur, _ = read(p) // the baseline
	}
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for i, p := range peers {
			if in, ok := read(p); ok {
				seen[i].update(in)
			}
			done = done && seen[i].video && seen[i].audio
		}
		if done {
			for i, p := range peers {
				t.Logf("%s from %s: %s", p.name, p.from, &seen[i])
			}
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for i, p := range peers {
		var missing []string
		if !seen[i].video {
			missing = append(missing, "video")
		}
		if !seen[i].audio {
			missing = append(missing, "audio")
		}
		verdict := "decodes video and audio"
		if len(missing) > 0 {
			verdict = "decodes no " + strings.Join(missing, " and no ")
		}
		if r := seen[i]; len(missing) > 0 && r.cur.Bytes > r.prev.Bytes {
			verdict += " (media arrives but is not decoded)"
		}
		t.Errorf("%s %s from %s after %v: %s", p.name, verdict, p.from, timeout, &seen[i])
	}
}

// sendChat sends text from one tab's chat form and waits until another tab
// shows it with the sender's name.
func sendChat(t *testing.T, from, to context.Context, sender, text string) {
	t.Helper()
	eval[bool](t, from, `document.getElementById('chat-input').value = '`+text+`';
		document.getElementById('chat-form').requestSubmit(); true`)
	waitJS(t, to, "the chat message from "+sender,
		`[...document.querySelectorAll('#messages li')].some(li => li.textContent.includes('`+sender+`: `+text+`'))`, 10*time.Second)
}

const connectedJS = `!!window.roundtable && window.roundtable.session.state === 'connected'`

// Two Firefox tabs (each its own window, so neither is a background tab)
// make a video room: each decodes the other's video and audio, and chat
// crosses the data channel. This checks the Firefox driver itself.
func TestTwoFirefoxTabs(t *testing.T) {
	srv := startServer(t)
	fx := newFirefox(t)
	defer fx.screenshots()
	fay := fx.open(srv.URL() + "r/foxes?name=Fay")
	fox := fx.open(srv.URL() + "r/foxes?name=Fox")
	for _, tab := range []context.Context{fay, fox} {
		waitJS(t, tab, "the PeerConnection connected", connectedJS, 20*time.Second)
	}
	expectMediaBothWays(t, []peer{{"Firefox tab 1 (Fay)", "tab 2", fay}, {"Firefox tab 2 (Fox)", "tab 1", fox}}, 30*time.Second)
	sendChat(t, fay, fox, "Fay", "hello from Fay")
}

// Chromium and Firefox in one room through the web client: each plays the
// other's video and audio, and chat goes from Firefox to Chromium. The two
// number their codecs differently (Chromium: Opus 111, VP8 96; Firefox:
// Opus 109, VP8 120), so the server must rewrite each packet's payload
// type to the receiver's number; a wrong one shows as packets received
// but no frame or sample decoded.
func TestFirefoxAndChromiumShareARoom(t *testing.T) {
	srv := startServer(t)
	cr := newBrowser(t)
	defer cr.screenshots()
	fx := newFirefox(t)
	defer fx.screenshots()
	ann := cr.open(srv.URL() + "r/mixed?name=Ann")
	fay := fx.open(srv.URL() + "r/mixed?name=Fay")
	for _, tab := range []context.Context{ann, fay} {
		waitJS(t, tab, "the PeerConnection connected", connectedJS, 20*time.Second)
	}
	expectMediaBothWays(t, []peer{{"Chromium (Ann)", "Firefox", ann}, {"Firefox (Fay)", "Chromium", fay}}, 30*time.Second)
	sendChat(t, fay, ann, "Fay", "hello from Firefox")

	// m-lines are reused: Ann's socket drops and she joins again as a new
	// participant; each browser gets the other's new tracks on the m-lines
	// of the old ones (same mid, new msid: ontrack fires again on a
	// transceiver that had a track before), plays them, and holds no more
	// m-lines than before.
	const mlines = `String(window.roundtable.session.pc.remoteDescription.sdp.split('\nm=').length - 1)`
	before := map[string]string{"Chromium": eval[string](t, ann, mlines), "Firefox": eval[string](t, fay, mlines)}
	id := eval[string](t, ann, `window.roundtable.session.id`)
	if !srv.Signal.CloseParticipant(id, "test_drop") {
		t.Fatal("no session for Ann")
	}
	waitJS(t, ann, "Ann joined again", `window.roundtable.session.id !== '`+id+`' && `+connectedJS, 20*time.Second)
	expectMediaBothWays(t, []peer{{"Chromium (Ann, rejoined)", "Firefox", ann}, {"Firefox (Fay)", "Chromium, rejoined", fay}}, 30*time.Second)
	if got := eval[string](t, fay, mlines); got != before["Firefox"] {
		t.Errorf("Firefox holds %s m-lines after Ann rejoined, %s before: they were not reused", got, before["Firefox"])
	}
	t.Logf("m-lines before and after the rejoin: Chromium %s (a new PeerConnection: %s), Firefox %s and %s",
		before["Chromium"], eval[string](t, ann, mlines), before["Firefox"], eval[string](t, fay, mlines))
}
