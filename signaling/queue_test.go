package signaling

import "testing"

func TestFrameQueue(t *testing.T) {
	q := newFrameQueue(3)
	for i := byte(0); i < 3; i++ {
		ok, start := q.push(frame{data: []byte{i}})
		if !ok {
			t.Fatalf("push %d refused below the bound", i)
		}
		if start != (i == 0) {
			t.Fatalf("push %d: start a writer %v; want one for the first push only", i, start)
		}
	}
	if ok, _ := q.push(frame{data: []byte{9}}); ok {
		t.Fatal("push past the bound accepted")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready signal")
	}
	for i := byte(0); i < 3; i++ {
		f, st := q.popOrStop()
		if st != popFrame || f.data[0] != i {
			t.Fatalf("pop %d: %v %v", i, f.data, st)
		}
	}
	if _, st := q.popOrStop(); st != popStopped {
		t.Fatal("pop from an empty queue did not stop the writer")
	}
	if q.items != nil {
		t.Fatal("an emptied queue keeps its array")
	}
	// The writer stopped: the next push starts one again.
	if ok, start := q.push(frame{}); !ok || !start {
		t.Fatalf("push after the writer stopped: ok %v, start %v", ok, start)
	}
	// Closing while a writer runs: it writes what is queued, then is told
	// to finish; no second writer is started for the close.
	if q.closeKick() {
		t.Fatal("a second writer started for the close")
	}
	if _, st := q.popOrStop(); st != popFrame {
		t.Fatalf("the frame queued before the close was not written first: %v", st)
	}
	if _, st := q.popOrStop(); st != popClosing {
		t.Fatalf("the running writer was not told to finish: %v", st)
	}
	q.finish()
	if _, start := q.push(frame{}); start {
		t.Fatal("a writer started after the connection finished")
	}
	// Closing with no writer on starts one.
	q2 := newFrameQueue(3)
	if !q2.closeKick() {
		t.Fatal("no writer started to write the close frame")
	}
}
