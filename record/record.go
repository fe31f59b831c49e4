// Package record writes a room's published tracks to files as they
// arrive, without transcoding: Opus to Ogg (pion's oggwriter), VP8 and VP9
// to WebM (github.com/at-wat/ebml-go), H.264 to an Annex-B elementary
// stream. Beside them, manifest.json says who published what, when each
// track started and stopped, mutes, active-speaker changes, and each
// track's RTCP sender-report mapping (NTP time to RTP timestamp), so that
// the tracks can be lined up (roundtable archive).
//
// A recording is a room.Recorder: each track it is told of gets an
// sfu.Tap, a subscriber without a PeerConnection, whose writer goroutine
// runs the track's writer (track.go): packets go through a reordering
// buffer (pion's samplebuilder) that waits for the publisher's
// retransmissions of lost packets (the server NACKs them as for any
// subscriber), whole frames go to the container, and a frame lost for good
// asks the publisher for a keyframe. The tap's queue is bounded: a slow
// disk loses packets (counted) and never slows forwarding.
//
// Ownership: Recording.mu guards the manifest and the track table; the
// room calls TrackPublished and the others under its own lock and they
// only start taps and note events. One goroutine per recording lets the
// taps choose their simulcast layer again every second (redecide). Each track's writer state belongs to its
// tap's writer goroutine. Close (with no room lock) stops every tap, which
// waits for its writer, then closes the files and writes the manifest.
package record

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// Stats are the recorders' counters, for metrics.
type Stats struct {
	Active  atomic.Int64  // recordings running
	Bytes   atomic.Uint64 // bytes written to track files
	Dropped atomic.Uint64 // packets the recorders' queues could not take
	Lost    atomic.Uint64 // packets never received, so missing from a file
}

// Service starts recordings into a directory.
type Service struct {
	dir   string
	media *sfu.Stats
	log   *slog.Logger
	stats Stats
}

// New returns a Service writing under dir (created at the first
// recording); media is the engine's counters (taps count as
// subscriptions).
func New(dir string, media *sfu.Stats, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{dir: dir, media: media, log: log}
}

// Stats returns the counters.
func (s *Service) Stats() *Stats { return &s.stats }

// Dir is where recordings go: one directory per recording,
// DIR/{room}/{start time, UTC, 20060102T150405Z}.
func (s *Service) Dir() string { return s.dir }

// Start is a room.NewRecorder: it creates the recording's directory and
// an empty manifest.
func (s *Service) Start(roomName string) (room.Recorder, error) {
	now := time.Now().UTC()
	dir := filepath.Join(s.dir, roomName, now.Format("20060102T150405Z"))
	for i := 2; ; i++ {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		dir = filepath.Join(s.dir, roomName, fmt.Sprintf("%s-%d", now.Format("20060102T150405Z"), i))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("recording dir: %w", err)
	}
	r := &Recording{svc: s, dir: dir, tracks: map[*sfu.UpTrack]*track{},
		man: Manifest{Version: 1, Room: roomName, Started: now}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.writeManifest(); err != nil {
		return nil, err
	}
	go r.redecide()
	s.stats.Active.Add(1)
	s.log.Info("recording", "room", roomName, "dir", dir)
	return r, nil
}

// Manifest is manifest.json: what a recording holds and how to line its
// tracks up. Times are UTC, RFC 3339 with nanoseconds.
type Manifest struct {
	Version int       `json:"version"` // 1
	Room    string    `json:"room"`
	Started time.Time `json:"started"`
	// Stopped is when the recording ended (zero while it runs, or if the
	// server died).
	Stopped time.Time       `json:"stopped,omitzero"`
	Tracks  []ManifestTrack `json:"tracks"`
	Events  []Event         `json:"events"`
}

// ManifestTrack is one published track and its file.
type ManifestTrack struct {
	File string `json:"file"` // relative to the manifest; "" if nothing was written
	// Index, for H.264 (an Annex-B stream has no timestamps), is a text
	// file beside it with a line per frame: its time in milliseconds from
	// the file's start, 1 for a keyframe else 0, and its length in bytes.
	Index       string `json:"index,omitempty"`
	Participant string `json:"participant"`
	Identity    string `json:"identity,omitempty"`
	Name        string `json:"name"`
	TrackID     string `json:"trackId"`
	Kind        string `json:"kind"`   // audio, video
	Codec       string `json:"codec"`  // MIME type
	Source      string `json:"source"` // camera, microphone, screen, screen-audio, "" unknown
	ClockRate   uint32 `json:"clockRate"`
	// Started is when the track's first frame reached the server;
	// FirstRTP is that frame's RTP timestamp (the file's time 0).
	Started  time.Time `json:"started,omitzero"`
	FirstRTP uint32    `json:"firstRtp"`
	// Stopped is when it was unpublished or the recording ended.
	Stopped time.Time `json:"stopped,omitzero"`
	// SenderReports are the publisher's RTCP sender reports as the track
	// saw them (RFC 3550 §6.4.1): an NTP instant and the RTP timestamp of
	// that instant, in the file's timestamps (the first, then at most one
	// every 10 s).
	SenderReports []SenderReport `json:"senderReports"`
	Frames        uint64         `json:"frames"`
	Bytes         uint64         `json:"bytes"`
	// Lost counts packets the server never got (so frames left out);
	// Dropped those the recorder's queue could not take.
	Lost    uint64 `json:"lost"`
	Dropped uint64 `json:"dropped"`
	Error   string `json:"error,omitempty"` // why writing stopped early
}

// SenderReport maps the publisher's wall clock to a track's RTP clock.
type SenderReport struct {
	NTP time.Time `json:"ntp"`
	RTP uint32    `json:"rtp"`
}

// Event is something that happened in the room while recording.
type Event struct {
	At          time.Time `json:"at"`
	Type        string    `json:"type"` // track_started, track_stopped, muted, unmuted, active_speaker
	Participant string    `json:"participant"`
	TrackID     string    `json:"trackId,omitempty"`
}

// Recording is one room's recording (a room.Recorder).
type Recording struct {
	svc *Service
	dir string

	mu       sync.Mutex
	tracks   map[*sfu.UpTrack]*track
	man      Manifest
	closed   bool
	stopping sync.WaitGroup // tracks unpublished, finishing their files

	stop, done chan struct{} // the redecide goroutine's
}

// redecide lets every simulcast tap follow the layers that flow, once a
// second, until Close.
func (r *Recording) redecide() {
	defer close(r.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		r.mu.Lock()
		for _, t := range r.tracks {
			if t.tap != nil {
				t.tap.Redecide()
			}
		}
		r.mu.Unlock()
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// TrackPublished implements room.Recorder: a tap starts writing the track.
func (r *Recording) TrackPublished(who room.ParticipantInfo, identity string, up *sfu.UpTrack, info room.TrackInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.tracks[up] != nil {
		return
	}
	codec := up.Codec()
	ext := extension(codec.MimeType)
	mt := ManifestTrack{Participant: who.ID, Identity: identity, Name: who.Name, TrackID: up.ID(),
		Kind: up.Kind().String(), Codec: codec.MimeType, Source: info.Source, ClockRate: codec.ClockRate}
	i := len(r.man.Tracks)
	r.man.Tracks = append(r.man.Tracks, mt)
	r.event("track_started", who.ID, up.ID())
	if ext == "" {
		r.man.Tracks[i].Error = "codec not recorded: " + codec.MimeType
		r.svc.log.Warn("track not recorded", "dir", r.dir, "track", up.ID(), "codec", codec.MimeType)
		return
	}
	label := who.Name
	if identity != "" {
		label = identity
	}
	file := fmt.Sprintf("%02d-%s-%s.%s", i+1, strings.Trim(unsafeName.ReplaceAllString(label, "_"), "_"), up.Kind(), ext)
	t := newTrack(r, i, filepath.Join(r.dir, file), up)
	r.man.Tracks[i].File = file
	if ext == "h264" {
		r.man.Tracks[i].Index = file + ".idx"
	}
	tap, err := sfu.NewTap(up, r.svc.media, t)
	if err != nil {
		r.man.Tracks[i].Error = err.Error()
		r.svc.log.Warn("track not recorded", "dir", r.dir, "track", up.ID(), "err", err)
		return
	}
	t.tap = tap
	r.tracks[up] = t
}

// TrackUnpublished implements room.Recorder: the track's file is closed
// and the manifest written on a goroutine of its own (closing waits for
// the tap's writer; the room's lock is held here).
func (r *Recording) TrackUnpublished(participant string, up *sfu.UpTrack) {
	r.mu.Lock()
	t := r.tracks[up]
	delete(r.tracks, up)
	if t != nil {
		r.event("track_stopped", participant, up.ID())
	}
	if t != nil {
		r.stopping.Add(1)
		go func() {
			defer r.stopping.Done()
			t.stop()
			r.mu.Lock()
			if err := r.writeManifest(); err != nil {
				r.svc.log.Warn("manifest not written", "dir", r.dir, "err", err)
			}
			r.mu.Unlock()
		}()
	}
	r.mu.Unlock()
}

// TrackMuted implements room.Recorder.
func (r *Recording) TrackMuted(participant string, up *sfu.UpTrack, muted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kind := "unmuted"
	if muted {
		kind = "muted"
	}
	r.event(kind, participant, up.ID())
}

// ActiveSpeaker implements room.Recorder.
func (r *Recording) ActiveSpeaker(participant string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.event("active_speaker", participant, "")
}

// event notes one event (r.mu held).
func (r *Recording) event(kind, participant, trackID string) {
	if len(r.man.Events) < maxEvents {
		r.man.Events = append(r.man.Events, Event{At: time.Now().UTC(), Type: kind, Participant: participant, TrackID: trackID})
	}
}

// maxEvents bounds a manifest's events (a day of speaker changes every 2 s).
const maxEvents = 50_000

// Close implements room.Recorder: every track is finished, the manifest
// written.
func (r *Recording) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.stop)
	tracks := make([]*track, 0, len(r.tracks))
	for _, t := range r.tracks {
		tracks = append(tracks, t)
	}
	clear(r.tracks)
	r.mu.Unlock()
	<-r.done
	for _, t := range tracks {
		t.stop()
	}
	r.stopping.Wait()
	r.mu.Lock()
	r.man.Stopped = time.Now().UTC()
	err := r.writeManifest()
	r.mu.Unlock()
	if err != nil {
		r.svc.log.Error("manifest not written", "dir", r.dir, "err", err)
	}
	r.svc.stats.Active.Add(-1)
	r.svc.log.Info("recording finished", "room", r.man.Room, "dir", r.dir, "tracks", len(r.man.Tracks))
}

// Dir is the recording's directory.
func (r *Recording) Dir() string { return r.dir }

// writeManifest replaces manifest.json (r.mu held, or before r is shared).
func (r *Recording) writeManifest() error {
	b, err := json.MarshalIndent(&r.man, "", "  ")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	tmp := filepath.Join(r.dir, ".manifest.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, "manifest.json")); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// update changes track i's manifest entry.
func (r *Recording) update(i int, f func(*ManifestTrack)) {
	r.mu.Lock()
	f(&r.man.Tracks[i])
	r.mu.Unlock()
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", dir, err)
	}
	return &m, nil
}

// extension is the file type a codec is recorded in, "" none.
func extension(mime string) string {
	switch strings.ToLower(mime) {
	case "audio/opus":
		return "ogg"
	case "video/vp8", "video/vp9":
		return "webm"
	case "video/h264":
		return "h264"
	}
	return ""
}
