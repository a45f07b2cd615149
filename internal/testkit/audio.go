package testkit

import "math"

// Tone is n samples of a sine of freq Hz at rate, of amplitude amp.
func Tone(freq float64, rate, n int, amp float64) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return s
}

// RMS is the root mean square of s (0 for none).
func RMS(s []int16) float64 {
	if len(s) == 0 {
		return 0
	}
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}

// DB is a ratio in decibels.
func DB(x float64) float64 { return 20 * math.Log10(x) }
