// Package admin is Roundtable's admin API (docs/api.md, described by
// openapi.json): JSON over HTTP under /api/v1/, for operators and their
// tools (the `roundtable rooms` CLI). Requests carry a bearer join token
// with the admin grant (auth.Keys.CheckAdmin), for one room or for all
// (room claim "*"); a server without an API secret answers loopback
// clients only.
//
// An API holds no state of its own: net/http runs each request on its
// goroutine, which reads snapshots from room.Manager and acts through it.
// This package must not touch WebSockets, pion or RTP.
package admin

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// Prefix is where the API is served.
const Prefix = "/api/v1/"

// Bye reasons of the participants the API ends.
const (
	ByeRoomClosed = "room_closed"
	ByeRemoved    = "removed"
)

// Error codes of the API's JSON errors ({"error": {"code", "message"}}).
const (
	CodeUnauthorized = "unauthorized"       // 401: no token, or one that does not verify or has expired
	CodeForbidden    = "forbidden"          // 403: no admin grant, another room, or an open server asked from off loopback
	CodeNotFound     = "not_found"          // 404: no such room, participant or route
	CodeBadRequest   = "bad_request"        // 400: a body that is not the JSON the route takes
	CodeTooLarge     = "too_large"          // 413: a body or data message over its limit
	CodeMethod       = "method_not_allowed" // 405
	CodeConflict     = "conflict"           // 409: the room is being recorded already
	CodeUnavailable  = "unavailable"        // 503: the server cannot record
)

//go:embed openapi.json
var openAPI []byte

// Config configures an API.
type Config struct {
	// Keys verify the admin tokens; nil: an open server, which answers
	// requests from loopback addresses only.
	Keys *auth.Keys
	// MaxData bounds a data message the API sends, in bytes (the
	// server's -data-max-message).
	MaxData int
	// Record starts a room's recording (package record); nil: the API
	// cannot record.
	Record room.NewRecorder
	// Node is this node's id in a cluster, and Peers lists the other live
	// nodes: with Peers, the API answers for the whole cluster
	// (cluster.go). Nil Peers: one node.
	Node  string
	Peers func() []Peer
}

// API serves the admin routes.
type API struct {
	rooms *room.Manager
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
}

// route is one operation: method, path (http.ServeMux pattern syntax) and
// whether it names a room (for tokens scoped to one).
type route struct {
	method, path string
	handle       func(*API, http.ResponseWriter, *http.Request)
	open         bool // served without a token (the API's description)
}

// routes is every operation the API serves; openapi.json describes each
// (TestOpenAPIListsEveryRoute).
var routes = []route{
	{method: "GET", path: "/api/v1/openapi.json", handle: (*API).openAPI, open: true},
	{method: "GET", path: "/api/v1/rooms", handle: (*API).listRooms},
	{method: "GET", path: "/api/v1/rooms/{room}", handle: (*API).showRoom},
	{method: "DELETE", path: "/api/v1/rooms/{room}", handle: (*API).closeRoom},
	{method: "POST", path: "/api/v1/rooms/{room}/participants/{id}/remove", handle: (*API).removeParticipant},
	{method: "PATCH", path: "/api/v1/rooms/{room}/participants/{id}", handle: (*API).patchParticipant},
	{method: "POST", path: "/api/v1/rooms/{room}/participants/{id}/tracks/{track}/mute", handle: (*API).muteTrack},
	{method: "POST", path: "/api/v1/rooms/{room}/participants/{id}/tracks/{track}/unmute", handle: (*API).muteTrack},
	{method: "POST", path: "/api/v1/rooms/{room}/data", handle: (*API).sendData},
	{method: "POST", path: "/api/v1/rooms/{room}/recording", handle: (*API).startRecording},
	{method: "DELETE", path: "/api/v1/rooms/{room}/recording", handle: (*API).stopRecording},
}

// Routes lists the operations served, as "METHOD /path".
func Routes() []string {
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

// OpenAPI returns the API's OpenAPI 3 document.
func OpenAPI() []byte { return openAPI }

// New returns the API over rooms.
func New(rooms *room.Manager, cfg Config, log *slog.Logger) *API {
	if log == nil {
		log = slog.Default()
	}
	a := &API{rooms: rooms, cfg: cfg, log: log, mux: http.NewServeMux()}
	methods := map[string][]string{}
	for _, r := range routes {
		a.mux.HandleFunc(r.method+" "+r.path, a.guard(r))
		methods[r.path] = append(methods[r.path], r.method)
	}
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		a.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, CodeMethod, "allowed: "+allow)
		})
	}
	a.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no route "+r.URL.Path)
	})
	return a
}

// ServeHTTP serves the routes under Prefix.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// guard authorizes a request for its room (or the whole server) and runs
// the route.
func (a *API) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !rt.open {
			if status, code, err := a.authorize(r, r.PathValue("room")); err != nil {
				if status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="roundtable"`)
				}
				writeError(w, status, code, err.Error())
				return
			}
		}
		if a.cfg.Peers != nil && !rt.open && r.Header.Get(LocalHeader) == "" {
			a.clustered(rt, w, r)
			return
		}
		rt.handle(a, w, r)
	}
}

// authorize checks the request's bearer token for room ("" for the whole
// server); an open server lets loopback clients in.
func (a *API) authorize(r *http.Request, roomName string) (int, string, error) {
	if a.cfg.Keys == nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return 0, "", nil
		}
		return http.StatusForbidden, CodeForbidden, errors.New("the server has no API secret: the admin API answers loopback clients only")
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") { // schemes are case-insensitive (RFC 9110 §11.1)
		return http.StatusUnauthorized, CodeUnauthorized, errors.New("an admin token is required (Authorization: Bearer <token>)")
	}
	_, err := a.cfg.Keys.CheckAdmin(strings.TrimSpace(tok), roomName, time.Now())
	switch {
	case err == nil:
		return 0, "", nil
	case errors.Is(err, auth.ErrNotAdmin), errors.Is(err, auth.ErrWrongRoom):
		return http.StatusForbidden, CodeForbidden, err
	default:
		return http.StatusUnauthorized, CodeUnauthorized, err
	}
}

// JSON shapes (openapi.json has their schemas).
type (
	roomJSON struct {
		Name         string    `json:"name"`
		Participants int       `json:"participants"`
		Tracks       int       `json:"tracks"`
		Created      time.Time `json:"created"`
		Recording    bool      `json:"recording"`
		Nodes        []string  `json:"nodes,omitempty"` // in a cluster, the nodes it has members on
	}
	grantsJSON struct {
		Publish     bool `json:"publish"`
		Subscribe   bool `json:"subscribe"`
		PublishData bool `json:"publishData"`
	}
	trackJSON struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		Source string `json:"source,omitempty"`
		Muted  bool   `json:"muted"`
	}
	participantJSON struct {
		ID        string       `json:"id"`
		Name      string       `json:"name"`
		Identity  string       `json:"identity,omitempty"`
		JoinedAt  time.Time    `json:"joinedAt"`
		Grants    grantsJSON   `json:"grants"`
		Tracks    []trackJSON  `json:"tracks"`
		Connected bool         `json:"connected"`
		Path      string       `json:"path,omitempty"`
		Quality   *qualityJSON `json:"quality,omitempty"`
		Node      string       `json:"node,omitempty"` // in a cluster, the node it is on
	}
	qualityJSON struct {
		Up          string  `json:"up"`
		Down        string  `json:"down"`
		RTTMs       float64 `json:"rttMs,omitempty"`
		LossUpPct   float64 `json:"lossUpPercent"`
		LossDownPct float64 `json:"lossDownPercent"`
	}
	patchRequest struct {
		Grants *struct {
			Publish     *bool `json:"publish"`
			Subscribe   *bool `json:"subscribe"`
			PublishData *bool `json:"publishData"`
		} `json:"grants"`
	}
	dataRequest struct {
		Text   *string `json:"text"`
		Binary *string `json:"binary"` // base64 (RFC 4648 §4)
	}
)

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

func (a *API) listRooms(w http.ResponseWriter, _ *http.Request) {
	rooms := a.rooms.Rooms()
	out := make([]roomJSON, 0, len(rooms))
	for _, r := range rooms {
		out = append(out, a.roomOf(r))
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

func (a *API) showRoom(w http.ResponseWriter, r *http.Request) {
	info, members, ok := a.rooms.Room(r.PathValue("room"))
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, "no room "+r.PathValue("room"))
		return
	}
	ps := make([]participantJSON, 0, len(members))
	for _, m := range members {
		p := participantJSON{ID: m.ID, Name: m.Name, Identity: m.Identity, JoinedAt: m.Joined.UTC(),
			Grants:    grantsJSON{Publish: m.Perm.Publish, Subscribe: m.Perm.Subscribe, PublishData: m.Perm.PublishData},
			Tracks:    make([]trackJSON, 0, len(m.Tracks)),
			Connected: m.Connected, Path: m.Path, Node: a.cfg.Node}
		if q := m.Quality; q != nil {
			p.Quality = &qualityJSON{Up: q.Up.String(), Down: q.Down.String(),
				RTTMs:     float64(q.RTT.Microseconds()) / 1000,
				LossUpPct: q.LossUp, LossDownPct: q.LossDown}
		}
		for _, t := range m.Tracks {
			p.Tracks = append(p.Tracks, trackJSON{ID: t.ID, Kind: t.Kind, Source: t.Source, Muted: t.Muted})
		}
		ps = append(ps, p)
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": a.roomOf(info), "participants": ps})
}

func (a *API) closeRoom(w http.ResponseWriter, r *http.Request) {
	if !a.rooms.CloseRoom(r.PathValue("room"), ByeRoomClosed) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no room "+r.PathValue("room"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) removeParticipant(w http.ResponseWriter, r *http.Request) {
	if !a.rooms.Remove(r.PathValue("room"), r.PathValue("id"), ByeRemoved) {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no participant %s in room %s", r.PathValue("id"), r.PathValue("room")))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) muteTrack(w http.ResponseWriter, r *http.Request) {
	muted := strings.HasSuffix(r.URL.Path, "/mute")
	if err := a.rooms.MuteTrack(r.PathValue("room"), r.PathValue("id"), r.PathValue("track"), muted); err != nil {
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// patchParticipant changes a participant's grants; the ones the body
// leaves out stay as they are.
func (a *API) patchParticipant(w http.ResponseWriter, r *http.Request) {
	var req patchRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Grants == nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, `want {"grants": {"publish"?, "subscribe"?, "publishData"?}}`)
		return
	}
	_, members, ok := a.rooms.Room(r.PathValue("room"))
	i := slices.IndexFunc(members, func(m room.MemberInfo) bool { return m.ID == r.PathValue("id") })
	if !ok || i < 0 {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no participant %s in room %s", r.PathValue("id"), r.PathValue("room")))
		return
	}
	perm := members[i].Perm
	for _, f := range []struct {
		v   *bool
		dst *bool
	}{{req.Grants.Publish, &perm.Publish}, {req.Grants.Subscribe, &perm.Subscribe}, {req.Grants.PublishData, &perm.PublishData}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if err := a.rooms.SetGrants(r.PathValue("room"), r.PathValue("id"), perm); err != nil {
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]grantsJSON{"grants": {Publish: perm.Publish, Subscribe: perm.Subscribe, PublishData: perm.PublishData}})
}

// readJSON decodes a request body of at most maxBody bytes into v, or
// answers the error and reports false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "read body: "+err.Error())
		return false
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

// maxBody bounds a request body: a data message of the largest size, in
// base64, and its JSON.
const maxBody = sfu.MaxDataMessage*4/3 + 1024

func (a *API) sendData(w http.ResponseWriter, r *http.Request) {
	var req dataRequest
	if !readJSON(w, r, &req) {
		return
	}
	if (req.Text == nil) == (req.Binary == nil) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, `want {"text": "…"} or {"binary": "<base64>"}`)
		return
	}
	msg := sfu.DataMessage{IsString: req.Text != nil}
	var err error
	if req.Text != nil {
		msg.Data = []byte(*req.Text)
	} else if msg.Data, err = base64.StdEncoding.DecodeString(*req.Binary); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "binary: "+err.Error())
		return
	}
	// The sender prefix ("server:") travels in the same message.
	if limit := a.cfg.MaxData - len(room.ServerSender) - 1; len(msg.Data) > limit {
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("message of %d bytes, over %d", len(msg.Data), limit))
		return
	}
	n, ok := a.rooms.SendData(r.PathValue("room"), msg)
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, "no room "+r.PathValue("room"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"recipients": n})
}

// startRecording starts recording a room: 201 {"recording": {"dir"}}.
func (a *API) startRecording(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Record == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "this server does not record")
		return
	}
	rec, err := a.rooms.StartRecording(r.PathValue("room"), a.cfg.Record)
	switch {
	case errors.Is(err, room.ErrNoRoom):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, room.ErrRecording):
		writeError(w, http.StatusConflict, CodeConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusCreated, map[string]any{"recording": recordingOf(rec)})
	}
}

// stopRecording stops a room's recording once its files are complete:
// 200 {"recording": {"dir"}}.
func (a *API) stopRecording(w http.ResponseWriter, r *http.Request) {
	rec, err := a.rooms.StopRecording(r.PathValue("room"))
	if err != nil {
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recording": recordingOf(rec)})
}

// recordingOf describes a recording: its directory, when it has one.
func recordingOf(rec room.Recorder) map[string]string {
	out := map[string]string{}
	if d, ok := rec.(interface{ Dir() string }); ok {
		out["dir"] = d.Dir()
	}
	return out
}

func (a *API) roomOf(r room.RoomInfo) roomJSON {
	rj := roomJSON{Name: r.Name, Participants: r.Participants, Tracks: r.Tracks, Created: r.Created.UTC(), Recording: r.Recording}
	if a.cfg.Node != "" {
		rj.Nodes = []string{a.cfg.Node}
	}
	return rj
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
