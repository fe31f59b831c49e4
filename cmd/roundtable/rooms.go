package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/auth"
)

const roomsUsage = `usage: roundtable rooms [-url URL] [-token TOKEN] COMMAND
  list                                  every room
  show ROOM                             a room and its participants
  close ROOM                            end everyone's session (bye room_closed)
  remove ROOM PARTICIPANT               end one session (bye removed)
  mute ROOM PARTICIPANT TRACK           stop forwarding a track
  unmute ROOM PARTICIPANT TRACK         forward it again
  grants ROOM PARTICIPANT publish=false|subscribe=true|publishData=…
  data ROOM TEXT                        a data message from "server" to everyone
  record ROOM                           start recording the room (docs/recording.md)
  stop-recording ROOM                   stop it; the files are complete when it returns
The admin token comes from -token, ROUNDTABLE_ADMIN_TOKEN, or is minted for a
minute from ROUNDTABLE_API_KEY and ROUNDTABLE_API_SECRET; an open server on
loopback needs none (docs/api.md).`

// runRooms is `roundtable rooms`: a small client of the admin API.
func runRooms(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundtable rooms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, roomsUsage) }
	url := fs.String("url", envOr("ROUNDTABLE_URL", "http://127.0.0.1:8080"), "the server's base URL, http:// or https:// (ROUNDTABLE_URL)")
	token := fs.String("token", os.Getenv("ROUNDTABLE_ADMIN_TOKEN"), "an admin token (roundtable token -admin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		if secret := os.Getenv("ROUNDTABLE_API_SECRET"); secret != "" {
			t, err := auth.Keys{Key: os.Getenv("ROUNDTABLE_API_KEY"), Secret: secret}.Mint(auth.Token{
				Room: auth.AllRooms, Identity: "roundtable-rooms", TTL: time.Minute, Grants: auth.Grants{Admin: true}}, time.Now())
			if err != nil {
				return err
			}
			*token = t
		}
	}
	c := apiClient{base: strings.TrimSuffix(*url, "/") + "/api/v1", token: *token}
	a := fs.Args()
	need := func(n int) error {
		if len(a) != n+1 {
			return fmt.Errorf("rooms %s: want %d arguments\n%s", a[0], n, roomsUsage)
		}
		return nil
	}
	if len(a) == 0 {
		return errors.New(roomsUsage)
	}
	switch a[0] {
	case "list":
		if err := need(0); err != nil {
			return err
		}
		return c.list(stdout)
	case "show":
		if err := need(1); err != nil {
			return err
		}
		return c.show(stdout, a[1])
	case "close":
		if err := need(1); err != nil {
			return err
		}
		return c.do("DELETE", "/rooms/"+a[1], nil, nil)
	case "remove":
		if err := need(2); err != nil {
			return err
		}
		return c.do("POST", "/rooms/"+a[1]+"/participants/"+a[2]+"/remove", nil, nil)
	case "mute", "unmute":
		if err := need(3); err != nil {
			return err
		}
		return c.do("POST", "/rooms/"+a[1]+"/participants/"+a[2]+"/tracks/"+a[3]+"/"+a[0], nil, nil)
	case "data":
		if err := need(2); err != nil {
			return err
		}
		var out struct{ Recipients int }
		if err := c.do("POST", "/rooms/"+a[1]+"/data", map[string]string{"text": a[2]}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sent to %d participants\n", out.Recipients)
		return nil
	case "record", "stop-recording":
		if err := need(1); err != nil {
			return err
		}
		method := "POST"
		if a[0] == "stop-recording" {
			method = "DELETE"
		}
		var out struct{ Recording struct{ Dir string } }
		if err := c.do(method, "/rooms/"+a[1]+"/recording", nil, &out); err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.Recording.Dir)
		return nil
	case "grants":
		if len(a) < 4 {
			return errors.New("rooms grants: want ROOM PARTICIPANT and at least one name=true|false")
		}
		grants := map[string]bool{}
		for _, kv := range a[3:] {
			k, v, ok := strings.Cut(kv, "=")
			b, err := strconv.ParseBool(v)
			if !ok || err != nil || (k != "publish" && k != "subscribe" && k != "publishData") {
				return fmt.Errorf("rooms grants: %q: want publish, subscribe or publishData = true or false", kv)
			}
			grants[k] = b
		}
		var out struct{ Grants map[string]bool }
		if err := c.do("PATCH", "/rooms/"+a[1]+"/participants/"+a[2], map[string]any{"grants": grants}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "publish=%v subscribe=%v publishData=%v\n", out.Grants["publish"], out.Grants["subscribe"], out.Grants["publishData"])
		return nil
	}
	return fmt.Errorf("rooms: unknown command %q\n%s", a[0], roomsUsage)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type apiClient struct{ base, token string }

// do makes one request; a JSON error answer becomes the error.
func (c apiClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (c apiClient) list(w io.Writer) error {
	var out struct {
		Rooms []struct {
			Name                 string
			Participants, Tracks int
			Created              time.Time
		}
	}
	if err := c.do("GET", "/rooms", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tPARTICIPANTS\tTRACKS\tCREATED")
	for _, r := range out.Rooms {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Name, r.Participants, r.Tracks, r.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (c apiClient) show(w io.Writer, roomName string) error {
	var out struct {
		Room struct {
			Name                 string
			Participants, Tracks int
		}
		Participants []struct {
			ID, Name, Identity, Path string
			JoinedAt                 time.Time
			Grants                   struct{ Publish, Subscribe, PublishData bool }
			Tracks                   []struct {
				ID, Kind, Source string
				Muted            bool
			}
			Quality *struct {
				Up, Down string
				RTTMs    float64
			}
		}
	}
	if err := c.do("GET", "/rooms/"+roomName, nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(w, "room %s: %d participants, %d tracks\n", out.Room.Name, out.Room.Participants, out.Room.Tracks)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tIDENTITY\tJOINED\tPATH\tQUALITY\tGRANTS\tTRACKS")
	for _, p := range out.Participants {
		var g []string
		for _, gr := range []struct {
			name string
			ok   bool
		}{{"publish", p.Grants.Publish}, {"subscribe", p.Grants.Subscribe}, {"publishData", p.Grants.PublishData}} {
			if gr.ok {
				g = append(g, gr.name)
			}
		}
		var ts []string
		for _, t := range p.Tracks {
			s := t.ID + ":" + t.Kind
			if t.Muted {
				s += "(muted)"
			}
			ts = append(ts, s)
		}
		quality := "-"
		if q := p.Quality; q != nil {
			quality = fmt.Sprintf("up %s, down %s, rtt %.0f ms", q.Up, q.Down, q.RTTMs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Identity, p.JoinedAt.Local().Format(time.TimeOnly),
			p.Path, quality, strings.Join(g, ","), strings.Join(ts, " "))
	}
	return tw.Flush()
}
