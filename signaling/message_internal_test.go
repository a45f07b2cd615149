package signaling

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// wsPair is a server-side and a client-side gorilla connection over
// loopback.
func wsPair(t testing.TB) (server, client *websocket.Conn) {
	t.Helper()
	got := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- c
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-got
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func TestReadMessage(t *testing.T) {
	server, client := wsPair(t)
	sizes := []int{0, 1, 60, 511, 512, 513, 1024, 1025, 6 << 10, keepScratch + 1, 200 << 10}
	kept := map[int][]byte{}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			kind := websocket.TextMessage
			if n%2 == 1 {
				kind = websocket.BinaryMessage
			}
			if err := client.WriteMessage(kind, want); err != nil {
				t.Fatal(err)
			}
			k, got, err := readMessage(server)
			if err != nil || k != kind || !bytes.Equal(got, want) {
				t.Fatalf("got kind %d, %d bytes, %v; want kind %d, %d bytes", k, len(got), err, kind, n)
			}
			if got == nil {
				t.Fatal("an empty message is an empty slice, not nil, as ReadMessage gives it")
			}
			kept[n] = got
		})
	}
	// Each message is its caller's: a later read reuses nothing it holds.
	for n, got := range kept {
		if want := bytes.Repeat([]byte{byte('a' + n%26)}, n); !bytes.Equal(got, want) {
			t.Errorf("the message of %d bytes changed after later reads", n)
		}
	}
}

func TestReadMessageLimit(t *testing.T) {
	server, client := wsPair(t)
	server.SetReadLimit(1000)
	if err := client.WriteMessage(websocket.TextMessage, make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readMessage(server); !errors.Is(err, websocket.ErrReadLimit) {
		t.Fatalf("got %v, want gorilla's read limit error", err)
	}
}

// go test -run x -bench ReadMessage -benchmem ./signaling/: the allocations
// of a typed turn's frame and of a Realtime append's, ours against
// gorilla's ReadMessage.
func BenchmarkReadMessage(b *testing.B) {
	for _, n := range []int{60, 6 << 10} {
		for _, arm := range []struct {
			name string
			read func(*websocket.Conn) (int, []byte, error)
		}{
			{"gorilla", func(c *websocket.Conn) (int, []byte, error) { return c.ReadMessage() }},
			{"own size", readMessage},
		} {
			b.Run(fmt.Sprintf("%dB/%s", n, arm.name), func(b *testing.B) {
				server, client := wsPair(b)
				msg := make([]byte, n)
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := 0; i < b.N; i++ {
						if client.WriteMessage(websocket.TextMessage, msg) != nil {
							return
						}
					}
				}()
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, _, err := arm.read(server); err != nil {
						b.Fatal(err)
					}
				}
				<-done
			})
		}
	}
}
