package browser

// A small WebDriver BiDi driver for Debian's Firefox ESR: JSON commands
// and events over one WebSocket (https://w3c.github.io/webdriver-bidi/),
// enough to open tabs, evaluate scripts, collect the console and take
// screenshots. Its tabs are contexts, like chromedp's, so eval and waitJS
// serve both browsers.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func firefoxPath(t *testing.T) string {
	if p, err := exec.LookPath("firefox-esr"); err == nil {
		return p
	}
	if os.Getenv("RT_REQUIRE_TOOLS") != "" {
		t.Fatal("firefox-esr not installed (scripts/test.sh installs it)")
	}
	t.Skip("firefox-esr not installed; run scripts/test.sh")
	return ""
}

// firefoxPrefs go into the profile's user.js: fake devices and WebRTC on
// loopback, and nothing that reaches the network by itself (the tests may
// only talk to 127.0.0.1, and CI has no internet). Every name was checked
// against Firefox ESR 153 (omni.ja and libxul); an unknown name is
// silently ignored.
var firefoxPrefs = map[string]any{
	// A fake camera (a coloured frame) and microphone (a tone), no prompt.
	"media.navigator.streams.fake":        true,
	"media.navigator.permission.disabled": true,
	// The server's 127.0.0.1 candidate is accepted, and host candidates
	// are addresses rather than mDNS names. (Firefox gathers no loopback
	// candidate of its own, whatever the prefs: its host candidate is the
	// machine's own address, paired with 127.0.0.1; nothing leaves the
	// machine.)
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	// Remote media plays without a click.
	"media.autoplay.default":         0,
	"media.autoplay.blocking_policy": 0,
	// No proxy from the environment between Firefox and 127.0.0.1.
	"network.proxy.type": 0,

	// Updates, of Firefox, add-ons, search engines, codecs (OpenH264).
	"app.update.disabledForTesting":         true,
	"app.update.auto":                       false,
	"app.update.checkInstallTime":           false,
	"extensions.update.enabled":             false,
	"extensions.systemAddon.update.enabled": false,
	"extensions.getAddons.cache.enabled":    false,
	"extensions.blocklist.enabled":          false,
	"browser.search.update":                 false,
	"media.gmp-manager.updateEnabled":       false,
	// Telemetry and data reporting.
	"toolkit.telemetry.enabled":                    false,
	"toolkit.telemetry.unified":                    false,
	"toolkit.telemetry.archive.enabled":            false,
	"toolkit.telemetry.server":                     "data:,",
	"toolkit.telemetry.reportingpolicy.firstRun":   false,
	"datareporting.policy.dataSubmissionEnabled":   false,
	"datareporting.healthreport.uploadEnabled":     false,
	"datareporting.usage.uploadEnabled":            false,
	"browser.newtabpage.activity-stream.telemetry": false,
	// Studies and experiments (Normandy, Nimbus) and Remote Settings.
	"app.normandy.enabled":             false,
	"app.normandy.api_url":             "",
	"app.shield.optoutstudies.enabled": false,
	"nimbus.rollouts.enabled":          false,
	"services.settings.server":         "data:,#remote-settings-dummy/v1",
	// Captive portal and connectivity checks, push, region and geolocation.
	"network.captive-portal-service.enabled": false,
	"network.connectivity-service.enabled":   false,
	"dom.push.connection.enabled":            false,
	"browser.region.network.url":             "",
	"browser.region.update.enabled":          false,
	"geo.provider.network.url":               "",
	// Safe browsing and tracking-protection lists.
	"browser.safebrowsing.malware.enabled":            false,
	"browser.safebrowsing.phishing.enabled":           false,
	"browser.safebrowsing.downloads.enabled":          false,
	"browser.safebrowsing.blockedURIs.enabled":        false,
	"browser.safebrowsing.provider.mozilla.updateURL": "",
	"browser.safebrowsing.provider.google4.updateURL": "",
	"privacy.trackingprotection.enabled":              false,
	// Certificate checks that download (OCSP, CRLite, intermediates).
	"security.OCSP.enabled":                           0,
	"security.remote_settings.crlite_filters.enabled": false,
	"security.remote_settings.intermediates.enabled":  false,
	"security.certerrors.mitm.priming.enabled":        false,
	// Speculative connections, prefetching, DNS over HTTPS.
	"network.dns.disablePrefetch":             true,
	"network.prefetch-next":                   false,
	"network.http.speculative-parallel-limit": 0,
	"network.trr.mode":                        5,
	// Start pages, the new-tab page and its feeds, first-run screens.
	"browser.startup.page":                                       0,
	"browser.startup.homepage":                                   "about:blank",
	"browser.startup.homepage_override.mstone":                   "ignore",
	"startup.homepage_welcome_url":                               "about:blank",
	"browser.newtabpage.enabled":                                 false,
	"browser.newtabpage.activity-stream.feeds.system.topstories": false,
	"browser.newtabpage.activity-stream.showSponsoredTopSites":   false,
	"browser.topsites.contile.enabled":                           false,
	"browser.aboutwelcome.enabled":                               false,
	"browser.shell.checkDefaultBrowser":                          false,
	"browser.urlbar.suggest.searches":                            false,
	"browser.ml.enable":                                          false,
	"browser.translations.enable":                                false,
	"identity.fxaccounts.enabled":                                false,
	// Automation: no crash recovery or slow-script dialogs, tabs act focused.
	"browser.sessionstore.resume_from_crash": false,
	"toolkit.startup.max_resumed_crashes":    -1,
	"dom.max_script_run_time":                0,
	"focusmanager.testmode":                  true,
}

// firefox is one headless Firefox ESR driven over WebDriver BiDi. Its tabs
// are top-level browsing contexts, each in its own window so that none is
// a hidden background tab (whose video the client would pause).
type firefox struct {
	tabSet
	ctx  context.Context // cancelled at cleanup
	conn *websocket.Conn

	wmu     sync.Mutex // one writer on conn
	pmu     sync.Mutex
	nextID  int
	pending map[int]chan bidiMessage
	numbers map[string]int // browsing context id -> tab number
	gone    chan struct{}  // the reader has stopped
	first   string         // the window Firefox starts with, tab 1
}

// firefoxTab is one tab: a top-level browsing context.
type firefoxTab struct {
	f  *firefox
	id string
}

type firefoxTabKey struct{}

// firefoxTabOf returns the Firefox tab ctx stands for, nil for Chromium's.
func firefoxTabOf(ctx context.Context) *firefoxTab {
	ft, _ := ctx.Value(firefoxTabKey{}).(*firefoxTab)
	return ft
}

// bidiMessage is a command, a response to one, or an event.
type bidiMessage struct {
	ID      *int            `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  any             `json:"params,omitempty"`
	Type    string          `json:"type,omitempty"` // success, error, event
	Result  json.RawMessage `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
	Message string          `json:"message,omitempty"`
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// newFirefox starts Firefox ESR with a fake camera and microphone and
// opens a WebDriver BiDi session, or skips the test when it is not
// installed.
func newFirefox(t *testing.T) *firefox {
	url := startFirefox(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := &firefox{tabSet: tabSet{t: t, name: "firefox"}, ctx: ctx,
		pending: map[int]chan bidiMessage{}, numbers: map[string]int{}, gone: make(chan struct{})}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(url+"/session", nil)
	if err != nil {
		cancel()
		t.Fatalf("connect to firefox at %s: %v", url, err)
	}
	f.conn = conn
	go f.read()
	// Runs before startFirefox's cleanup: quit, then close the socket.
	t.Cleanup(func() {
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		_ = f.call(qctx, "browser.close", struct{}{}, nil)
		qcancel()
		_ = conn.Close()
		<-f.gone
		cancel()
	})

	if err := f.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		t.Fatalf("firefox session.new: %v", err)
	}
	if err := f.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		t.Fatalf("firefox session.subscribe: %v", err)
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := f.call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0}, &tree); err != nil || len(tree.Contexts) == 0 {
		t.Fatalf("firefox browsingContext.getTree: %v (%d contexts)", err, len(tree.Contexts))
	}
	f.first = tree.Contexts[0].Context
	return f
}

// startFirefox runs headless Firefox on a new profile and returns the
// WebDriver BiDi address it prints. At cleanup it waits for Firefox to
// quit (every process holding its stderr, content processes too) and
// kills its process group if that takes more than 10 s.
func startFirefox(t *testing.T) string {
	path := firefoxPath(t)
	profile, home := t.TempDir(), t.TempDir()
	writeUserJS(t, profile)
	cmd := exec.Command(path, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port=0")
	// MOZ_DISABLE_NONLOCAL_CONNECTIONS, as in Mozilla's own test runs:
	// Firefox refuses connections beyond loopback, and Remote Settings
	// honour services.settings.server (release builds ignore it otherwise).
	// A home of its own keeps what Firefox writes outside the profile
	// (~/Downloads, ~/.cache/mozilla, ~/.config/mozilla) in a temporary
	// directory.
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_NONLOCAL_CONNECTIONS=1", "HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"))
	// Its own process group, so that a kill ends the content processes
	// too; and it dies with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	urls := make(chan string, 1)
	exited := make(chan struct{})
	var early strings.Builder // stderr before the address, for a failed start
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for found := false; sc.Scan(); {
			if os.Getenv("RT_LOG") != "" {
				fmt.Fprintln(os.Stderr, "firefox:", sc.Text())
			}
			if m := bidiListening.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				urls <- m[1]
			} else if !found && early.Len() < 8<<10 {
				early.WriteString(sc.Text() + "\n")
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	killGroup := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t.Cleanup(func() {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			killGroup()
			<-exited
		}
	})
	select {
	case url := <-urls:
		return url
	case <-exited:
		t.Fatalf("firefox exited before listening:\n%s", early.String())
	case <-time.After(30 * time.Second):
		killGroup()
		<-exited
		t.Fatalf("firefox did not print its WebDriver BiDi address in 30 s:\n%s", early.String())
	}
	return ""
}

// writeUserJS writes firefoxPrefs into the profile's user.js.
func writeUserJS(t *testing.T, profile string) {
	names := make([]string, 0, len(firefoxPrefs))
	for k := range firefoxPrefs {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		name, _ := json.Marshal(k)
		v, _ := json.Marshal(firefoxPrefs[k])
		fmt.Fprintf(&b, "user_pref(%s, %s);\n", name, v)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// read dispatches responses to their callers and records log entries,
// until the connection closes.
func (f *firefox) read() {
	defer close(f.gone)
	for {
		_, data, err := f.conn.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			bidiMessage
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch {
		case m.Type == "event" && m.Method == "log.entryAdded":
			f.logEntry(m.Params)
		case m.ID != nil:
			f.pmu.Lock()
			ch := f.pending[*m.ID]
			delete(f.pending, *m.ID)
			f.pmu.Unlock()
			if ch != nil {
				ch <- m.bidiMessage
			}
		}
	}
}

// call sends one command and decodes its result into result (if not nil).
func (f *firefox) call(ctx context.Context, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ch := make(chan bidiMessage, 1)
	f.pmu.Lock()
	f.nextID++
	id := f.nextID
	f.pending[id] = ch
	f.pmu.Unlock()
	defer func() {
		f.pmu.Lock()
		delete(f.pending, id)
		f.pmu.Unlock()
	}()
	f.wmu.Lock()
	_ = f.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := f.conn.WriteJSON(bidiMessage{ID: &id, Method: method, Params: params})
	f.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Type == "error" {
			return fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(m.Result, result)
	case <-f.gone:
		return fmt.Errorf("%s: connection to firefox closed", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// logEntry records a console message or an uncaught error of a tab.
func (f *firefox) logEntry(raw json.RawMessage) {
	var e struct {
		Type   string `json:"type"` // console, javascript
		Method string `json:"method"`
		Level  string `json:"level"`
		Text   string `json:"text"`
		Source struct {
			Context string `json:"context"`
		} `json:"source"`
		StackTrace struct {
			CallFrames []struct {
				URL        string `json:"url"`
				LineNumber int    `json:"lineNumber"`
			} `json:"callFrames"`
		} `json:"stackTrace"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return
	}
	f.pmu.Lock()
	n := f.numbers[e.Source.Context]
	f.pmu.Unlock()
	if e.Type == "console" {
		f.logf(n, "console.%s: %s", e.Method, e.Text)
		return
	}
	where := ""
	if fr := e.StackTrace.CallFrames; len(fr) > 0 {
		where = fmt.Sprintf(" (%s line %d)", fr[0].URL, fr[0].LineNumber+1)
	}
	f.logf(n, "exception: %s%s", e.Text, where)
}

// open navigates a new tab to url and waits for the page to load; the first
// tab is the window Firefox started with.
func (f *firefox) open(url string) context.Context {
	f.t.Helper()
	id := f.first
	if len(f.tabs) > 0 {
		var created struct {
			Context string `json:"context"`
		}
		if err := f.call(f.ctx, "browsingContext.create", map[string]any{"type": "window"}, &created); err != nil {
			f.t.Fatalf("firefox new window: %v", err)
		}
		id = created.Context
	}
	f.pmu.Lock()
	f.numbers[id] = len(f.tabs) + 1
	f.pmu.Unlock()
	err := f.call(f.ctx, "browsingContext.navigate", map[string]any{"context": id, "url": url, "wait": "complete"}, nil)
	if err != nil {
		f.t.Fatalf("open %s: %v", url, err)
	}
	ctx := context.WithValue(f.ctx, firefoxTabKey{}, &firefoxTab{f: f, id: id})
	f.tabs = append(f.tabs, ctx)
	return ctx
}

// evaluate runs js in the tab, awaits a promise, and returns the result as
// JSON; only primitive results (string, number, boolean, null) are passed.
func (ft *firefoxTab) evaluate(js string) (json.RawMessage, error) {
	var r struct {
		Type   string `json:"type"` // success, exception
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	err := ft.f.call(ft.f.ctx, "script.evaluate", map[string]any{
		"expression": js, "target": map[string]any{"context": ft.id}, "awaitPromise": true, "resultOwnership": "none",
	}, &r)
	switch {
	case err != nil:
		return nil, err
	case r.Type == "exception":
		return nil, errors.New(r.ExceptionDetails.Text)
	}
	switch r.Result.Type {
	case "string", "boolean", "number":
		return r.Result.Value, nil
	case "undefined", "null":
		return json.RawMessage("null"), nil
	}
	return nil, fmt.Errorf("result of type %s: return a primitive or JSON.stringify it", r.Result.Type)
}

// screenshot is a PNG of the tab's whole page.
func (ft *firefoxTab) screenshot() ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := ft.f.call(ft.f.ctx, "browsingContext.captureScreenshot", map[string]any{"context": ft.id, "origin": "document"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}
