package client

// A WHIP publisher (RFC 9725): the same PeerConnection and synthetic
// tracks as a room member, but signaled over HTTP: the offer is POSTed,
// candidates are trickled with PATCH, an ICE restart is a PATCH, and
// DELETE ends it. It has no signaling socket, so it hears nothing of the
// room. A WHEP viewer (PlayWHEP) is the same with one receiving audio and
// video m-line instead of tracks. The negotiation runs on the caller's
// goroutine, under negMu.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

// WHIP is a publisher that joined through WHIP, or a WHEP viewer.
type WHIP struct {
	*Client
	http     *http.Client
	token    string
	Location string // the session URL, absolute
	Links    []string
	ETag     string

	candMu sync.Mutex
	cands  []string // local candidates not sent yet (a=candidate lines)
}

// HTTPError is a WHIP request the server refused.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("whip: %d %s", e.Status, strings.TrimSpace(e.Body))
}

// PublishWHIP POSTs an offer with cfg.Audio and cfg.Video synthetic tracks
// to endpoint (http://host/whip/{room}[?name=…]) with cfg.Token as bearer
// token, applies the answer, and returns; the candidates gathered by then
// go to the session with PATCH (Trickle). contentType overrides
// application/sdp when not empty (tests of refusals).
func PublishWHIP(ctx context.Context, endpoint string, cfg Config, contentType string) (*WHIP, error) {
	return startHTTP(ctx, endpoint, cfg, contentType, false)
}

// PlayWHEP POSTs an offer to receive one audio and one video track to
// endpoint (http://host/whep/{room}[/{participant}]) with cfg.Token as
// bearer token and applies the answer; the tracks arrive as Remote()'s,
// observed as a member's are (cfg.OnPacket sees each packet).
func PlayWHEP(ctx context.Context, endpoint string, cfg Config) (*WHIP, error) {
	return startHTTP(ctx, endpoint, cfg, "", true)
}

// startHTTP is PublishWHIP, or PlayWHEP with play.
func startHTTP(ctx context.Context, endpoint string, cfg Config, contentType string, play bool) (*WHIP, error) {
	cfg.defaults()
	c := &Client{
		cfg: cfg, dcOpen: make(chan struct{}), joined: make(chan sig.Inbound, 1), joinErr: make(chan ErrorMsg, 1),
		iceChange: make(chan struct{}, 1), closed: make(chan struct{}),
		participants: map[string]string{}, quality: map[string]sig.QualityJSON{}, published: map[string]string{},
		remote: map[string]*RemoteTrack{}, trackMeta: map[string]sig.TrackJSON{},
	}
	w := &WHIP{Client: c, http: &http.Client{Timeout: 15 * time.Second}, token: cfg.Token}
	api, err := newAPI(cfg.Codecs, cfg.Networks, cfg.Interfaces, cfg.AllInterfaces, cfg.NoTWCC, cfg.Interceptors, cfg.IPFilter, nil)
	if err != nil {
		return nil, fmt.Errorf("client api: %w", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("client peer: %w", err)
	}
	c.pc = pc
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			w.candMu.Lock()
			w.cands = append(w.cands, "a="+cand.ToJSON().Candidate)
			w.candMu.Unlock()
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.connected.Store(true)
		}
	})
	if play {
		pc.OnTrack(c.onTrack)
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				c.Abort()
				return nil, fmt.Errorf("whep transceiver: %w", err)
			}
		}
		cfg.Audio, cfg.Video = 0, 0
	}
	for i := 0; i < cfg.Audio; i++ {
		if err := c.addLocal(webrtc.RTPCodecTypeAudio, i); err != nil {
			c.Abort()
			return nil, err
		}
	}
	for i := 0; i < cfg.Video; i++ {
		if err := c.addLocal(webrtc.RTPCodecTypeVideo, cfg.Audio+i); err != nil {
			c.Abort()
			return nil, err
		}
	}
	c.negMu.Lock()
	fail := func(err error) (*WHIP, error) {
		c.negMu.Unlock()
		c.Abort() // takes negMu
		return nil, err
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		return fail(fmt.Errorf("whip offer: %w", err))
	}
	if contentType == "" {
		contentType = "application/sdp"
	}
	resp, body, err := w.do(ctx, http.MethodPost, endpoint, contentType, offer.SDP)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fail(&HTTPError{Status: resp.StatusCode, Body: body})
	}
	loc, err := resp.Location()
	if err != nil {
		return fail(fmt.Errorf("whip: 201 without a Location: %w", err))
	}
	w.Location, w.Links, w.ETag = loc.String(), resp.Header.Values("Link"), resp.Header.Get("ETag")
	c.mu.Lock()
	c.ID = loc.Path[strings.LastIndex(loc.Path, "/")+1:]
	c.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		return fail(fmt.Errorf("whip answer: %w", err))
	}
	c.negMu.Unlock()
	return w, nil
}

// Trickle PATCHes the local candidates gathered so far and not yet sent
// (RFC 8840 fragment) and returns the status.
func (w *WHIP) Trickle(ctx context.Context) (int, error) {
	w.candMu.Lock()
	cands := w.cands
	w.cands = nil
	w.candMu.Unlock()
	local := w.pc.LocalDescription()
	if local == nil {
		return 0, errors.New("whip: no local description")
	}
	resp, body, err := w.do(ctx, http.MethodPatch, w.Location, "application/trickle-ice-sdpfrag", fragment(local.SDP, cands))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusNoContent {
		return resp.StatusCode, &HTTPError{Status: resp.StatusCode, Body: body}
	}
	return resp.StatusCode, nil
}

// RestartICE restarts ICE with a PATCH (RFC 9725 §4.4): new local
// credentials and candidates out, the server's new ones back, applied as
// the remote answer.
func (w *WHIP) RestartICE(ctx context.Context) error {
	w.negMu.Lock()
	defer w.negMu.Unlock()
	gathered := webrtc.GatheringCompletePromise(w.pc)
	offer, err := w.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err == nil {
		err = w.pc.SetLocalDescription(offer)
	}
	if err != nil {
		return fmt.Errorf("whip restart offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.candMu.Lock()
	w.cands = nil // all in the description now
	w.candMu.Unlock()
	local := w.pc.LocalDescription().SDP
	resp, body, err := w.do(ctx, http.MethodPatch, w.Location, "application/trickle-ice-sdpfrag", fragment(local, candidateLines(local)))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Status: resp.StatusCode, Body: body}
	}
	answer := withICE(w.pc.RemoteDescription().SDP, body)
	if err := w.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("whip restart answer: %w", err)
	}
	return nil
}

// Delete ends the session (DELETE on its URL) and returns the status; the
// PeerConnection stays until Abort.
func (w *WHIP) Delete(ctx context.Context) (int, error) {
	resp, body, err := w.do(ctx, http.MethodDelete, w.Location, "", "")
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, &HTTPError{Status: resp.StatusCode, Body: body}
	}
	return resp.StatusCode, nil
}

// Do sends a request to the session URL as the publisher (its token), for
// tests of what the server refuses.
func (w *WHIP) Do(ctx context.Context, method, contentType, body, token string) (int, error) {
	saved := w.token
	w.token = token
	defer func() { w.token = saved }()
	resp, _, err := w.do(ctx, method, w.Location, contentType, body)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

func (w *WHIP) do(ctx context.Context, method, u, contentType, body string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewBufferString(body))
	if err != nil {
		return nil, "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("whip %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if loc := resp.Header.Get("Location"); loc != "" {
		if base, err := url.Parse(u); err == nil {
			if abs, err := base.Parse(loc); err == nil {
				resp.Header.Set("Location", abs.String())
			}
		}
	}
	return resp, string(b), nil
}

// fragment is an RFC 8840 trickle-ice-sdpfrag of sdp's ICE credentials,
// its first media section and the candidate lines.
func fragment(sdp string, cands []string) string {
	var ufrag, pwd, mline, mid string
	for _, line := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:") && ufrag == "":
			ufrag = line
		case strings.HasPrefix(line, "a=ice-pwd:") && pwd == "":
			pwd = line
		case strings.HasPrefix(line, "m=") && mline == "":
			mline = line
		case strings.HasPrefix(line, "a=mid:") && mid == "":
			mid = line
		}
	}
	var b strings.Builder
	b.WriteString(ufrag + "\r\n" + pwd + "\r\n" + mline + "\r\n" + mid + "\r\n")
	for _, c := range cands {
		b.WriteString(c + "\r\n")
	}
	return b.String()
}

// candidateLines returns sdp's a=candidate lines of its first media
// section (BUNDLE: one transport).
func candidateLines(sdp string) []string {
	var out []string
	m := 0
	for _, line := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(line, "m=") {
			m++
		}
		if m == 1 && strings.HasPrefix(line, "a=candidate:") {
			out = append(out, line)
		}
	}
	return out
}

// withICE is the answer sdp with the fragment's credentials and
// candidates instead of its own.
func withICE(sdp, frag string) string {
	var ufrag, pwd string
	var cands []string
	for _, line := range strings.Split(frag, "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = line
		case strings.HasPrefix(line, "a=ice-pwd:"):
			pwd = line
		case strings.HasPrefix(line, "a=candidate:"):
			cands = append(cands, line)
		}
	}
	var out []string
	second := -1 // where the first media section ends
	for _, line := range strings.Split(strings.TrimRight(sdp, "\r\n"), "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = ufrag
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = pwd
		case strings.HasPrefix(line, "a=candidate:"), line == "a=end-of-candidates":
			continue
		case strings.HasPrefix(line, "m="):
			if second == -2 {
				second = len(out)
			} else if second == -1 {
				second = -2
			}
		}
		out = append(out, line)
	}
	if second < 0 {
		second = len(out)
	}
	out = append(out[:second], append(cands, out[second:]...)...)
	var b strings.Builder
	for _, line := range out {
		b.WriteString(line + "\r\n")
	}
	return b.String()
}
