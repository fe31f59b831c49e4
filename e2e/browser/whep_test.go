package browser

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/client"
)

// whepPlayJS plays a WHEP URL with a plain RTCPeerConnection, as any web
// page could (no Roundtable code): one receiving audio and one video
// transceiver, the offer POSTed once gathering is done (the server takes
// no trickle from a page that does not PATCH), the answer applied, the
// stream shown in a <video>. The PeerConnection is left where
// inboundMediaJS looks. It returns "ok" or what went wrong.
const whepPlayJS = `(async (url) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('audio', {direction: 'recvonly'});
  pc.addTransceiver('video', {direction: 'recvonly'});
  const v = document.createElement('video');
  v.autoplay = true; v.muted = true; v.playsInline = true;
  document.body.append(v);
  pc.ontrack = (e) => { v.srcObject = e.streams[0]; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') done(); };
    setTimeout(done, 3000);
  });
  const res = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
  const body = await res.text();
  if (res.status !== 201) return 'status ' + res.status + ': ' + body;
  await pc.setRemoteDescription({type: 'answer', sdp: body});
  window.roundtable = {session: {pc}};
  window.whepVideo = v;
  return 'ok';
})`

// readInbound reads inboundMediaJS in a tab.
func readInbound(t *testing.T, tab context.Context) inbound {
	t.Helper()
	var in inbound
	if err := json.Unmarshal([]byte(eval[string](t, tab, inboundMediaJS)), &in); err != nil {
		t.Fatal(err)
	}
	return in
}

// Chromium as a WHEP player: a page with a plain RTCPeerConnection plays
// a room whose member is another Chromium tab (its fake camera and
// microphone: real VP8 and Opus), decoding video frames of the member's
// size and audio samples. And Chromium as a member receiving a WHIP
// publisher: a pion encoder's audio and video reach the tab's
// PeerConnection.
func TestChromiumPlaysWHEPAndReceivesWHIP(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	base := srv.URL()

	b.open(base + "r/stage?name=Ann")
	viewer := b.open(base + "healthz")
	if got := eval[string](t, viewer, whepPlayJS+"("+jsString(base+"whep/stage")+")"); got != "ok" {
		t.Fatalf("WHEP from the page: %s", got)
	}
	waitJS(t, viewer, "the WHEP video playing", `(async () => {
	  const v = window.whepVideo;
	  if (!v || v.videoWidth === 0) return false;
	  const frames = async () => {
	    let n = 0;
	    (await window.roundtable.session.pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
	    return n;
	  };
	  const a = await frames();
	  await new Promise(r => setTimeout(r, 500));
	  return (await frames()) > a;
	})()`, 30*time.Second)
	waitJS(t, viewer, "the WHEP audio decoding", `(async () => {
	  let n = 0;
	  (await window.roundtable.session.pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio') n += s.totalSamplesReceived || 0; });
	  return n > 48000;
	})()`, 20*time.Second)
	in := readInbound(t, viewer)
	if len(in.Video) != 1 || len(in.Audio) != 1 {
		t.Errorf("the WHEP page receives %d video and %d audio streams, want 1 and 1", len(in.Video), len(in.Audio))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	bob := b.open(base + "r/ingest?name=Bob")
	waitJS(t, bob, "Bob in the room", `!!(window.roundtable && window.roundtable.session.pc)`, 20*time.Second)
	pub, err := client.PublishWHIP(ctx, base+"whip/ingest?name=Studio", client.Config{Audio: 1, Video: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Abort()
	deadline := time.Now().Add(30 * time.Second)
	for {
		in := readInbound(t, bob)
		if v, a := sum(in.Video), sum(in.Audio); v.Packets > 100 && a.Packets > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bob's tab did not receive the WHIP publisher's media: %+v", in)
		}
		time.Sleep(200 * time.Millisecond)
	}
	label := `[...document.querySelectorAll('.tile:not(.self) .name')].map(e => e.textContent).join(',')`
	if got := eval[string](t, bob, label); !strings.Contains(got, "Studio") {
		t.Errorf("Bob's tiles are %q, want the WHIP publisher, Studio", got)
	}
}
