package signaling

import "testing"

func TestFrameQueue(t *testing.T) {
	q := newFrameQueue(3)
	for i := byte(0); i < 3; i++ {
		if !q.push(frame{data: []byte{i}}) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.push(frame{data: []byte{9}}) {
		t.Fatal("push past the bound accepted")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready signal")
	}
	for i := byte(0); i < 3; i++ {
		f, ok := q.pop()
		if !ok || f.data[0] != i {
			t.Fatalf("pop %d: %v %v", i, f.data, ok)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	if q.items != nil {
		t.Fatal("an emptied queue keeps its array")
	}
	if !q.push(frame{}) {
		t.Fatal("push after draining refused")
	}
}
