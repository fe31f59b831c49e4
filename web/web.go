// Package web is the browser client, embedded into the binary with go:embed:
// plain ES modules and CSS, no build step. It owns only static files and the
// routes that serve them ("/", "/r/{room}" and "/doctor", the connection
// check); it knows nothing of the
// server's internals beyond the public signaling protocol.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// Handler serves the client: "/" and "/r/{room}" get the single page,
// "/doctor" the connection check, the rest are their assets.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/r/") {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		if r.URL.Path == "/doctor" {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, sub, "doctor.html")
			return
		}
		assets.ServeHTTP(w, r)
	})
}
