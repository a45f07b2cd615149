package media

import "errors"

// ErrPacket wraps every decoding failure, whatever the codec: the packet
// is dropped and counted, the call goes on.
var ErrPacket = errors.New("bad audio packet")
