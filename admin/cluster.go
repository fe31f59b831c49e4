package admin

// The admin API of a cluster (docs/cluster.md): any node answers for the
// whole cluster. A request from an operator is answered here and, through
// each other live node's own admin API (Config.Peers, their -node-url), by
// the others, with the same bearer token and LocalHeader set so that each
// answers for itself alone; the answers are merged. Reads go to every
// node; an action on a participant or a recording goes to the nodes in
// turn until one has it; closing a room and sending it data go to every
// node. Each forward is bounded by peerTimeout; a node that does not
// answer is left out (and logged).

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// LocalHeader marks a request one node forwards to another: answer for
// this node alone. It grants nothing: the request is authorized as any.
const LocalHeader = "X-Roundtable-Local"

// Peer is another live node of the cluster.
type Peer struct {
	ID  string
	URL string // its base URL, http(s)://host:port/
}

// peerTimeout bounds one forwarded request.
const peerTimeout = 3 * time.Second

// answer is one node's response.
type answer struct {
	node   string
	status int
	body   []byte
}

// recorder is a ResponseWriter that keeps the response.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (w *recorder) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(b)
}
func (w *recorder) WriteHeader(s int) { w.status = s }

// clustered answers an authorized request for the whole cluster.
func (a *API) clustered(rt route, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "read body: "+err.Error())
		return
	}
	local := func() answer {
		rec := &recorder{}
		lr := r.Clone(r.Context())
		lr.Body = io.NopCloser(bytes.NewReader(body))
		rt.handle(a, rec, lr)
		return answer{node: a.cfg.Node, status: rec.status, body: rec.buf.Bytes()}
	}
	peers := a.cfg.Peers()
	switch rt.path {
	case "/api/v1/rooms", "/api/v1/rooms/{room}", "/api/v1/rooms/{room}/data":
		if rt.method == http.MethodGet || rt.path == "/api/v1/rooms/{room}/data" {
			a.mergeAll(w, rt, append([]answer{local()}, a.forwardAll(r, body, peers)...))
			return
		}
		if rt.method == http.MethodDelete { // close the room everywhere
			a.firstOK(w, append([]answer{local()}, a.forwardAll(r, body, peers)...))
			return
		}
	}
	// One node has the participant or the recording: the first that
	// answers other than 404.
	ans := local()
	for _, p := range peers {
		if ans.status != http.StatusNotFound {
			break
		}
		if pa, ok := a.forward(r, body, p); ok {
			ans = pa
		}
	}
	writeRaw(w, ans)
}

// forwardAll sends the request to every peer at once.
func (a *API) forwardAll(r *http.Request, body []byte, peers []Peer) []answer {
	out := make([]answer, len(peers))
	ok := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], ok[i] = a.forward(r, body, p)
		}()
	}
	wg.Wait()
	var got []answer
	for i := range out {
		if ok[i] {
			got = append(got, out[i])
		}
	}
	return got
}

// forward sends the request to one peer, to answer for itself.
func (a *API) forward(r *http.Request, body []byte, p Peer) (answer, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), peerTimeout)
	defer cancel()
	url := strings.TrimSuffix(p.URL, "/") + r.URL.RequestURI()
	req, err := http.NewRequestWithContext(ctx, r.Method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, false
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(LocalHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.log.Warn("admin: node did not answer", "node", p.ID, "url", p.URL, "err", err)
		return answer{}, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return answer{}, false
	}
	return answer{node: p.ID, status: resp.StatusCode, body: b}, true
}

// firstOK writes the first 2xx answer, else the first one.
func (a *API) firstOK(w http.ResponseWriter, all []answer) {
	for _, an := range all {
		if an.status/100 == 2 {
			writeRaw(w, an)
			return
		}
	}
	writeRaw(w, all[0])
}

// mergeAll merges every node's answer to a read (or a data message):
// rooms listed once with their counts summed, a room's participants
// together, recipients summed. 404 only if every node said so.
func (a *API) mergeAll(w http.ResponseWriter, rt route, all []answer) {
	var oks []answer
	for _, an := range all {
		if an.status/100 == 2 {
			oks = append(oks, an)
		}
	}
	if len(oks) == 0 {
		writeRaw(w, all[0])
		return
	}
	switch {
	case rt.path == "/api/v1/rooms":
		var rooms []roomJSON
		index := map[string]int{}
		for _, an := range oks {
			var v struct {
				Rooms []roomJSON `json:"rooms"`
			}
			if json.Unmarshal(an.body, &v) != nil {
				continue
			}
			for _, rj := range v.Rooms {
				if i, ok := index[rj.Name]; ok {
					rooms[i] = mergeRoom(rooms[i], rj)
					continue
				}
				index[rj.Name] = len(rooms)
				rooms = append(rooms, rj)
			}
		}
		if rooms == nil {
			rooms = []roomJSON{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
	case rt.path == "/api/v1/rooms/{room}":
		var room *roomJSON
		ps := []participantJSON{}
		for _, an := range oks {
			var v struct {
				Room         roomJSON          `json:"room"`
				Participants []participantJSON `json:"participants"`
			}
			if json.Unmarshal(an.body, &v) != nil {
				continue
			}
			if room == nil {
				room = &v.Room
			} else {
				*room = mergeRoom(*room, v.Room)
			}
			ps = append(ps, v.Participants...)
		}
		writeJSON(w, http.StatusOK, map[string]any{"room": room, "participants": ps})
	default: // data
		n := 0
		for _, an := range oks {
			var v struct {
				Recipients int `json:"recipients"`
			}
			if json.Unmarshal(an.body, &v) == nil {
				n += v.Recipients
			}
		}
		writeJSON(w, http.StatusOK, map[string]int{"recipients": n})
	}
}

// mergeRoom adds another node's view of a room to one's.
func mergeRoom(a, b roomJSON) roomJSON {
	a.Participants += b.Participants
	a.Tracks += b.Tracks
	a.Recording = a.Recording || b.Recording
	if b.Created.Before(a.Created) {
		a.Created = b.Created
	}
	a.Nodes = append(a.Nodes, b.Nodes...)
	return a
}

// writeRaw writes a node's answer as it came.
func writeRaw(w http.ResponseWriter, an answer) {
	if len(an.body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(an.status)
	_, _ = w.Write(an.body)
}
