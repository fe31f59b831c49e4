// Package webhook tells operators' HTTP endpoints what happens in rooms
// (docs/api.md, Webhooks): each room.Change becomes a JSON POST, signed
// with the API secret (HMAC-SHA256 over the timestamp and the body, as
// Stripe's webhooks are, so a receiver can refuse forgeries and replays).
//
// Ownership: Send runs on whichever goroutine changed the room, under the
// room's lock: it encodes the event and queues it, never blocking (a full
// queue drops it, counted). Each endpoint has one delivery goroutine, which
// owns its queue's reading and its HTTP client; delivering one event at a
// time keeps every room's events in order, and retries with backoff for a
// bounded time before giving up (counted). Close stops the goroutines.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed with the API secret>"; EventHeader the event's kind.
const (
	SignatureHeader = "Roundtable-Signature"
	EventHeader     = "Roundtable-Event"
)

// Config configures a Sender.
type Config struct {
	URLs []string // endpoints; each gets every event
	// Secret signs the bodies (the server's API secret); "" sends them
	// unsigned (an open server).
	Secret string
	// Queue is how many events wait per endpoint; more are dropped.
	Queue int
	// RetryFor bounds how long one event is retried (backoff from 250 ms,
	// doubling, at most 5 s apart) before it counts as failed.
	RetryFor time.Duration
	// Timeout bounds one POST.
	Timeout time.Duration
}

// Stats count events per outcome, all endpoints together.
type Stats struct {
	Delivered atomic.Uint64 // answered 2xx
	Failed    atomic.Uint64 // given up after RetryFor
	Dropped   atomic.Uint64 // a full queue
}

// Sender delivers events to the endpoints.
type Sender struct {
	cfg       Config
	log       *slog.Logger
	stats     Stats
	endpoints []*endpoint
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

type endpoint struct {
	url    string
	queue  chan event
	client http.Client
}

type event struct {
	kind string
	body []byte
}

// New starts one delivery goroutine per URL.
func New(cfg Config, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{cfg: cfg, log: log, ctx: ctx, cancel: cancel}
	for _, u := range cfg.URLs {
		e := &endpoint{url: u, queue: make(chan event, max(1, cfg.Queue)), client: http.Client{Timeout: cfg.Timeout}}
		s.endpoints = append(s.endpoints, e)
		s.wg.Add(1)
		go s.deliver(e)
	}
	return s
}

// Stats returns the counters.
func (s *Sender) Stats() *Stats { return &s.stats }

// Body is the JSON of one event.
type Body struct {
	ID          string           `json:"id"`
	Event       string           `json:"event"`
	CreatedAt   time.Time        `json:"createdAt"`
	Room        BodyRoom         `json:"room"`
	Participant *BodyParticipant `json:"participant,omitempty"`
	Track       *BodyTrack       `json:"track,omitempty"`
	Reason      string           `json:"reason,omitempty"`
	// CDR is the call-detail record, participant_left only.
	CDR *BodyCDR `json:"cdr,omitempty"`
}

// BodyCDR is a participant's call-detail record (room.CallRecord):
// directions are "upstream" (what it sent) and "downstream" (what it got).
type BodyCDR struct {
	DurationSeconds float64 `json:"durationSeconds"`
	Path            string  `json:"path,omitempty"`
	BytesUp         uint64  `json:"bytesUp"`
	BytesDown       uint64  `json:"bytesDown"`
	// Loss by direction: mean over the session and worst second, per cent.
	Loss map[string]BodyLoss `json:"loss"`
	// QualitySeconds by direction and level (excellent, good, poor, lost).
	QualitySeconds map[string]map[string]int `json:"qualitySeconds"`
	Freezes        int                       `json:"freezes"`
	FrozenSeconds  int                       `json:"frozenSeconds"`
}

// BodyLoss is one direction's packet loss in per cent.
type BodyLoss struct {
	MeanPercent  float64 `json:"meanPercent"`
	WorstPercent float64 `json:"worstPercent"`
}

// CDROf turns a call-detail record into its JSON shape.
func CDROf(r room.CallRecord) *BodyCDR {
	c := &BodyCDR{DurationSeconds: math.Round(r.Duration.Seconds()*1000) / 1000, Path: r.Path,
		BytesUp: r.BytesUp, BytesDown: r.BytesDown, Freezes: r.Freezes, FrozenSeconds: r.FrozenSeconds,
		Loss: map[string]BodyLoss{}, QualitySeconds: map[string]map[string]int{}}
	for dir, name := range room.DirectionNames {
		c.Loss[name] = BodyLoss{MeanPercent: r.MeanLoss[dir], WorstPercent: r.WorstLoss[dir]}
		levels := map[string]int{}
		for _, q := range sfu.Qualities() {
			levels[q.String()] = r.Seconds[dir][q]
		}
		c.QualitySeconds[name] = levels
	}
	return c
}

// BodyRoom names the room.
type BodyRoom struct {
	Name string `json:"name"`
}

// BodyParticipant is who an event is about.
type BodyParticipant struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Identity string    `json:"identity,omitempty"`
	JoinedAt time.Time `json:"joinedAt"`
}

// BodyTrack is the track an event is about.
type BodyTrack struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Source string `json:"source,omitempty"`
}

// Send queues c for every endpoint; it never blocks (room.Manager.Observe).
func (s *Sender) Send(c room.Change) {
	if len(s.endpoints) == 0 {
		return
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	b := Body{ID: hex.EncodeToString(id[:]), Event: c.Kind, CreatedAt: c.At.UTC(), Room: BodyRoom{Name: c.Room}, Reason: c.Reason}
	if p := c.Participant; p != nil {
		b.Participant = &BodyParticipant{ID: p.ID, Name: p.Name, Identity: p.Identity, JoinedAt: p.Joined.UTC()}
		if p.Record != nil {
			b.CDR = CDROf(*p.Record)
		}
	}
	if t := c.Track; t != nil {
		b.Track = &BodyTrack{ID: t.ID, Kind: t.Kind, Source: t.Source}
	}
	body, err := json.Marshal(b)
	if err != nil {
		return
	}
	for _, e := range s.endpoints {
		select {
		case e.queue <- event{kind: c.Kind, body: body}:
		default:
			s.stats.Dropped.Add(1)
		}
	}
}

// Sign returns the signature header's value for body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts + "."))
	h.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(h.Sum(nil))
}

func (s *Sender) deliver(e *endpoint) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev := <-e.queue:
			s.deliverOne(e, ev)
		}
	}
}

// deliverOne posts ev until a 2xx, or until RetryFor has passed.
func (s *Sender) deliverOne(e *endpoint, ev event) {
	start := time.Now()
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.post(e, ev)
		if err == nil {
			s.stats.Delivered.Add(1)
			return
		}
		if time.Since(start)+wait > s.cfg.RetryFor {
			s.stats.Failed.Add(1)
			s.log.Warn("webhook failed", "url", e.url, "event", ev.kind, "attempts", attempt, "err", err)
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (s *Sender) post(e *endpoint, ev event) error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, e.url, bytes.NewReader(ev.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventHeader, ev.kind)
	if s.cfg.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(s.cfg.Secret, time.Now(), ev.body))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s", e.url, resp.Status)
	}
	return nil
}

// Close delivers what is queued until ctx is done, then stops every
// delivery goroutine (an event being retried is abandoned).
func (s *Sender) Close(ctx context.Context) {
	for _, e := range s.endpoints {
		for len(e.queue) > 0 && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	s.cancel()
	s.wg.Wait()
	for _, e := range s.endpoints {
		e.client.CloseIdleConnections()
	}
}
