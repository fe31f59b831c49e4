package e2e

// Negotiation that never recovers (issue 10, input 3): a failed or missing
// answer must not wedge a session. When pion applied the answer in part
// (it is stable again) the server offers again, once; a second failure in a
// row, or a failure that leaves pion in have-local-offer (an answer refused
// before pion saw it, or none in time: pion v3.3.6 cannot roll back), ends
// the session with error and bye "negotiation_failed".

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/signal"
)

func withAnswerTimeout(d time.Duration) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) { c.AnswerTimeout = d }
}

// otherUfrag gives the second m-line of an answer other ICE credentials
// than the rest, which pion refuses (a description's m-lines share one
// transport when bundled).
func otherUfrag(answer string) string {
	const key = "a=ice-ufrag:"
	first := strings.Index(answer, key)
	if first < 0 {
		return answer
	}
	second := strings.Index(answer[first+len(key):], key)
	if second < 0 {
		return answer
	}
	at := first + len(key) + second + len(key)
	return answer[:at] + "zzzz" + answer[at:]
}

// noFingerprint drops the DTLS fingerprints of a description, which pion
// refuses. (Other ICE credentials in one m-line of an offer no longer do:
// the server gives a BUNDLE group the tagged m-line's, as RFC 8843 lets an
// initial offer differ.)
func noFingerprint(desc string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(desc, "\n") {
		if !strings.HasPrefix(line, "a=fingerprint:") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// answers returns an OnServerOffer hook that applies bad to the first n
// answers (all of them when n < 0) and counts the offers seen.
func answers(n int, bad func(string) string, seen *atomic.Int32) func(string) string {
	return func(answer string) string {
		i := seen.Add(1)
		if n < 0 || int(i) <= n {
			return bad(answer)
		}
		return answer
	}
}

func TestNegotiationRecovers(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withAnswerTimeout(2*time.Second))
	never := func(string) string { return "" }
	garbage := func(string) string { return "v=0\r\nnot an answer" }
	for _, tc := range []struct {
		name   string
		bad    func(string) string
		times  int    // answers spoiled; -1 all
		code   string // error the client gets for the spoiled answer ("" none)
		offers int32  // server offers before it gives up (0: it does not)
	}{
		{"an m-line with other ICE credentials, once", otherUfrag, 1, signal.CodeBadSDP, 0},
		{"an m-line with other ICE credentials, always", otherUfrag, -1, signal.CodeBadSDP, 2},
		{"an answer that is not SDP", garbage, 1, signal.CodeBadSDP, 1},
		{"no answer", never, 1, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 40*time.Second)
			room := strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			a := s.join(ctx, room, "a", 1, 1)
			waitFor(t, ctx, "a connected", a.Connected)
			var seen atomic.Int32
			b := s.joinWith(ctx, client.Config{Room: room, Name: "b", Audio: 1, OnServerOffer: answers(tc.times, tc.bad, &seen)})
			if tc.code != "" {
				waitFor(t, ctx, tc.code, func() bool { return b.HasError(tc.code) })
			}
			if tc.offers > 0 {
				waitFor(t, ctx, "bye negotiation_failed", func() bool { return b.Bye() == signal.CodeNegotiationFailed })
				if !b.HasError(signal.CodeNegotiationFailed) {
					t.Errorf("no error negotiation_failed before the bye: %v", b.Errors())
				}
				if n := seen.Load(); n != tc.offers {
					t.Errorf("the server offered %d times, want %d", n, tc.offers)
				}
				waitFor(t, ctx, "b gone from the room", func() bool { return len(a.Participants()) == 0 })
				// The others carry on.
				c := s.join(ctx, room, "c", 1, 0)
				waitMedia(t, ctx, a, c, webrtc.RTPCodecTypeAudio, 20)
				return
			}
			// b receives a's tracks after all, then those of a later member.
			waitMedia(t, ctx, b, a, webrtc.RTPCodecTypeVideo, 20)
			waitMedia(t, ctx, b, a, webrtc.RTPCodecTypeAudio, 20)
			c := s.join(ctx, room, "c", 1, 1)
			waitMedia(t, ctx, b, c, webrtc.RTPCodecTypeVideo, 20)
			// And b's own offers are answered: a new track reaches a.
			answered := b.AnswersReceived()
			if err := b.Publish(webrtc.RTPCodecTypeVideo); err != nil {
				t.Fatal(err)
			}
			waitMedia(t, ctx, a, b, webrtc.RTPCodecTypeVideo, 20)
			if b.AnswersReceived() <= answered {
				t.Errorf("b's offer got no answer")
			}
			if b.Bye() != "" {
				t.Errorf("b got bye %q", b.Bye())
			}
			for _, e := range b.Errors() {
				if e.Code != tc.code {
					t.Errorf("unexpected error %s: %s", e.Code, e.Message)
				}
			}
		})
	}
}

// A client offer that pion cannot apply after it took it in (one without
// DTLS fingerprints leaves pion v3.3.6 in have-remote-offer, from which it
// cannot roll back) ends the session with error and bye
// negotiation_failed, never silence. (An offer refused before pion takes
// it in gets bad_sdp and the session goes on: TestBadInputGetsErrorsAndHurtsNoOne.)
func TestBadClientOfferIsNotSilent(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 20*time.Second)
	c, err := client.Dial(ctx, client.Config{URL: s.WSURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if err := c.SendJSON(map[string]string{"type": "join", "room": "badoffer", "name": "c"}); err != nil {
		t.Fatal(err)
	}
	sendOffer(t, c, noFingerprint, webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo)
	waitFor(t, ctx, "bye", func() bool { return c.Bye() != "" })
	if !c.HasError(signal.CodeNegotiationFailed) || c.Bye() != signal.CodeNegotiationFailed {
		t.Errorf("errors %v, bye %q; want error and bye negotiation_failed", c.Errors(), c.Bye())
	}
}
