package rtc

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/parleyhq/parley/signaling"
)

const (
	// dataQueue bounds the client's messages read and not yet handled;
	// past it pion's reader waits (SCTP's flow control slows the client).
	dataQueue = 64
	// maxBuffered bounds what is sent on the channel and not yet taken by
	// the peer: past it the peer is too far behind, and a write fails (a
	// pion data channel's writes do not block; this is their deadline).
	maxBuffered = 1 << 20
)

// DataConn is a WebRTC data channel as a signaling.MessageConn, the
// transport of a Socket. It exists before its channel does (the client
// opens the channel once the answer is out): Bind gives it the channel.
type DataConn struct {
	remote net.Addr
	msgs   chan signaling.Message
	done   chan struct{}
	opened chan struct{}
	once   sync.Once // closes done
	open   sync.Once // closes opened

	mu sync.Mutex
	dc *webrtc.DataChannel // nil until Bind
}

// NewDataConn is the connection of a client at remote, its channel to
// come.
func NewDataConn(remote net.Addr) *DataConn {
	return &DataConn{remote: remote, msgs: make(chan signaling.Message, dataQueue),
		done: make(chan struct{}), opened: make(chan struct{})}
}

// Bind gives d its channel. Its messages are queued from pion's reader of
// the channel (which waits while the queue is full, until the connection
// ends); d ends when the channel closes, or with Close. A second channel
// is closed.
func (d *DataConn) Bind(dc *webrtc.DataChannel) {
	d.mu.Lock()
	if d.dc != nil {
		d.mu.Unlock()
		_ = dc.Close()
		return
	}
	d.dc = dc
	d.mu.Unlock()
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		select {
		case d.msgs <- signaling.Message{Text: m.IsString, Data: m.Data}:
		case <-d.done:
		}
	})
	dc.OnClose(d.end)
	dc.OnError(func(error) { d.end() })
	opened := func() { d.open.Do(func() { close(d.opened) }) }
	dc.OnOpen(opened)
	if dc.ReadyState() == webrtc.DataChannelStateOpen {
		opened()
	}
}

// Opened is closed once the channel is open.
func (d *DataConn) Opened() <-chan struct{} { return d.opened }

func (d *DataConn) end() { d.once.Do(func() { close(d.done) }) }

func (d *DataConn) channel() *webrtc.DataChannel {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dc
}

// Messages implements signaling.MessageConn.
func (d *DataConn) Messages() <-chan signaling.Message { return d.msgs }

// Done implements signaling.MessageConn.
func (d *DataConn) Done() <-chan struct{} { return d.done }

// RemoteAddr implements signaling.MessageConn: the address of the
// client's HTTP request that negotiated the channel.
func (d *DataConn) RemoteAddr() net.Addr { return d.remote }

var errNotOpen = errors.New("rtc: the data channel is not open yet")

var errBehind = errors.New("rtc: the peer is too far behind on the data channel")

// WriteMessage implements signaling.MessageConn.
func (d *DataConn) WriteMessage(text bool, data []byte) error {
	select {
	case <-d.done:
		return net.ErrClosed
	default:
	}
	dc := d.channel()
	if dc == nil {
		return errNotOpen
	}
	if n := dc.BufferedAmount(); n > maxBuffered {
		return fmt.Errorf("%w (%d bytes buffered)", errBehind, n)
	}
	if text {
		return dc.SendText(string(data))
	}
	return dc.Send(data)
}

// Close implements signaling.MessageConn.
func (d *DataConn) Close() error {
	d.end()
	if dc := d.channel(); dc != nil {
		return dc.Close()
	}
	return nil
}
