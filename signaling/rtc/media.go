package rtc

import (
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/parleyhq/parley/media"
)

// Speaker is the bot's Opus track on a peer connection.
type Speaker struct {
	track *webrtc.TrackLocalStaticSample
}

// AddSpeaker adds the bot's Opus track to pc, and drains the RTCP its
// sender gets (on a goroutine that ends when the sender closes, with the
// peer connection).
func AddSpeaker(pc *webrtc.PeerConnection) (*Speaker, error) {
	track, err := webrtc.NewTrackLocalStaticSample(OpusCapability, "audio", "parley")
	if err != nil {
		return nil, err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		return nil, err
	}
	go func() { // drains RTCP; ends when the sender closes
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	return &Speaker{track: track}, nil
}

// Send writes one Opus packet of media.FrameDuration. A failed write (the
// connection is not up, or has just closed) loses that packet only.
func (s *Speaker) Send(pkt []byte) {
	_ = s.track.WriteSample(pionmedia.Sample{Data: pkt, Duration: media.FrameDuration})
}

// ReadOpus hands each Opus packet of the caller's track to packet, until
// the track ends (with the peer connection). Chrome sends empty padding
// packets; they are skipped.
func ReadOpus(remote *webrtc.TrackRemote, packet func(payload []byte)) {
	for {
		pkt, _, err := remote.ReadRTP()
		if err != nil {
			return
		}
		if len(pkt.Payload) == 0 {
			continue
		}
		packet(pkt.Payload)
	}
}
