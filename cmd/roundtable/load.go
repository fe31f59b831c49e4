package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/roundtable-sfu/roundtable/internal/baseline"
	"github.com/roundtable-sfu/roundtable/internal/load"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// errLowDelivery makes `roundtable load` exit 1: the run worked, the
// server delivered too little.
var errLowDelivery = errors.New("delivery below -min-delivery")

// runLoad is `roundtable load`: simulated participants against a running
// server (see internal/load).
func runLoad(args []string, stdout, stderr io.Writer) error {
	cfg := load.DefaultConfig()
	fs := flag.NewFlagSet("roundtable load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "the server's signaling URL; several, comma-separated (a cluster's nodes), take the participants in turn")
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "fanout (P publishers, S subscribers), room (N all publishing), rooms (R rooms of N), audio (P speakers, S listeners)")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "publishers (fanout) or speakers (audio)")
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "subscribers (fanout) or listeners (audio)")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "participants per room (room, rooms)")
	fs.IntVar(&cfg.Rooms, "rooms", cfg.Rooms, "rooms (rooms)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time, after the warm-up")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "time after everyone joined before measuring")
	fs.IntVar(&cfg.VideoBitrate, "video-bitrate", cfg.VideoBitrate, "video bits per second per publisher")
	fs.IntVar(&cfg.FPS, "fps", cfg.FPS, "video frames per second")
	fs.IntVar(&cfg.PacketSize, "packet-size", cfg.PacketSize, "video payload bytes per packet (at most 1,200)")
	fs.DurationVar(&cfg.KeyframeInterval, "keyframe-interval", cfg.KeyframeInterval, "time between periodic keyframes (PLIs add more)")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "every participant's path: udp, tcp (ICE-TCP), turn-udp, turn-tcp or turn-tls (relay only, through the built-in TURN server)")
	fs.StringVar(&cfg.Keys.Key, "api-key", os.Getenv("ROUNDTABLE_API_KEY"), "API key (iss claim) of the join tokens, for a server with an API secret")
	fs.StringVar(&cfg.Keys.Secret, "api-secret", os.Getenv("ROUNDTABLE_API_SECRET"), "the server's API secret: each participant joins with a token minted with it (prefer ROUNDTABLE_API_SECRET)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	minDelivery := fs.Float64("min-delivery", 0.995, "exit 1 when the delivered share of packets is below this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && stderr == os.Stderr {
		cfg.Live = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if *asJSON {
		fmt.Fprintf(stdout, "%s\n", res.JSON())
	} else {
		fmt.Fprint(stdout, res.String())
	}
	if res.Delivery < *minDelivery {
		return fmt.Errorf("%w: %.3f %% < %.3f %%", errLowDelivery, 100*res.Delivery, 100**minDelivery)
	}
	return nil
}

// runBaseline is `roundtable baseline`: the stock pion fan-out that
// performance measurements compare against (see internal/baseline). It
// listens on loopback only.
func runBaseline(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundtable baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "HTTP address for /ws and /metrics (loopback)")
	port := fs.Int("ice-port", 7883, "UDP port for every PeerConnection (0 = ephemeral)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || !server.IsLoopback(host) {
		return fmt.Errorf("listen %q: the baseline serves loopback only", *listen)
	}
	b, err := baseline.New(*port, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	defer b.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "Baseline (stock pion fan-out) is up: ws://%s/ws\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- b.Listen(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ln.Close()
	}
}
