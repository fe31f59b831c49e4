package room

// SpeakerDetector decides who is the active speaker from periodic audio
// level samples. It is pure (no clock, no goroutine): the caller feeds it
// one sample per participant per tick. Owned by the Manager's speaker
// goroutine.
type SpeakerDetector struct {
	// Smoothing is the weight of a new sample in the moving average.
	Smoothing float64
	// Threshold is the smoothed loudness (0-127) below which a participant
	// counts as silent.
	Threshold float64
	// Margin is how much louder than the current speaker a participant must
	// be to take over.
	Margin float64

	levels  map[string]float64
	current string
}

// NewSpeakerDetector returns a detector with defaults that react within
// three ticks to a clearly louder speaker.
func NewSpeakerDetector() *SpeakerDetector {
	return &SpeakerDetector{Smoothing: 0.4, Threshold: 30, Margin: 5, levels: map[string]float64{}}
}

// Update takes this tick's mean loudness per participant (a participant
// missing from samples is silent, and forgotten) and returns the active
// speaker and whether it changed. When everybody is silent the last
// speaker stays.
func (d *SpeakerDetector) Update(samples map[string]float64) (speaker string, changed bool) {
	for id := range d.levels {
		if _, ok := samples[id]; !ok {
			delete(d.levels, id)
		}
	}
	best, bestLevel := "", 0.0
	for id, v := range samples {
		l := d.levels[id]*(1-d.Smoothing) + v*d.Smoothing
		d.levels[id] = l
		if l > bestLevel || (l == bestLevel && id < best) {
			best, bestLevel = id, l
		}
	}
	if bestLevel < d.Threshold || best == d.current {
		if _, present := samples[d.current]; !present && d.current != "" {
			d.current = ""
			return "", true
		}
		return d.current, false
	}
	cur, ok := d.levels[d.current]
	if ok && cur >= d.Threshold && bestLevel < cur+d.Margin {
		return d.current, false
	}
	d.current = best
	return best, true
}
