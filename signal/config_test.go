package signal

import (
	"strings"
	"testing"
	"time"
)

// Config has no defaults of their own: a zero limit or timeout is an error
// naming it, and NewServer refuses to start with one.
func TestConfigValidate(t *testing.T) {
	full := Config{MaxMessage: 1, JoinTimeout: time.Second, PingInterval: time.Second, WriteTimeout: time.Second,
		MessageRate: 0.5, MessageBurst: 1, ResumeWindow: time.Second}
	if err := full.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	err := Config{}.Validate()
	for _, want := range []string{"max message", "join timeout", "ping interval", "write timeout", "message rate", "message burst", "resume window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zero config: %v, want it to name %q", err, want)
		}
	}
	if s, err := NewServer(nil, Config{}, nil); s != nil || err == nil {
		t.Errorf("NewServer with a zero config: %v, %v; want an error", s, err)
	}
}
