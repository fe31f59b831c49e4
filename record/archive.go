package record

// The room archive: one WebM file of a recording (Matroska with H.264),
// with one audio track per participant (its audio files one after the other) and
// each video file as a track, lined up by the manifest, without
// transcoding. Each file's frames keep their own spacing; what moves is
// where a file starts (trackStart). Frames of every input are merged in
// time order (a k-way merge: inputs are read as they are written, never
// whole into memory). One call, one goroutine (ebml-go's readers and
// writer run their own, ended by EOF and Close).

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/webrtc/v3/pkg/media/oggreader"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// ArchiveName is the default file name of dir's archive: archive.mkv
// when a track is H.264 (which WebM does not carry), else archive.webm.
func ArchiveName(dir string) string {
	if m, err := ReadManifest(dir); err == nil {
		for _, t := range m.Tracks {
			if t.Index != "" {
				return "archive.mkv"
			}
		}
	}
	return "archive.webm"
}

// ArchiveTrack is one track of an archive, for the caller's report.
type ArchiveTrack struct {
	Number      int // in the archive, from 1
	Kind        string
	Name        string // the participant's, and for video which file
	Participant string
	Files       []string
	Start       time.Duration // where its first frame is, from the archive's start
	Frames      int
}

// ArchiveOptions are the archive's settings.
type ArchiveOptions struct {
	// FFmpeg, when set, is the ffmpeg that adds a last audio track: every
	// participant's audio mixed (amix, no level normalisation), encoded
	// as Opus; the other tracks are copied unchanged.
	FFmpeg string
	// Warn is told of each track left out (an H.264 file without its
	// index) and of files that cannot be read; nil: silent.
	Warn func(string)
}

// Archive writes dir's recording (its manifest.json) to out as one WebM
// file (Matroska when a track is H.264): an audio track per participant,
// a video track per recorded video file. Every file starts where the manifest places it: at the moment its
// first frame reached the server, corrected within a participant by its
// sender reports (RFC 3550: its audio and video share one clock, so lip
// sync is the publisher's), the earliest at 0. It returns the tracks
// written.
func Archive(dir, out string, opt ArchiveOptions) ([]ArchiveTrack, error) {
	warn := opt.Warn
	if warn == nil {
		warn = func(string) {}
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	starts := trackStarts(m)
	var origin time.Time
	for i, t := range m.Tracks {
		if t.File != "" && !starts[i].IsZero() && (origin.IsZero() || starts[i].Before(origin)) {
			origin = starts[i]
		}
	}

	// The archive's tracks: audio by participant (in the order they first
	// published), video by file.
	type plan struct {
		ArchiveTrack
		inputs        []int  // manifest tracks, in time order
		width, height int    // video: the picture size its file says
		avcC          []byte // H.264: the decoder configuration (ISO 14496-15)
	}
	var plans []*plan
	audioOf := map[string]*plan{}
	for i, t := range m.Tracks {
		if t.File == "" || starts[i].IsZero() {
			continue
		}
		switch {
		case filepath.Ext(t.File) == ".h264" && t.Index == "":
			warn(fmt.Sprintf("%s: no frame index, so its frames cannot be placed", t.File))
			continue
		case t.Kind == "audio":
			p := audioOf[t.Participant]
			if p == nil {
				p = &plan{ArchiveTrack: ArchiveTrack{Kind: "audio", Name: t.Name, Participant: t.Participant}}
				audioOf[t.Participant] = p
				plans = append(plans, p)
			}
			p.inputs = append(p.inputs, i)
			p.Files = append(p.Files, t.File)
		default:
			plans = append(plans, &plan{ArchiveTrack: ArchiveTrack{Kind: "video", Name: t.Name + " " + t.File,
				Participant: t.Participant, Files: []string{t.File}}, inputs: []int{i}})
		}
	}
	if len(plans) == 0 {
		return nil, errors.New("archive: no track to write")
	}

	// Open every input; each yields frames at archive times.
	var entries []webm.TrackEntry
	var sources mergeHeap
	matroska := false // an H.264 track: WebM's DocType does not allow it
	for n, p := range plans {
		p.Number = n + 1
		p.Start = -1
		for _, i := range p.inputs {
			t := m.Tracks[i]
			offset := starts[i].Sub(origin)
			if p.Start < 0 || offset < p.Start {
				p.Start = offset
			}
			var src frameReader
			if t.Index != "" {
				src, err = openAnnexB(filepath.Join(dir, t.File), filepath.Join(dir, t.Index), &p.avcC)
			} else {
				src, err = openFrames(filepath.Join(dir, t.File), t.Kind == "video")
			}
			if err != nil {
				warn(fmt.Sprintf("%s: %v", t.File, err))
				continue
			}
			s := &source{next: src, track: n, offset: offset}
			if s.advance() {
				sources = append(sources, s)
				if p.width == 0 && strings.EqualFold(t.Codec, "video/VP8") {
					p.width, p.height, _ = sfu.VP8FrameSize(s.frame)
				}
			}
		}
		e := webm.TrackEntry{Name: p.Name, TrackNumber: uint64(n + 1), TrackUID: uint64(n + 1)}
		if p.Kind == "audio" {
			e.CodecID, e.TrackType = "A_OPUS", 2
			e.CodecPrivate = opusHead()
			e.CodecDelay = 6_500_000 // ns: libopus's usual pre-skip (312 samples)
			e.SeekPreRoll = 80_000_000
			e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: 2}
		} else {
			t := m.Tracks[p.inputs[0]]
			e.CodecID, e.TrackType = "V_VP8", 1
			switch {
			case strings.EqualFold(t.Codec, "video/VP9"):
				e.CodecID = "V_VP9"
			case strings.EqualFold(t.Codec, "video/H264"):
				e.CodecID, e.CodecPrivate, matroska = "V_MPEG4/ISO/AVC", p.avcC, true
				if p.avcC == nil {
					warn(fmt.Sprintf("%s: no SPS and PPS before its first frame", t.File))
				}
			}
			w, h := p.width, p.height
			if w == 0 || h == 0 {
				w, h = 640, 480 // a decoder reads the size from the keyframes
			}
			e.Video = &webm.Video{PixelWidth: uint64(w), PixelHeight: uint64(h)}
		}
		entries = append(entries, e)
	}

	f, err := os.Create(out)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	header := *webm.DefaultEBMLHeader
	if matroska {
		header.DocType = "matroska"
	}
	ws, err := webm.NewSimpleBlockWriter(f, entries, mkvcore.WithEBMLHeader(&header), mkvcore.WithSeekHead(true), mkvcore.WithCues(16<<10),
		mkvcore.WithSegmentInfo(&webm.Info{TimecodeScale: 1_000_000, MuxingApp: "roundtable archive", WritingApp: "roundtable archive"}),
		mkvcore.WithBlockInterceptor(nil))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive: %w", err)
	}
	heap.Init(&sources)
	var werr error
	for sources.Len() > 0 && werr == nil {
		s := sources[0]
		ms := (s.offset + s.at).Milliseconds()
		if _, err := ws[s.track].Write(s.key, ms, s.frame); err != nil {
			werr = fmt.Errorf("archive: %w", err)
			break
		}
		plans[s.track].Frames++
		if s.advance() {
			heap.Fix(&sources, 0)
		} else {
			heap.Pop(&sources)
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil && werr == nil {
			werr = fmt.Errorf("archive: %w", err)
		}
	}
	tracks := make([]ArchiveTrack, len(plans))
	audio := 0
	for i, p := range plans {
		tracks[i] = p.ArchiveTrack
		if p.Kind == "audio" {
			audio++
		}
	}
	if werr != nil || opt.FFmpeg == "" || audio == 0 {
		return tracks, werr
	}
	if err := addMix(opt.FFmpeg, out, audio); err != nil {
		return tracks, err
	}
	tracks = append(tracks, ArchiveTrack{Number: len(tracks) + 1, Kind: "audio", Name: "mix"})
	return tracks, nil
}

// addMix has ffmpeg add to the archive one Opus track of its audio tracks
// mixed; the other tracks are copied unchanged.
func addMix(ffmpeg, file string, audio int) error {
	var in strings.Builder
	for i := range audio {
		fmt.Fprintf(&in, "[0:a:%d]", i)
	}
	ext := filepath.Ext(file) // the muxer ffmpeg picks: WebM, or Matroska for H.264
	tmp := strings.TrimSuffix(file, ext) + ".mixing" + ext
	n := strconv.Itoa(audio)
	cmd := exec.Command(ffmpeg, "-v", "error", "-y", "-i", file,
		"-filter_complex", in.String()+"amix=inputs="+n+":normalize=0[mix]",
		"-map", "0", "-map", "[mix]", "-c", "copy", "-c:a:"+n, "libopus", "-metadata:s:a:"+n, "title=mix", tmp)
	if msg, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("archive mix: ffmpeg: %v: %s", err, msg)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("archive mix: %w", err)
	}
	return nil
}

// trackStarts is where each manifest track's first frame belongs on the
// server's clock (zero: never started). A track's arrival (Started) says
// it, up to its network delay; for a participant whose tracks carry
// sender reports, their publisher's clock says it better, and is brought
// to the server's by the participant's smallest arrival delay (the track
// that arrived quickest), so its audio and video stay as it sent them.
func trackStarts(m *Manifest) []time.Time {
	starts := make([]time.Time, len(m.Tracks))
	sent := make([]time.Time, len(m.Tracks)) // by the publisher's clock
	shift := map[string]time.Duration{}      // publisher clock to server clock, per participant
	have := map[string]bool{}
	for i, t := range m.Tracks {
		starts[i] = t.Started
		if t.Started.IsZero() || len(t.SenderReports) == 0 || t.ClockRate == 0 {
			continue
		}
		sr := t.SenderReports[0]
		d := time.Duration(float64(int32(t.FirstRTP-sr.RTP)) / float64(t.ClockRate) * float64(time.Second))
		sent[i] = sr.NTP.Add(d)
		delay := t.Started.Sub(sent[i])
		if !have[t.Participant] || delay < shift[t.Participant] {
			shift[t.Participant], have[t.Participant] = delay, true
		}
	}
	for i, t := range m.Tracks {
		if !sent[i].IsZero() {
			starts[i] = sent[i].Add(shift[t.Participant])
		}
	}
	return starts
}

// source is one input's next frame in the merge.
type source struct {
	next   frameReader
	track  int           // archive track index
	offset time.Duration // where the input starts in the archive
	frame  []byte
	at     time.Duration // from the input's start
	key    bool
}

func (s *source) advance() bool {
	f, at, key, err := s.next()
	if err != nil {
		return false
	}
	s.frame, s.at, s.key = f, at, key
	return true
}

// mergeHeap orders sources by their next frame's archive time.
type mergeHeap []*source

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	return h[i].offset+h[i].at < h[j].offset+h[j].at
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(*source)) }
func (h *mergeHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// frameReader yields a recorded file's frames in order: the data, its
// time from the file's start, whether it is a keyframe; io.EOF at the end.
type frameReader func() ([]byte, time.Duration, bool, error)

// openFrames reads a recorded Ogg Opus or WebM file.
func openFrames(path string, video bool) (frameReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !video {
		r, _, err := oggreader.NewWith(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		var first uint64
		started := false
		return func() ([]byte, time.Duration, bool, error) {
			for {
				p, h, err := r.ParseNextPage()
				if err != nil {
					f.Close()
					return nil, 0, false, io.EOF
				}
				if strings.HasPrefix(string(p), "OpusTags") || len(p) == 0 {
					continue
				}
				// The recorder writes one packet per page, its granule
				// position that packet's start (pion's oggwriter).
				if !started {
					first, started = h.GranulePosition, true
				}
				return p, time.Duration(h.GranulePosition-first) * time.Second / 48000, true, nil
			}
		}, nil
	}
	rs, err := mkvcore.NewSimpleBlockReader(f)
	if err != nil || len(rs) == 0 {
		f.Close()
		return nil, fmt.Errorf("webm: %v", err)
	}
	r := rs[0]
	var first int64
	started := false
	return func() ([]byte, time.Duration, bool, error) {
		b, key, ts, err := r.Read()
		if err != nil {
			f.Close()
			return nil, 0, false, io.EOF
		}
		if !started {
			first, started = ts, true
		}
		return b, time.Duration(ts-first) * time.Millisecond, key, nil
	}, nil
}

// openAnnexB reads a recorded H.264 stream by its index (ManifestTrack.
// Index), each frame turned from Annex-B into the length-prefixed form a
// Matroska AVC track carries (ISO 14496-15), and sets *avcC from the
// first SPS and PPS it meets.
func openAnnexB(path, index string, avcC *[]byte) (frameReader, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	idx, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(idx)), "\n")
	off := 0
	return func() ([]byte, time.Duration, bool, error) {
		for len(lines) > 0 {
			var ms int64
			var key, n int
			_, err := fmt.Sscanf(lines[0], "%d %d %d", &ms, &key, &n)
			lines = lines[1:]
			if err != nil || n < 0 || off+n > len(data) {
				return nil, 0, false, io.EOF
			}
			frame := data[off : off+n]
			off += n
			var avc []byte
			for _, nal := range splitAnnexB(frame) {
				switch nal[0] & 0x1f {
				case 7, 8: // SPS, PPS: into avcC once, and kept in the frame
					if *avcC == nil {
						*avcC = makeAVCC(frame)
					}
				case 9: // access unit delimiter: not in AVC samples
					continue
				}
				avc = binary.BigEndian.AppendUint32(avc, uint32(len(nal)))
				avc = append(avc, nal...)
			}
			if len(avc) == 0 {
				continue
			}
			return avc, time.Duration(ms) * time.Millisecond, key == 1, nil
		}
		return nil, 0, false, io.EOF
	}, nil
}

// splitAnnexB returns the NAL units of an Annex-B stream (start codes of
// 3 or 4 bytes).
func splitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				if end > start && b[end-1] == 0 {
					end--
				}
				if end > start {
					nals = append(nals, b[start:end])
				}
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}

// makeAVCC builds an AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1)
// from the first SPS and PPS of an Annex-B frame, nil if it lacks either.
func makeAVCC(frame []byte) []byte {
	var sps, pps []byte
	for _, nal := range splitAnnexB(frame) {
		switch nal[0] & 0x1f {
		case 7:
			if sps == nil {
				sps = nal
			}
		case 8:
			if pps == nil {
				pps = nal
			}
		}
	}
	if len(sps) < 4 || pps == nil {
		return nil
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1} // 4-byte lengths, one SPS
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

// opusHead is the Opus identification header (RFC 7845 §5.1) a Matroska
// A_OPUS track carries as CodecPrivate: stereo, 48 kHz, pre-skip 312.
func opusHead() []byte {
	b := []byte("OpusHead")
	b = append(b, 1, 2)
	b = binary.LittleEndian.AppendUint16(b, 312)
	b = binary.LittleEndian.AppendUint32(b, 48000)
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, 0)
}
