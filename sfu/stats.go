package sfu

import (
	"sync/atomic"

	"github.com/pion/webrtc/v3"
)

// Kind indexes per-kind counters.
type Kind int

// Media kinds, used as array indexes in Stats.
const (
	KindAudio Kind = iota
	KindVideo
	numKinds
)

// String returns the Prometheus label value of k.
func (k Kind) String() string {
	if k == KindVideo {
		return "video"
	}
	return "audio"
}

func kindOf(k webrtc.RTPCodecType) Kind {
	if k == webrtc.RTPCodecTypeVideo {
		return KindVideo
	}
	return KindAudio
}

// DropReason indexes the dropped-packet counters.
type DropReason int

// Why a packet or message was not delivered.
const (
	// DropQueueFull: a subscriber's queue was full (slow subscriber).
	DropQueueFull DropReason = iota
	// DropFrameSkip: the rest of a video frame whose start was dropped.
	DropFrameSkip
	// DropCacheMiss: the packet was overwritten in the cache before the
	// subscriber's writer got to it.
	DropCacheMiss
	// DropWriteError: writing to the subscriber failed.
	DropWriteError
	// DropDataTooLarge: a data-channel message over the size limit.
	DropDataTooLarge
	// DropDataRate: a data-channel message over the sender's rate limit.
	DropDataRate
	// DropDataBackpressure: a subscriber's data channel buffer was full.
	DropDataBackpressure
	// DropDataNotAllowed: a data-channel message from a participant
	// without the data permission.
	DropDataNotAllowed
	// DropTrackRefused: a packet of a track the room refused (no publish
	// grant, or over the track limit).
	DropTrackRefused
	// DropServerMuted: a packet of a track the server stopped forwarding
	// (UpTrack.SetMuted: an operator muted it, or its publisher lost the
	// publish grant).
	DropServerMuted
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"queue_full", "frame_skip", "cache_miss", "write_error",
	"data_too_large", "data_rate", "data_backpressure", "data_not_allowed",
	"track_refused", "server_muted",
}

// String returns the Prometheus label value of r.
func (r DropReason) String() string { return dropReasonNames[r] }

// DropReasons lists every DropReason, for exporters.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

// Stats are the media plane's counters. Every field is an atomic written on
// the packet path and read by the metrics exporter at scrape time.
type Stats struct {
	PacketsIn, BytesIn   [numKinds]atomic.Uint64
	PacketsOut, BytesOut [numKinds]atomic.Uint64
	Dropped              [numDropReasons]atomic.Uint64

	NACKsReceived  atomic.Uint64 // NACK packets from subscribers
	NACKsSent      atomic.Uint64 // NACK packets to publishers (upstream loss)
	Retransmits    atomic.Uint64 // packets resent in answer to a NACK
	PLIsReceived   atomic.Uint64 // PLIs from subscribers
	FIRsReceived   atomic.Uint64 // FIRs from subscribers
	KeyframesSent  atomic.Uint64 // PLIs sent to publishers (after throttling)
	LayerSwitches  atomic.Uint64 // simulcast layer changes of subscribers
	ICERestarts    atomic.Uint64 // remote offers that restarted ICE (answered)
	RTCPReadErrors atomic.Uint64

	DataIn, DataInBytes   atomic.Uint64 // data-channel messages received
	DataOut, DataOutBytes atomic.Uint64 // data-channel messages forwarded

	// RelayPacketsIn and RelayPacketsOut are the RTP packets of relays
	// between nodes (PeerConfig.Relay), received and sent; they count in
	// PacketsIn and PacketsOut too.
	RelayPacketsIn, RelayPacketsOut atomic.Uint64

	Peers         atomic.Int64
	UpTracks      [numKinds]atomic.Int64
	Subscriptions atomic.Int64
	// PausedSubscriptions are video subscriptions paused for hidden tiles
	// (a relay's: simulcast layers above the one the other node's largest
	// tile needs).
	PausedSubscriptions atomic.Int64
}

// Drop counts one dropped packet or message.
func (s *Stats) Drop(r DropReason) { s.Dropped[r].Add(1) }
