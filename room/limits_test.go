package room

import (
	"strings"
	"testing"
	"time"
)

// Limits have no defaults of their own: a zero field is an error naming
// it, and NewManager refuses to start with one.
func TestLimitsValidate(t *testing.T) {
	full := Limits{MaxRooms: 1, MaxParticipants: 1, DataRate: 0.5, DataBurst: 1,
		MaxTracks: 1, ConnectTimeout: time.Second, MaxProbes: 1, ProbeTimeout: time.Second, MoveGrace: time.Second}
	if err := full.Validate(); err != nil {
		t.Errorf("valid limits refused: %v", err)
	}
	err := Limits{}.Validate()
	for _, want := range []string{"max rooms", "max participants", "data rate", "data burst", "max tracks", "connect timeout", "max probes", "probe timeout", "move grace"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zero limits: %v, want it to name %q", err, want)
		}
	}
	if m, err := NewManager(nil, Limits{}, nil); m != nil || err == nil {
		t.Errorf("NewManager with zero limits: %v, %v; want an error", m, err)
	}
}
