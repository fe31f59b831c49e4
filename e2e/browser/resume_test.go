package browser

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/signal"
)

// tcpRelay forwards TCP connections from a loopback port to target, and
// can cut them: every open connection is reset and new ones are reset as
// soon as they are accepted, for a while (a Wi-Fi that drops the
// connections through it). One goroutine accepts; each connection has two
// copying goroutines; mu guards conns and refuseUntil.
type tcpRelay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu          sync.Mutex
	conns       map[net.Conn]struct{}
	refuseUntil time.Time
	refused     int
}

func startRelay(t *testing.T, target string) *tcpRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tcpRelay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		r.reset(0)
		r.wg.Wait()
	})
	return r
}

// URL is the relay's base URL, as srv.URL() is the server's.
func (r *tcpRelay) URL() string { return "http://" + r.ln.Addr().String() + "/" }

func (r *tcpRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		refuse := time.Now().Before(r.refuseUntil)
		if refuse {
			r.refused++
		} else {
			r.conns[c] = struct{}{}
		}
		r.mu.Unlock()
		if refuse {
			rst(c)
			continue
		}
		r.wg.Add(1)
		go r.pipe(c)
	}
}

// pipe copies between c and a new connection to the target until either
// side ends.
func (r *tcpRelay) pipe(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		_ = c.Close()
	}()
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = up.Close()
	_ = c.Close()
	<-done
}

// reset resets every open connection (RST, not FIN) and every new one for d.
func (r *tcpRelay) reset(d time.Duration) {
	r.mu.Lock()
	r.refuseUntil = time.Now().Add(d)
	open := make([]net.Conn, 0, len(r.conns))
	for c := range r.conns {
		open = append(open, c)
	}
	r.mu.Unlock()
	for _, c := range open {
		rst(c)
	}
}

func (r *tcpRelay) refusals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// rst closes c with a reset: linger 0 drops what is unsent.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// framesGrowing is true when participant id's camera tile shows frames
// that keep coming (its video element's count grows over 500 ms).
const framesGrowing = `(async (id) => {
  const v = document.querySelector('.tile.camera[data-participant="' + id + '"] video');
  if (!v || !v.videoWidth) return false;
  const a = v.getVideoPlaybackQuality().totalVideoFrames;
  await new Promise(r => setTimeout(r, 500));
  return v.getVideoPlaybackQuality().totalVideoFrames > a;
})`

// Issue 13, test 5: Ann reaches the server through a TCP relay that resets
// her connections and refuses new ones for 5 s. Her WebSocket drops; her
// media, over UDP straight to the server, does not. Bob and Cat never lose
// her from their lists and her video keeps playing; her tab says
// "Reconnecting…", then resumes (same participant id, no reload) with her
// camera, chat history and layout as they were.
func TestTabResumesThroughAResettingRelay(t *testing.T) {
	srv := startServer(t)
	relay := startRelay(t, srv.Addr().String())
	b := newBrowser(t)
	defer b.screenshots()
	ann := b.open(relay.URL() + "r/resume?name=Ann")
	bob := b.open(srv.URL() + "r/resume?name=Bob")
	cat := b.open(srv.URL() + "r/resume?name=Cat")
	tabs := map[string]context.Context{"Ann": ann, "Bob": bob, "Cat": cat}
	for name, tab := range tabs {
		waitJS(t, tab, "two remote videos playing for "+name, remoteVideosPlaying+"(2)", 30*time.Second)
	}
	annID := selfID(t, ann)
	for _, tab := range []context.Context{bob, cat} {
		eval[bool](t, tab, `window.annLeft = false; window.roundtable.session.addEventListener('participant', (e) => {
			if (!e.detail.present && e.detail.id === '`+annID+`') window.annLeft = true; }); true`)
	}
	eval[bool](t, ann, `window.notReloaded = true;
		document.getElementById('chat-input').value = 'before the cut';
		document.getElementById('chat-form').requestSubmit(); true`)
	waitJS(t, ann, "Ann's chat message shown", `[...document.querySelectorAll('#messages li')].some(li => li.textContent.includes('before the cut'))`, 5*time.Second)
	layout := eval[string](t, ann, `document.getElementById('stage').className`)

	// Eve is there before the cut and leaves during it; Dee joins during
	// it. Both are pion clients publishing audio.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eve, err := client.Join(ctx, client.Config{URL: srv.WSURL(), Room: "resume", Name: "Eve", Audio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eve.Abort()
	waitJS(t, ann, "Eve's tile", `!!`+tileOf(eve.ID, "camera"), 10*time.Second)

	annFrames := `(() => { const v = document.querySelector('.tile.camera[data-participant="` + annID + `"] video');
		return v ? v.getVideoPlaybackQuality().totalVideoFrames : -1; })()`
	others := map[string]context.Context{"Bob": bob, "Cat": cat}
	// Eve's tile reshapes the others' grids, which may move them to another
	// of Ann's simulcast layers (at its next keyframe): the cut comes once
	// Ann's video plays steadily again for both, so that what follows
	// measures the outage, not the switch.
	growing := `(async () => { const f = ` + annFrames + `; await new Promise(r => setTimeout(r, 1000));
		return (` + annFrames + `) - f >= 10; })()`
	for name, tab := range others {
		waitJS(t, tab, "Ann's video playing steadily for "+name+" after Eve came", growing, 20*time.Second)
	}
	atCut := map[string]int{}
	for name, tab := range others {
		atCut[name] = eval[int](t, tab, annFrames)
	}
	relay.reset(5 * time.Second)
	cut := time.Now()
	waitJS(t, ann, `"Reconnecting…" on Ann's tab`, `document.getElementById('status').textContent === 'Reconnecting…'`, 5*time.Second)
	// Audio only: a pion client's video is not a picture Chromium decodes.
	eve.Leave()
	dee, err := client.Join(ctx, client.Config{URL: srv.WSURL(), Room: "resume", Name: "Dee", Audio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer dee.Abort()
	// Ann's video keeps playing for the others while her socket is down:
	// the frames they decoded, sampled for as long as her tab says
	// "Reconnecting…" (a moment's freeze, a layer switch waiting for its
	// keyframe on a loaded machine, is allowed; a stop is not).
	during := map[string]int{}
	for eval[string](t, ann, `document.getElementById('status').textContent`) == "Reconnecting…" && time.Since(cut) < 20*time.Second {
		for name, tab := range others {
			during[name] = eval[int](t, tab, annFrames)
		}
		time.Sleep(200 * time.Millisecond) // sampling, not waiting for a condition
	}
	for name := range others {
		if d := during[name] - atCut[name]; d < 30 {
			t.Errorf("%s decoded %d frames of Ann's video during her outage (%d at the cut), want 30 or more", name, d, atCut[name])
		}
	}
	waitJS(t, ann, "Ann connected again", `document.getElementById('status').textContent === 'connected'`, 20*time.Second)
	t.Logf("Ann back %v after the cut; the relay refused %d connections meanwhile", time.Since(cut).Round(time.Millisecond), relay.refusals())
	if got := selfID(t, ann); got != annID {
		t.Errorf("Ann rejoined as %s, was %s: want a resume", got, annID)
	}
	if got := srv.Signal.Stats().Resumes.Get(signal.ResumeOK); got != 1 {
		t.Errorf("resumes ok: %d, want 1", got)
	}
	waitJS(t, ann, "Ann sees Bob's and Cat's videos", `(async () => await `+framesGrowing+`('`+selfID(t, bob)+`') && await `+framesGrowing+`('`+selfID(t, cat)+`'))()`, 10*time.Second)
	waitJS(t, ann, "Dee's tile, and Eve's gone, after the resume", `!!`+tileOf(dee.ID, "camera")+` && !`+tileOf(eve.ID, "camera"), 10*time.Second)
	if err := client.Wait(ctx, func() bool {
		n := 0
		for _, r := range dee.ActiveRemote() {
			if r.StreamID == annID && r.Stats().Packets > 20 {
				n++
			}
		}
		return n == 2 // audio, and video (simulcast: one layer)
	}); err != nil {
		t.Fatalf("Dee receives Ann's audio and video: %v", err)
	}
	for name, tab := range map[string]context.Context{"Bob": bob, "Cat": cat} {
		waitJS(t, tab, "Ann's video playing for "+name, framesGrowing+`('`+annID+`')`, 5*time.Second)
		if eval[bool](t, tab, `window.annLeft`) {
			t.Errorf("%s saw Ann leave", name)
		}
	}
	if !eval[bool](t, ann, `window.notReloaded === true &&
		[...document.querySelectorAll('#messages li')].some(li => li.textContent.includes('before the cut'))`) {
		t.Error("Ann's page reloaded or lost its chat history")
	}
	if got := eval[string](t, ann, `document.getElementById('stage').className`); got != layout {
		t.Errorf("Ann's layout %q after the resume, was %q", got, layout)
	}
	// Chat after the resume goes over the same data channel.
	eval[bool](t, ann, `document.getElementById('chat-input').value = 'after the cut';
		document.getElementById('chat-form').requestSubmit(); true`)
	waitJS(t, bob, "Ann's message after the resume", `[...document.querySelectorAll('#messages li')].some(li => li.textContent.includes('Ann: after the cut'))`, 5*time.Second)
}

// A socket that stays away longer than the resume window: the server has
// removed Ann, her resume gets resume_failed, and she joins afresh (a new
// id) on the same page, with her camera, without a reload.
func TestTabRejoinsAfterTheResumeWindow(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.ResumeWindow = time.Second })
	relay := startRelay(t, srv.Addr().String())
	b := newBrowser(t)
	defer b.screenshots()
	ann := b.open(relay.URL() + "r/late?name=Ann")
	bob := b.open(srv.URL() + "r/late?name=Bob")
	for name, tab := range map[string]context.Context{"Ann": ann, "Bob": bob} {
		waitJS(t, tab, "a remote video playing for "+name, remoteVideosPlaying+"(1)", 30*time.Second)
	}
	annID := selfID(t, ann)
	eval[bool](t, ann, `window.notReloaded = true; true`)
	relay.reset(3 * time.Second)
	waitJS(t, bob, "Ann removed after the window", `!`+tileOf(annID, "camera"), 10*time.Second)
	waitJS(t, ann, "Ann joined again with a new id", `window.roundtable.session.id && window.roundtable.session.id !== '`+annID+`'`, 20*time.Second)
	newID := selfID(t, ann)
	waitJS(t, bob, "Ann's video back at Bob", framesGrowing+`('`+newID+`')`, 20*time.Second)
	waitJS(t, ann, "Bob's video at Ann", remoteVideosPlaying+"(1)", 10*time.Second)
	if !eval[bool](t, ann, `window.notReloaded === true`) {
		t.Error("Ann's page reloaded")
	}
	st := srv.Signal.Stats()
	if st.Resumes.Get(signal.ResumeGone) != 1 {
		t.Errorf("resumes refused as gone: %d, want 1", st.Resumes.Get(signal.ResumeGone))
	}
}
