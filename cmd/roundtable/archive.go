package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/roundtable-sfu/roundtable/record"
)

// runArchive is `roundtable archive`: a recording's files as one WebM
// file (record.Archive), and with -mix a mixed audio track made by ffmpeg.
func runArchive(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundtable archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: roundtable archive [-o FILE] [-mix] DIR
DIR is one recording (the directory with manifest.json). Writes one WebM file (Matroska
when a track is H.264) with an audio track per participant and the video tracks, lined up
by the manifest, without transcoding; -mix adds one track of every participant's audio
mixed, which needs ffmpeg (it encodes that track alone).`)
		fs.PrintDefaults()
	}
	out := fs.String("o", "", "the archive file (default DIR/archive.webm, or archive.mkv with H.264)")
	mix := fs.Bool("mix", false, "add a mixed audio track (ffmpeg)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("archive: want one recording directory")
	}
	dir := fs.Arg(0)
	if *out == "" {
		*out = filepath.Join(dir, record.ArchiveName(dir))
	}
	var ffmpeg string
	if *mix {
		var err error
		if ffmpeg, err = exec.LookPath("ffmpeg"); err != nil {
			return fmt.Errorf("archive -mix needs ffmpeg: %w", err)
		}
	}
	tracks, err := record.Archive(dir, *out, record.ArchiveOptions{FFmpeg: ffmpeg,
		Warn: func(s string) { fmt.Fprintln(stderr, "warning:", s) }})
	if err != nil {
		return err
	}
	for _, t := range tracks {
		fmt.Fprintf(stdout, "track %d: %s %s, from %v, %d frames (%s)\n", t.Number, t.Kind, t.Name, t.Start, t.Frames, strings.Join(t.Files, ", "))
	}
	fmt.Fprintln(stdout, *out)
	return nil
}
