package main

import (
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// With no settings at all, the phone endpoints are served: the webhook
// answers TwiML pointing at the stream on the request's host (wss), and
// a Media Stream opened there is answered, and closed normally at its
// stop. The defaults check no signature (and say so in the log).
func TestPhoneEndpointsServedByDefault(t *testing.T) {
	env := map[string]string{"PARLEY_ADDR": freeAddr(t), "PARLEY_DRAIN_TIMEOUT": "2s"} // a short drain for the test's end
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("run did not return")
		}
	})
	base := "http://" + cfg.Addr
	var resp *http.Response
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err = http.PostForm(base+"/twilio/voice", url.Values{"CallSid": {"CA1"}, "From": {"+15550100"}, "To": {"+15550199"}}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never came up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var doc struct {
		Stream struct {
			URL string `xml:"url,attr"`
		} `xml:"Connect>Stream"`
	}
	err = xml.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || doc.Stream.URL != "wss://"+cfg.Addr+"/twilio/media" {
		t.Fatalf("webhook: %s %v %+v", resp.Status, err, doc)
	}
	if r, err := http.Get(base + "/twilio/voice"); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET of the webhook: %v %v", r, err)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+cfg.Addr+"/twilio/media", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, m := range []map[string]any{
		{"event": "connected", "protocol": "Call", "version": "1.0.0"},
		{"event": "start", "streamSid": "MZ1", "start": map[string]any{"streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1",
			"tracks": []string{"inbound"}, "mediaFormat": map[string]any{"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
		{"event": "stop", "streamSid": "MZ1", "stop": map[string]any{"callSid": "CA1", "accountSid": "AC1"}},
	} {
		if err := ws.WriteJSON(m); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("want close 1000 after stop, got %v", err)
			}
			break
		}
	}
}
