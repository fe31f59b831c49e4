package whip

import (
	"strings"
	"testing"
)

// RFC 8840 fragments: credentials and candidates by media section.
func TestParseFrag(t *testing.T) {
	f := parseFrag("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
		"a=candidate:2 1 udp 2122260223 192.0.2.1 61765 typ host\r\n")
	if f.ufrag != "EsAw" || f.pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || len(f.candidates) != 2 {
		t.Fatalf("%+v", f)
	}
	if c := f.candidates[0]; !strings.HasPrefix(c.Candidate, "candidate:1387637174") || c.SDPMid == nil || *c.SDPMid != "0" {
		t.Errorf("first: %+v", c)
	}
	if c := f.candidates[1]; c.SDPMid != nil || c.SDPMLineIndex == nil || *c.SDPMLineIndex != 1 {
		t.Errorf("second, by index: %+v", c)
	}
}

// An ICE restart's offer is the session's with the new credentials and
// no old candidates; the answer goes back as a fragment.
func TestRestartOfferAndAnswerFrag(t *testing.T) {
	remote := "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n" +
		"a=ice-ufrag:old\r\na=ice-pwd:oldpwdoldpwdoldpwdoldpwd\r\na=mid:0\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n"
	offer := restartOffer(remote, frag{ufrag: "new", pwd: "newpwdnewpwdnewpwdnewpwd"})
	if !strings.Contains(offer, "a=ice-ufrag:new\r\n") || !strings.Contains(offer, "a=ice-pwd:newpwdnewpwdnewpwdnewpwd\r\n") ||
		strings.Contains(offer, "old") || strings.Contains(offer, "a=candidate") || !strings.Contains(offer, "c=IN IP4 0.0.0.0\r\n") {
		t.Errorf("offer:\n%s", offer)
	}
	answer := strings.ReplaceAll(remote, "old", "srv")
	got := answerFrag(answer)
	want := "a=ice-ufrag:srv\r\na=ice-pwd:srvpwdsrvpwdsrvpwdsrvpwd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n"
	if got != want {
		t.Errorf("answer fragment:\n%q\nwant\n%q", got, want)
	}
}
