package client

// Real media from files: a track sends an Ogg Opus file's packets, an IVF
// VP8 file's frames (RFC 7741 packetization) or an H.264 Annex-B file's
// access units (RFC 6184; a .h264 file with access unit delimiters, at 30
// a second), paced by their timestamps against the wall clock, once, from
// when the PeerConnection connects. The sendFile goroutine owns its
// reader and packetizer. Finished reports when the last frame left.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media/ivfreader"
	"github.com/pion/webrtc/v3/pkg/media/oggreader"
)

// frameSource yields a file's frames: the payload, and its time from the
// start of the file.
type frameSource func() (frame []byte, at time.Duration, err error)

// sendFile is the send loop of a track with a file (Config.AudioFile or
// VideoFile). An error ends the track's sending and is kept (FileError).
func (l *LocalTrack) sendFile() {
	defer l.wg.Done()
	defer close(l.fileDone)
	next, clock, payloader, err := openMedia(l.file, l.video)
	if err != nil {
		l.fileErr.Store(err)
		return
	}
	pz := rtp.NewPacketizer(1200, 0, 0, payloader, rtp.NewRandomSequencer(), clock)
	// The file plays once: not before the media path is up, or pion
	// would drop its start.
	poll := time.NewTicker(5 * time.Millisecond)
	for l.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		select {
		case <-l.done:
			poll.Stop()
			return
		case <-poll.C:
		}
	}
	poll.Stop()
	start := time.Now()
	var last time.Duration
	for {
		frame, at, err := next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			l.fileErr.Store(fmt.Errorf("%s: %w", l.file, err))
			return
		}
		if wait := time.Until(start.Add(at)); wait > 0 {
			select {
			case <-l.done:
				return
			case <-time.After(wait):
			}
		}
		samples := uint32((at - last).Seconds() * float64(clock))
		last = at
		for _, p := range pz.Packetize(frame, samples) {
			if err := l.track.WriteRTP(p); err == nil {
				l.Sent.Add(1)
			}
		}
	}
}

// FileDone is closed when a file track has sent its last frame.
func (l *LocalTrack) FileDone() <-chan struct{} { return l.fileDone }

// FileError is why a file track stopped early, nil if it did not.
func (l *LocalTrack) FileError() error {
	if err, ok := l.fileErr.Load().(error); ok {
		return err
	}
	return nil
}

// openMedia opens an Ogg Opus (audio) or IVF VP8 (video) file.
func openMedia(path string, video bool) (next frameSource, clock uint32, payloader rtp.Payloader, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("media file: %w", err)
	}
	if video && strings.HasSuffix(path, ".h264") {
		// Annex-B has no timestamps: access units (split at the access
		// unit delimiters, x264's aud=1) at 30 a second.
		aus := bytes.Split(b, []byte{0, 0, 0, 1, 9})
		n := 0
		next = func() ([]byte, time.Duration, error) {
			for n < len(aus) {
				au := aus[n]
				n++
				if len(au) > 0 {
					return append([]byte{0, 0, 0, 1, 9}, au...), time.Duration(n-2) * time.Second / 30, nil
				}
			}
			return nil, 0, io.EOF
		}
		return next, 90000, &codecs.H264Payloader{}, nil
	}
	if video {
		r, h, err := ivfreader.NewWith(bytes.NewReader(b))
		if err != nil {
			return nil, 0, nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.TimebaseDenominator == 0 {
			return nil, 0, nil, fmt.Errorf("%s: no timebase", path)
		}
		unit := time.Second * time.Duration(h.TimebaseNumerator) / time.Duration(h.TimebaseDenominator)
		next = func() ([]byte, time.Duration, error) {
			f, fh, err := r.ParseNextFrame()
			if err != nil {
				return nil, 0, err
			}
			return f, time.Duration(fh.Timestamp) * unit, nil
		}
		return next, 90000, &codecs.VP8Payloader{EnablePictureID: true}, nil
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	next = func() ([]byte, time.Duration, error) {
		for {
			p, h, err := r.ParseNextPage()
			if err != nil {
				return nil, 0, err
			}
			if bytes.HasPrefix(p, []byte("OpusTags")) {
				continue
			}
			// The granule position counts 48 kHz samples up to the end
			// of the page's packet (RFC 7845 §4): 20 ms packets start one
			// frame earlier.
			end := time.Duration(h.GranulePosition) * time.Second / 48000
			return p, max(end-20*time.Millisecond, 0), nil
		}
	}
	return next, 48000, &codecs.OpusPayloader{}, nil
}
