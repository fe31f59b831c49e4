package e2e

// Webhooks (issue 14, part 2): a receiver in the test gets every room
// change in order, signed; a failing one gets retries; a hanging one never
// delays a join.

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/webhook"
)

// hookReceiver records the events POSTed to it; fail answers 500 to the
// first fail requests.
type hookReceiver struct {
	t      *testing.T
	secret string
	fail   int

	mu       sync.Mutex
	requests int
	events   []webhook.Body
	badSigs  int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if h.requests <= h.fail {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	// Verify as a receiver would: recompute the MAC over the timestamp
	// and the body, and refuse an old timestamp.
	sig := r.Header.Get(webhook.SignatureHeader)
	ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)) > time.Minute ||
		!hmac.Equal([]byte(sig), []byte(webhook.Sign(h.secret, time.Unix(sec, 0), body))) {
		h.badSigs++
	}
	var b webhook.Body
	if err := json.Unmarshal(body, &b); err != nil || r.Header.Get(webhook.EventHeader) != b.Event {
		h.t.Errorf("webhook body %q, event header %q: %v", body, r.Header.Get(webhook.EventHeader), err)
	}
	h.events = append(h.events, b)
}

func (h *hookReceiver) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.Event)
	}
	return out
}

func withWebhooks(queue int, retry time.Duration, urls ...string) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) {
		c.WebhookURLs, c.WebhookQueue, c.WebhookRetryFor, c.WebhookTimeout = urls, queue, retry, 2*time.Second
	}
}

func TestWebhooks(t *testing.T) {
	checkGoroutines(t)
	good := &hookReceiver{t: t, secret: testKeys.Secret}
	flaky := &hookReceiver{t: t, secret: testKeys.Secret, fail: 2}
	goodSrv, flakySrv := httptest.NewServer(good), httptest.NewServer(flaky)
	defer goodSrv.Close()
	defer flakySrv.Close()
	s := startServer(t, withKeys(testKeys), withWebhooks(64, 10*time.Second, goodSrv.URL, flakySrv.URL))
	ctx := testContext(t, 30*time.Second)
	c := s.joinWith(ctx, client.Config{Room: "hooks", Name: "ann", Audio: 1,
		Token: mint(t, testKeys, auth.Token{Room: "hooks", Identity: "ann", TTL: time.Hour, Grants: auth.All}, time.Now())})
	waitFor(t, ctx, "ann's track published", func() bool { return slices.Contains(good.kinds(), "track_published") })
	c.Leave()
	want := []string{"room_started", "participant_joined", "track_published", "track_unpublished", "participant_left", "room_finished"}
	for name, h := range map[string]*hookReceiver{"good": good, "flaky": flaky} {
		waitFor(t, ctx, "every event at the "+name+" receiver", func() bool { return len(h.kinds()) >= len(want) })
		if got := h.kinds(); !slices.Equal(got, want) {
			t.Errorf("%s receiver: events %v, want %v", name, got, want)
		}
		h.mu.Lock()
		if h.badSigs != 0 {
			t.Errorf("%s receiver: %d bad signatures", name, h.badSigs)
		}
		ev := h.events
		h.mu.Unlock()
		if p := ev[1].Participant; p == nil || p.ID != c.ID || p.Identity != "ann" || ev[1].Room.Name != "hooks" {
			t.Errorf("%s receiver: participant_joined %+v", name, ev[1])
		}
		if tr := ev[2].Track; tr == nil || tr.Kind != "audio" {
			t.Errorf("%s receiver: track_published %+v", name, ev[2])
		}
		if ev[4].Reason != "left" {
			t.Errorf("%s receiver: participant_left reason %q", name, ev[4].Reason)
		}
	}
	flaky.mu.Lock()
	retried := flaky.requests
	flaky.mu.Unlock()
	if retried != len(want)+2 {
		t.Errorf("flaky receiver: %d requests, want %d (two refused, retried)", retried, len(want)+2)
	}
	// The receiver has the last event a moment before its sender counts
	// the answer.
	st := s.Webhooks()
	waitFor(t, ctx, "every delivery counted", func() bool { return st.Delivered.Load() >= uint64(2*len(want)) })
	if st.Delivered.Load() != uint64(2*len(want)) || st.Failed.Load() != 0 || st.Dropped.Load() != 0 {
		t.Errorf("counts: delivered %d failed %d dropped %d", st.Delivered.Load(), st.Failed.Load(), st.Dropped.Load())
	}
}

// A receiver that never answers: joins go on at full speed, the queue
// fills and the excess is dropped (counted), each request times out and
// its event fails after the retry time.
func TestWebhookThatHangs(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	s := startServer(t, withWebhooks(2, time.Second, hang.URL))
	ctx := testContext(t, 30*time.Second)
	for i := range 4 {
		start := time.Now()
		c := s.join(ctx, "hang", "p"+strconv.Itoa(i), 0, 0)
		waitFor(t, ctx, "connected", c.Connected)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("join %d took %v with a hanging webhook receiver", i, d)
		}
	}
	st := s.Webhooks()
	waitFor(t, ctx, "events dropped and failed", func() bool { return st.Dropped.Load() > 0 && st.Failed.Load() > 0 })
}
