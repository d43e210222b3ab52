package main

import (
	"fmt"
	"math"
	"slices"
)

// median returns the median of xs (the mean of the two middle values for an
// even count) and false for an empty slice.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// spread returns the smallest and largest sample.
func spread(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	return slices.Min(xs), slices.Max(xs)
}

// Target is a bound a ratio should meet: ">=" or "<=" Value.
type Target struct {
	Op    string // ">=" or "<="
	Value float64
}

func (t Target) String() string {
	if t.Op == "" {
		return ""
	}
	return fmt.Sprintf("%s %s", map[string]string{">=": "≥", "<=": "≤"}[t.Op], trimFloat(t.Value))
}

// Met says whether r meets the target. A zero Target is always met.
func (t Target) Met(r float64) bool {
	switch t.Op {
	case ">=":
		return r >= t.Value
	case "<=":
		return r <= t.Value
	}
	return true
}

// ratio divides two medians; ok is false when either is missing or the
// denominator is zero.
func ratio(num, den float64, numOK, denOK bool) (float64, bool) {
	if !numOK || !denOK || den == 0 || math.IsNaN(num) || math.IsNaN(den) {
		return 0, false
	}
	return num / den, true
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// runOrder is the position in a list of n subjects that goes k-th in
// round r. Rounds rotate the start and alternate direction, so over the
// rounds every subject goes at every position and, for every pair of
// subjects, each goes before the other about as often (a plain rotation
// puts a subject right after the same neighbour in most rounds, and
// whatever the one before leaves behind then favours one side).
func runOrder(n, r, k int) int {
	if r%2 == 1 {
		k = n - 1 - k
	}
	return (k + r/2) % n
}
