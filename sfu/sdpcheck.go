package sfu

// Checks on a remote description before pion sees it: bounded size, only
// media kinds and codecs this server forwards. pion would refuse much of
// this too, but later, deeper, and with errors a client cannot act on.

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// MaxMediaSections bounds the m-lines of one description: a member's own
// tracks plus one per track it receives (MaxParticipants × tracks) fit
// well below it.
const MaxMediaSections = 512

// MaxRelayMediaSections bounds the m-lines of a relay's description
// (PeerConfig.Relay), whose other end is another node: a relayed simulcast
// video takes an m-line per layer (relaylayers.go), so a room's relay
// holds up to about three times a member's.
const MaxRelayMediaSections = 4096

// forwarded lists the codec names (rtpmap encoding names) RegisterCodecs
// registers, by media kind.
var forwarded = map[string][]string{
	"audio": {"opus"},
	"video": {"VP8", "VP9", "H264"},
}

// CheckSDP parses a remote offer or answer and refuses, with ErrBadSDP,
// one that is not SDP (nor starts with v=0), has more than MaxMediaSections m-lines, has a media
// kind other than audio, video and the data channel's application, or has
// an active audio or video m-line offering none of the codecs this server
// forwards. It never panics, whatever the input.
func CheckSDP(s string) error { return checkSDP(s, MaxMediaSections) }

// checkSDP is CheckSDP with a bound of maxSections m-lines.
func checkSDP(s string, maxSections int) error {
	if !strings.HasPrefix(s, "v=0") {
		return fmt.Errorf("%w: a description starts with v=0 (RFC 8866 §5)", ErrBadSDP)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if n := len(d.MediaDescriptions); n > maxSections {
		return fmt.Errorf("%w: %d m-lines, at most %d", ErrBadSDP, n, maxSections)
	}
	for i, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		switch kind {
		case "application":
			continue
		case "audio", "video":
		default:
			return fmt.Errorf("%w: m-line %d is %q; only audio, video and the data channel", ErrBadSDP, i, kind)
		}
		if m.MediaName.Port.Value == 0 {
			continue // rejected or stopped: no codec needed
		}
		if !offersForwardedCodec(m, forwarded[kind]) {
			return fmt.Errorf("%w: %s m-line %d offers none of %s", ErrBadSDP, kind, i, strings.Join(forwarded[kind], ", "))
		}
	}
	return nil
}

func offersForwardedCodec(m *sdp.MediaDescription, names []string) bool {
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		// "<payload type> <encoding name>/<clock rate>[/<channels>]"
		_, rest, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		for _, n := range names {
			if strings.EqualFold(name, n) {
				return true
			}
		}
	}
	return false
}
