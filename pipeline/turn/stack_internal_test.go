package turn

import (
	"strconv"
	"testing"
)

// frames is a call chain about as deep as a batch's finish: depth frames
// of a few hundred bytes each, with pointers in them for the runtime to
// adjust when it copies the stack.
//
//go:noinline
func frames(depth int, s *string) int {
	var local [40]*string
	local[depth%len(local)] = s
	if depth == 0 {
		return len(*local[0])
	}
	return frames(depth-1, s) + len(local)
}

// BenchmarkBatchGoroutine: a goroutine that runs a chain of about 5 KB,
// its stack grown at its start against grown where the chain needs it
// (the A/B behind growStack; the runtime's starting stack size depends
// on the process's other goroutines, so compare the two in one run).
func BenchmarkBatchGoroutine(b *testing.B) {
	s := "x"
	for _, depth := range []int{12, 14} {
		for _, grow := range []bool{false, true} {
			b.Run(strconv.Itoa(depth)+"/grown="+strconv.FormatBool(grow), func(b *testing.B) {
				done := make(chan int)
				for i := 0; i < b.N; i++ {
					go func() {
						if grow {
							growStack()
						}
						done <- frames(depth, &s)
					}()
					<-done
				}
			})
		}
	}
}
