package room

import "testing"

func TestSpeakerDetector(t *testing.T) {
	type tick struct {
		samples map[string]float64
		want    string
		changed bool
	}
	tests := []struct {
		name  string
		ticks []tick
	}{
		{"silence elects nobody", []tick{
			{map[string]float64{"a": 0, "b": 5}, "", false},
			{map[string]float64{"a": 0, "b": 5}, "", false},
		}},
		{"the loudest wins within three ticks", []tick{
			{map[string]float64{"a": 100, "b": 60, "c": 0}, "a", true}, // 40 vs 24
			{map[string]float64{"a": 100, "b": 60, "c": 0}, "a", false},
		}},
		{"hysteresis: a slightly louder voice does not take over", []tick{
			{map[string]float64{"a": 90, "b": 0}, "a", true},
			{map[string]float64{"a": 90, "b": 0}, "a", false},
			{map[string]float64{"a": 90, "b": 0}, "a", false},
			{map[string]float64{"a": 90, "b": 92}, "a", false},
			{map[string]float64{"a": 90, "b": 92}, "a", false},
		}},
		{"a clearly louder speaker takes over", []tick{
			{map[string]float64{"a": 60, "b": 0}, "", false},   // 24: below the threshold
			{map[string]float64{"a": 60, "b": 0}, "a", true},   // 38.4
			{map[string]float64{"a": 60, "b": 0}, "a", false},  // 47
			{map[string]float64{"a": 10, "b": 110}, "b", true}, // a 32, b 44
		}},
		{"the speaker stays through a pause", []tick{
			{map[string]float64{"a": 100}, "a", true},
			{map[string]float64{"a": 0}, "a", false},
			{map[string]float64{"a": 0}, "a", false},
		}},
		{"a speaker who leaves is cleared", []tick{
			{map[string]float64{"a": 100, "b": 0}, "a", true},
			{map[string]float64{"b": 0}, "", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewSpeakerDetector()
			for i, tk := range tt.ticks {
				got, changed := d.Update(tk.samples)
				if got != tk.want || changed != tk.changed {
					t.Errorf("tick %d: %q changed=%v, want %q changed=%v", i, got, changed, tk.want, tk.changed)
				}
			}
		})
	}
}
