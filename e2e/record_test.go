package e2e

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/record"
)

// mediaSeconds is how long the test media lasts; flashAt is when its
// picture flashes white and its audio beeps, for flashFor seconds (the
// beep outlasts a lost packet or two: audio is not retransmitted, as
// browsers do not for Opus, and a decoder conceals what is lost).
const (
	mediaSeconds = 8
	flashAt      = 4.0
	flashFor     = 0.3
)

// needFFmpeg returns ffmpeg's and ffprobe's paths, or skips (fails under
// RT_REQUIRE_TOOLS: scripts/test.sh installs them).
func needFFmpeg(t *testing.T) (ffmpeg, ffprobe string) {
	t.Helper()
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatalf("ffmpeg and ffprobe are required: %v %v", err1, err2)
		}
		t.Skip("ffmpeg and ffprobe are not installed")
	}
	return ffmpeg, ffprobe
}

// makeMedia has ffmpeg make a participant's media into dir: an Ogg Opus
// file of a sine tone at freq Hz, one 20 ms packet per page, with a loud
// 2 kHz beep from flashAt for flashFor; and an IVF VP8 file of a black
// 320x240 picture at 30 frames a second (a keyframe every second) that is
// white from flashAt for flashFor.
func makeMedia(t *testing.T, ffmpeg, dir string, freq int, h264 bool) (audio, video string) {
	t.Helper()
	audio, video = filepath.Join(dir, fmt.Sprintf("tone%d.ogg", freq)), filepath.Join(dir, fmt.Sprintf("pattern%d.ivf", freq))
	codec := []string{"-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "400k"}
	if h264 {
		// Constrained baseline, as WebRTC sends it; access unit
		// delimiters mark the frames of the elementary stream.
		video = filepath.Join(dir, fmt.Sprintf("pattern%d.h264", freq))
		codec = []string{"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0",
			"-tune", "zerolatency", "-x264-params", "aud=1", "-b:v", "400k", "-f", "h264"}
	}
	run := func(args ...string) {
		out, err := exec.Command(ffmpeg, append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run("-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=0.2*sin(2*PI*%d*t)+if(between(t\\,%g\\,%g)\\,0.7*sin(2*PI*2000*t)\\,0):s=48000:d=%d",
		freq, flashAt, flashAt+flashFor, mediaSeconds),
		"-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", audio)
	run(append(append([]string{"-f", "lavfi", "-i", fmt.Sprintf("color=c=black:s=320x240:r=30:d=%d,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(t,%g,%g)'",
		mediaSeconds, flashAt, flashAt+flashFor)}, codec...), video)...)
	return audio, video
}

// probeDuration is a file's duration as ffprobe reads it, in seconds.
func probeDuration(t *testing.T, ffprobe, file string) float64 {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe %s: duration %q", file, out)
	}
	return d
}

// decodeErrors decodes a file in full with ffmpeg and returns what it
// complained of ("" nothing); out are more output options.
func decodeErrors(t *testing.T, ffmpeg, file string, out ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(ffmpeg, append(append([]string{"-v", "error", "-i", file}, out...), "-f", "null", "-")...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("%v: %s", err, stderr.String())
	}
	return strings.TrimSpace(stderr.String())
}

func withRecordDir(dir string) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) { c.RecordDir = dir }
}

// Every room recorded (-record-dir): three pion publishers send real Opus
// and VP8 (H.264 for cat) made by ffmpeg, each through a leg that loses 5 % of its
// packets (retransmissions too, all but each stream's first 20: a file
// cannot answer a keyframe request, so its first keyframe must arrive);
// when the room ends, its recording holds
// one Ogg and one WebM (or Annex-B and its index) file per publisher,
// which ffprobe reads and ffmpeg decodes without an error, each as long as
// what was sent (within 0.5 s),
// and a manifest that names who published what, when, with the
// publishers' sender reports. The archive of it (with the mix) decodes,
// and in it each publisher's flash and beep are within 40 ms.
func TestRecordingThroughLoss(t *testing.T) {
	ffmpeg, ffprobe := needFFmpeg(t)
	checkGoroutines(t)
	media := t.TempDir()
	recDir := t.TempDir()
	s := startServer(t, withRecordDir(recDir))
	ctx := testContext(t, 60*time.Second)
	var pubs []*client.Client
	for i, name := range []string{"ann", "bob", "cat"} {
		cfg := client.Config{Room: "recorded", Name: name, Audio: 1, Video: 1}
		if name == "cat" {
			cfg.VideoCodec = webrtc.MimeTypeH264
		}
		cfg.AudioFile, cfg.VideoFile = makeMedia(t, ffmpeg, media, 440+220*i, name == "cat")
		loss := &lossyLink{rate: 0.05, target: -1, spare: 20, rng: rand.New(rand.NewPCG(uint64(i), 7))}
		cfg.Interceptors = []interceptor.Factory{loss}
		pubs = append(pubs, s.joinWith(ctx, cfg))
	}
	waitFor(t, ctx, "the room recorded", func() bool { return s.Rooms.Recording("recorded") })
	for _, p := range pubs {
		for _, l := range p.Local() {
			select {
			case <-l.FileDone():
			case <-ctx.Done():
				t.Fatal("the media files were not sent in time")
			}
			if err := l.FileError(); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // the last frames reach the recorder (nothing to wait on: the sender is done)
	for _, p := range pubs {
		p.Leave()
	}
	waitFor(t, ctx, "the recording finished", func() bool { return s.Recorder.Stats().Active.Load() == 0 && s.Rooms.Recordings() == 0 })

	dirs, _ := filepath.Glob(filepath.Join(recDir, "recorded", "*"))
	if len(dirs) != 1 {
		t.Fatalf("recordings of the room: %v, want one", dirs)
	}
	m, err := record.ReadManifest(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if m.Room != "recorded" || m.Stopped.IsZero() || len(m.Tracks) != 6 {
		t.Fatalf("manifest: room %q, stopped %v, %d tracks, want 6", m.Room, m.Stopped, len(m.Tracks))
	}
	names := map[string]string{pubs[0].ID: "ann", pubs[1].ID: "bob", pubs[2].ID: "cat"}
	for _, tr := range m.Tracks {
		what := fmt.Sprintf("%s's %s (%s)", tr.Name, tr.Kind, tr.File)
		if names[tr.Participant] != tr.Name || tr.File == "" || tr.Error != "" {
			t.Errorf("%s: participant %s, error %q", what, tr.Participant, tr.Error)
			continue
		}
		if tr.Started.IsZero() || tr.Stopped.Before(tr.Started) || len(tr.SenderReports) == 0 || tr.Frames == 0 {
			t.Errorf("%s: started %v stopped %v, %d sender reports, %d frames", what, tr.Started, tr.Stopped, len(tr.SenderReports), tr.Frames)
		}
		file := filepath.Join(dirs[0], tr.File)
		d := 0.0
		if tr.Index != "" {
			// An elementary stream has no time of its own: its index
			// has each frame's.
			d = indexDuration(t, filepath.Join(dirs[0], tr.Index))
		} else {
			d = probeDuration(t, ffprobe, file)
		}
		if d < mediaSeconds-0.5 || d > mediaSeconds+0.5 {
			t.Errorf("%s lasts %.2f s, want %d ± 0.5", what, d, mediaSeconds)
		}
		if e := decodeErrors(t, ffmpeg, file); e != "" {
			t.Errorf("%s does not decode cleanly: %s", what, e)
		}
		t.Logf("%s: %d frames, %d bytes, %d packets lost, %d dropped", what, tr.Frames, tr.Bytes, tr.Lost, tr.Dropped)
	}

	// The archive: one file, an audio track per participant, the video
	// tracks, and the mix; each publisher's flash and beep at one instant.
	archive := filepath.Join(t.TempDir(), record.ArchiveName(dirs[0]))
	if keep := os.Getenv("RT_KEEP_RECORDING"); keep != "" { // for a look with ffprobe
		_ = exec.Command("cp", "-r", dirs[0], keep).Run()
	}
	tracks, err := record.Archive(dirs[0], archive, record.ArchiveOptions{FFmpeg: ffmpeg, Warn: func(s string) { t.Error(s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 7 || filepath.Ext(archive) != ".mkv" {
		t.Fatalf("archive %s, tracks %+v: want a Matroska file of 3 audio, 3 video and the mix", archive, tracks)
	}
	// Every stream, each frame at its own time, in the file's time base
	// (ffmpeg would otherwise resample to a frame rate it guesses, and
	// complain when two frames fall in one of its ticks).
	if e := decodeErrors(t, ffmpeg, archive, "-map", "0", "-fps_mode", "passthrough", "-enc_time_base", "-1"); e != "" {
		t.Errorf("the archive does not decode cleanly: %s", e)
	}
	var last time.Duration // the latest start: the archive ends media later
	for _, tr := range tracks {
		last = max(last, tr.Start)
	}
	if d, want := probeDuration(t, ffprobe, archive), last.Seconds()+mediaSeconds; math.Abs(d-want) > 0.5 {
		t.Errorf("the archive lasts %.2f s, want %.2f (its last track starts at %v) ± 0.5", d, want, last)
	}
	for _, name := range []string{"ann", "bob", "cat"} {
		var flash, beep float64 = -1, -1
		for _, tr := range tracks {
			if tr.Name == "mix" || !strings.HasPrefix(tr.Name, name) {
				continue
			}
			if tr.Kind == "video" {
				flash = flashTime(t, ffprobe, archive, tr.Number-1)
			} else {
				beep = beepTime(t, ffprobe, archive, tr.Number-1)
			}
		}
		t.Logf("%s: flash at %.3f s, beep at %.3f s in the archive", name, flash, beep)
		if flash < 0 || beep < 0 || math.Abs(flash-beep) > 0.040 {
			t.Errorf("%s: the flash at %.3f s and the beep at %.3f s are not within 40 ms", name, flash, beep)
		}
	}
}

// indexDuration is how long an H.264 recording's frames last, by its
// index: the last frame's time and one frame at 30 a second.
func indexDuration(t *testing.T, index string) float64 {
	t.Helper()
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var ms float64
	if _, err := fmt.Sscanf(lines[len(lines)-1], "%f", &ms); err != nil {
		t.Fatalf("index %s: %v", index, err)
	}
	return ms/1000 + 1.0/30
}

// flashTime is when stream si of file first shows a picture brighter than
// mid-grey (signalstats' mean luma), in seconds; -1 never.
func flashTime(t *testing.T, ffprobe, file string, si int) float64 {
	t.Helper()
	bright := framesWhere(t, ffprobe, fmt.Sprintf("movie=%s:si=%d,signalstats", file, si), "lavfi.signalstats.YAVG",
		func(v float64) bool { return v > 128 })
	if len(bright) == 0 {
		return -1
	}
	return bright[0]
}

// beepTime is when the beep starts in audio stream si of file, in seconds
// (-1 never): the first decoded frame (20 ms) that peaks above -8 dBFS
// (the tone alone peaks at -14), or, if that is later, the last such
// frame's end less the beep's length. Audio is not retransmitted, so the
// frames at either edge of the beep may be missing; a frame's time is its
// block's in the archive, so a missing one leaves a gap, not a shift.
func beepTime(t *testing.T, ffprobe, file string, si int) float64 {
	t.Helper()
	loud := framesWhere(t, ffprobe, fmt.Sprintf("amovie=%s:si=%d,astats=metadata=1:reset=1", file, si),
		"lavfi.astats.Overall.Peak_level", func(v float64) bool { return v > -8 })
	if len(loud) == 0 {
		return -1
	}
	return min(loud[0], loud[len(loud)-1]+0.020-flashFor)
}

// framesWhere runs a lavfi graph through ffprobe and returns the times
// of the frames whose tag satisfies ok, past the first second (an Opus
// decoder's start may peak).
func framesWhere(t *testing.T, ffprobe, graph, tag string, ok func(float64) bool) []float64 {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-f", "lavfi", "-i", graph,
		"-show_entries", "frame=pts_time:frame_tags="+tag, "-of", "csv=p=0").CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", graph, err, out)
	}
	var times []float64
	for _, line := range strings.Split(string(out), "\n") {
		at, v, found := strings.Cut(strings.TrimSpace(line), ",")
		if !found {
			continue
		}
		ts, err1 := strconv.ParseFloat(at, 64)
		x, err2 := strconv.ParseFloat(v, 64)
		if err1 == nil && err2 == nil && ts > 1 && ok(x) {
			times = append(times, ts)
		}
	}
	return times
}

// The admin API starts and stops a room's recording: 201 with its
// directory, 409 while it records, 404 for no room; stopping returns once
// the manifest is complete.
func TestRecordingByAdminAPI(t *testing.T) {
	checkGoroutines(t)
	recDir := t.TempDir()
	s := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) { c.RecordingsDir = recDir })
	ctx := testContext(t, 30*time.Second)
	ann := s.join(ctx, "meeting", "ann", 1, 1)
	call := func(method, path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, s.URL()+"api/v1/rooms/"+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := call("POST", "nowhere/recording"); code != http.StatusNotFound {
		t.Errorf("recording a room that does not exist: %d, want 404", code)
	}
	code, body := call("POST", "meeting/recording")
	if code != http.StatusCreated || !strings.Contains(body, recDir) {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _ := call("POST", "meeting/recording"); code != http.StatusConflict {
		t.Errorf("a second start: %d, want 409", code)
	}
	waitFor(t, ctx, "frames recorded", func() bool { return s.Recorder.Stats().Bytes.Load() > 20000 })
	if code, body := call("DELETE", "meeting/recording"); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, body)
	}
	dirs, _ := filepath.Glob(filepath.Join(recDir, "meeting", "*"))
	if len(dirs) != 1 {
		t.Fatalf("recordings: %v", dirs)
	}
	m, err := record.ReadManifest(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if m.Stopped.IsZero() || len(m.Tracks) != 2 {
		t.Errorf("manifest: stopped %v, %d tracks, want 2", m.Stopped, len(m.Tracks))
	}
	for _, tr := range m.Tracks {
		if tr.Participant != ann.ID || tr.Bytes == 0 || tr.Stopped.IsZero() {
			t.Errorf("track %+v", tr)
		}
	}
	if code, _ := call("DELETE", "meeting/recording"); code != http.StatusNotFound {
		t.Errorf("stopping twice: %d, want 404", code)
	}
	ann.Leave()
}
