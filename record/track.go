package record

// One track's writer. Its WriteRTP runs on the tap's writer goroutine,
// which owns everything below but the manifest entry (Recording.mu): the
// file is opened at the first packet (not under the room's lock, where the
// tap was started), packets are reordered and gathered into frames, and
// frames go to the container. stop closes the tap (waiting for the last
// WriteRTP), then the container.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media"
	"github.com/pion/webrtc/v3/pkg/media/oggwriter"
	"github.com/pion/webrtc/v3/pkg/media/samplebuilder"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// Reordering: a frame waits for the packets before it at most this long
// (and this many packets), time for the server's NACKs to bring the
// publisher's retransmissions (about two rounds on a 150 ms path).
const (
	reorderWait    = 600 * time.Millisecond
	reorderPackets = 512
	srEvery        = 10 * time.Second // sender reports kept in the manifest
)

type track struct {
	rec   *Recording
	index int // in the manifest
	path  string
	up    *sfu.UpTrack
	tap   *sfu.Tap
	codec webrtc.RTPCodecParameters
	video bool

	// writer goroutine only
	file    *os.File
	buf     *bufio.Writer
	count   countingWriter
	failed  bool
	sb      *samplebuilder.SampleBuilder
	idx     *os.File      // H.264: the frame index (ManifestTrack.Index)
	idxBuf  *bufio.Writer //
	ogg     *oggwriter.OggWriter
	mkv     webm.BlockWriteCloser
	started bool
	firstTS uint32
	lastTS  int64 // extended timestamp of the last frame written, from firstTS
	tsHigh  int64 // the unwrapped timestamp's high part
	prevTS  uint32
	frames  uint64
	lost    uint64
	srAt    time.Time
	srs     []SenderReport
	keyed   bool   // a keyframe was written (video starts with one)
	dropped uint64 // the tap's drops counted in Stats so far
	pushed  bool   // a packet went into sb; lastSeq and lastPTS are the newest's
	lastSeq uint16
	lastPTS uint32
	// The first packet's arrival and timestamp: a frame's arrival is
	// reckoned from them (the tap's timestamps keep the wall clock's pace),
	// not from when the reordering buffer lets it go.
	firstAt    time.Time
	firstPktTS uint32
}

func newTrack(r *Recording, index int, path string, up *sfu.UpTrack) *track {
	t := &track{rec: r, index: index, path: path, up: up, codec: up.Codec(), video: up.Kind() == webrtc.RTPCodecTypeVideo}
	var d rtp.Depacketizer
	switch strings.ToLower(t.codec.MimeType) {
	case "audio/opus":
		d = &codecs.OpusPacket{}
	case "video/vp8":
		d = &codecs.VP8Packet{}
	case "video/vp9":
		d = &codecs.VP9Packet{}
	case "video/h264":
		d = &codecs.H264Packet{}
	}
	t.sb = samplebuilder.New(reorderPackets, d, t.codec.ClockRate, samplebuilder.WithMaxTimeDelay(reorderWait))
	return t
}

// WriteRTP implements webrtc.TrackLocalWriter for the tap: one packet, in
// the order the server sent it (late repairs included).
func (t *track) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n := h.MarshalSize() + len(payload)
	if t.failed {
		return n, nil
	}
	if t.file == nil {
		if err := t.open(); err != nil {
			t.fail(err)
			return n, nil
		}
	}
	t.noteSenderReport()
	t.countDrops()
	p := &rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)}
	p.Header.CSRC = append([]uint32(nil), h.CSRC...)
	if !t.pushed {
		t.firstAt, t.firstPktTS = time.Now(), h.Timestamp
	}
	if !t.pushed || int16(h.SequenceNumber-t.lastSeq) > 0 {
		t.pushed, t.lastSeq, t.lastPTS = true, h.SequenceNumber, h.Timestamp
	}
	t.sb.Push(p)
	for s := t.sb.Pop(); s != nil; s = t.sb.Pop() {
		if err := t.writeSample(s); err != nil {
			t.fail(err)
			break
		}
	}
	return n, nil
}

// Write implements webrtc.TrackLocalWriter; a tap never calls it.
func (t *track) Write(b []byte) (int, error) { return len(b), nil }

func (t *track) open() error {
	f, err := os.Create(t.path)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	t.file = f
	t.count = countingWriter{w: f, stats: &t.rec.svc.stats}
	switch {
	case strings.EqualFold(t.codec.MimeType, "audio/opus"):
		t.buf = bufio.NewWriterSize(&t.count, 32<<10)
		channels := t.codec.Channels
		if channels == 0 {
			channels = 2
		}
		t.ogg, err = oggwriter.NewWith(t.buf, t.codec.ClockRate, channels)
	case strings.EqualFold(t.codec.MimeType, "video/h264"):
		t.buf = bufio.NewWriterSize(&t.count, 256<<10)
		if t.idx, err = os.Create(t.path + ".idx"); err == nil {
			t.idxBuf = bufio.NewWriter(t.idx)
		}
	}
	// WebM opens at the first keyframe, which gives the picture size.
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// writeSample writes one frame.
func (t *track) writeSample(s *media.Sample) error {
	if s.PrevDroppedPackets > 0 {
		t.lost += uint64(s.PrevDroppedPackets)
		t.rec.svc.stats.Lost.Add(uint64(s.PrevDroppedPackets))
		if t.video {
			t.keyed = false // the decoder would be lost until the next keyframe
			t.tap.RequestKeyframe()
		}
	}
	key := !t.video || sampleKeyframe(t.codec.MimeType, s.Data)
	if t.video && !t.keyed {
		if !key {
			t.tap.RequestKeyframe()
			return nil
		}
		t.keyed = true
	}
	if !t.started {
		t.started, t.firstTS, t.prevTS = true, s.PacketTimestamp, s.PacketTimestamp
		since := time.Duration(float64(int32(s.PacketTimestamp-t.firstPktTS)) / float64(t.codec.ClockRate) * float64(time.Second))
		at := t.firstAt.Add(since).UTC()
		t.rec.update(t.index, func(m *ManifestTrack) { m.Started, m.FirstRTP = at, s.PacketTimestamp })
	}
	// Extend the 32-bit timestamp: frames come in order.
	if s.PacketTimestamp < t.prevTS && t.prevTS-s.PacketTimestamp > 1<<31 {
		t.tsHigh += 1 << 32
	}
	t.prevTS = s.PacketTimestamp
	ext := t.tsHigh + int64(s.PacketTimestamp) - int64(t.firstTS)
	if t.frames > 0 && ext <= t.lastTS {
		// Not after the last frame written: a repeat (a retransmission
		// that came after the frame left the reordering buffer) or older.
		// A container needs frames in order, once.
		return nil
	}
	t.lastTS = ext
	var err error
	switch {
	case t.ogg != nil:
		err = t.ogg.WriteRTP(&rtp.Packet{Header: rtp.Header{Timestamp: s.PacketTimestamp}, Payload: s.Data})
	case t.buf != nil: // H.264: the depacketizer made Annex-B; the index times it
		if _, err = t.buf.Write(s.Data); err == nil {
			k := 0
			if key {
				k = 1
			}
			_, err = fmt.Fprintf(t.idxBuf, "%d %d %d\n", ext*1000/int64(t.codec.ClockRate), k, len(s.Data))
		}
	default:
		if t.mkv == nil {
			if err := t.openWebM(); err != nil {
				return err
			}
		}
		_, err = t.mkv.Write(key, ext*1000/int64(t.codec.ClockRate), s.Data)
	}
	if err != nil {
		return fmt.Errorf("record %s: %w", t.path, err)
	}
	t.frames++
	return nil
}

// openWebM starts the WebM file with one video track of the size the
// publisher's keyframes give (the tap reads it).
func (t *track) openWebM() error {
	w, h := t.tap.FrameSize()
	if w == 0 || h == 0 {
		w, h = 640, 480 // a decoder reads the real size from the keyframe
	}
	codecID := "V_VP8"
	if strings.EqualFold(t.codec.MimeType, "video/vp9") {
		codecID = "V_VP9"
	}
	ws, err := webm.NewSimpleBlockWriter(&seekCounter{f: t.file, count: &t.count}, []webm.TrackEntry{{
		Name: t.up.ID(), TrackNumber: 1, TrackUID: 1, CodecID: codecID, TrackType: 1,
		Video: &webm.Video{PixelWidth: uint64(w), PixelHeight: uint64(h)},
	}}, mkvcore.WithSeekHead(true), mkvcore.WithCues(4096),
		mkvcore.WithSegmentInfo(&webm.Info{TimecodeScale: 1_000_000, MuxingApp: "roundtable", WritingApp: "roundtable"}))
	if err != nil {
		return fmt.Errorf("record %s: webm: %w", t.path, err)
	}
	t.mkv = ws[0]
	return nil
}

// noteSenderReport keeps the publisher's sender report (the first, then
// one every srEvery).
func (t *track) noteSenderReport() {
	ntp, ts, ok := t.tap.SenderReport()
	if !ok || time.Since(t.srAt) < srEvery {
		return
	}
	t.srAt = time.Now()
	sr := SenderReport{NTP: ntpTime(ntp), RTP: ts}
	t.rec.update(t.index, func(m *ManifestTrack) { m.SenderReports = append(m.SenderReports, sr) })
}

// ntpTime converts a 64-bit NTP timestamp (RFC 5905: seconds since 1900,
// 32.32 fixed point) to a time.
func ntpTime(ntp uint64) time.Time {
	const epoch = 2208988800 // seconds from 1900 to 1970
	secs := int64(ntp>>32) - epoch
	frac := int64(ntp & 0xffffffff)
	return time.Unix(secs, frac*1e9>>32).UTC()
}

// countDrops adds the tap's new drops to the service's counter.
func (t *track) countDrops() {
	if d := t.tap.Dropped(); d > t.dropped {
		t.rec.svc.stats.Dropped.Add(d - t.dropped)
		t.dropped = d
	}
}

func (t *track) fail(err error) {
	t.failed = true
	t.rec.svc.log.Error("recording a track failed", "file", t.path, "err", err)
	t.rec.update(t.index, func(m *ManifestTrack) { m.Error = err.Error() })
}

// stop ends the tap (its writer returns first), flushes the frames still
// waiting, and closes the file.
func (t *track) stop() {
	if t.tap != nil {
		t.tap.Close()
	}
	var errs []error
	if t.file != nil && !t.failed && t.pushed {
		// The frames still waiting (for a retransmission that will not
		// come now, or for a next packet): a packet far enough ahead makes
		// the buffer give up on the holes and hand out every whole frame.
		t.sb.Push(&rtp.Packet{Header: rtp.Header{SequenceNumber: t.lastSeq + 1, Marker: true,
			Timestamp: t.lastPTS + uint32(2*reorderWait.Seconds()*float64(t.codec.ClockRate))}, Payload: []byte{0}})
		for s := t.sb.Pop(); s != nil; s = t.sb.Pop() {
			if err := t.writeSample(s); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if t.ogg != nil {
		errs = append(errs, t.ogg.Close()) // flushes into buf
	}
	if t.buf != nil {
		errs = append(errs, t.buf.Flush())
	}
	if t.idx != nil {
		errs = append(errs, t.idxBuf.Flush(), t.idx.Close())
	}
	if t.mkv != nil {
		errs = append(errs, t.mkv.Close()) // closes the file
	} else if t.file != nil {
		errs = append(errs, t.file.Close())
	}
	err := errors.Join(errs...)
	if err != nil {
		t.rec.svc.log.Error("recorded track not closed cleanly", "file", t.path, "err", err)
	}
	if t.tap != nil {
		t.countDrops()
	}
	at := time.Now().UTC()
	t.rec.update(t.index, func(m *ManifestTrack) {
		m.Stopped, m.Frames, m.Bytes, m.Lost, m.Dropped = at, t.frames, t.count.n, t.lost, t.dropped
		if err != nil && m.Error == "" {
			m.Error = err.Error()
		}
	})
}

// countingWriter counts the bytes written to a file.
type countingWriter struct {
	w     io.Writer
	n     uint64
	stats *Stats
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += uint64(n)
	c.stats.Bytes.Add(uint64(n))
	return n, err
}

// seekCounter is the file as ebml-go wants it (it seeks back to write the
// cues and the duration), counting what is written.
type seekCounter struct {
	f     *os.File
	count *countingWriter
}

func (s *seekCounter) Write(b []byte) (int, error)               { return s.count.Write(b) }
func (s *seekCounter) Seek(off int64, whence int) (int64, error) { return s.f.Seek(off, whence) }
func (s *seekCounter) WriteAt(b []byte, off int64) (int, error)  { return s.f.WriteAt(b, off) }
func (s *seekCounter) Close() error                              { return s.f.Close() }

// sampleKeyframe reports whether a depacketized frame is a keyframe: VP8
// (RFC 6386 §9.1: the frame tag's P bit is 0), VP9 (the uncompressed
// header's frame_type is 0, not showing an existing frame), H.264 (an IDR
// NAL unit in the Annex-B stream).
func sampleKeyframe(mime string, b []byte) bool {
	switch strings.ToLower(mime) {
	case "video/vp8":
		return len(b) > 0 && b[0]&1 == 0
	case "video/vp9":
		if len(b) == 0 || b[0]>>6 != 2 {
			return false
		}
		profile := b[0]>>5&1 | b[0]>>4&1<<1
		bit := 4 // show_existing_frame's, after frame_marker(2) and the profile's two bits
		if profile == 3 {
			bit++ // after reserved_zero
		}
		showExisting := b[0] >> (7 - bit) & 1
		frameType := b[0] >> (6 - bit) & 1
		return showExisting == 0 && frameType == 0
	case "video/h264":
		for i := 0; i+3 < len(b); i++ {
			if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 && b[i+3]&0x1f == 5 {
				return true
			}
		}
	}
	return false
}
