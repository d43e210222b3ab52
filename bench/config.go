package main

import (
	"io"
	"time"
)

// Config says what a run measures and how often. The zero value is not
// useful; use fullConfig or smokeConfig.
type Config struct {
	// Section 1: flow counts and runs per count.
	ProgramSizes []int
	ProgramReps  []int // same length as ProgramSizes
	// Section 2: runs of each way to create a mirror, and how long a run
	// waits for the first copy.
	FirstPacketReps  int
	FirstPacketLimit time.Duration
	// Section 3: runs of each variant; seconds of iperf3 and of the
	// small-packet stream per run.
	DatapathReps int
	IperfTime    time.Duration
	SmallPktTime time.Duration
	// Section 4/5: (mirrors, filters) sizes and runs of each.
	ScaleSizes []ScaleSize
	ScaleReps  int
	// Flowspan is the flowspan binary (built by make bench); "" means the
	// flowspan sides that need the daemon are not available.
	Flowspan string
	// Budget bounds each section's wall time: no new run starts after it.
	// Sections listed in Budgets get their own.
	Budget  time.Duration
	Budgets map[int]time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
	// Sections to run (1–4); empty means all.
	Sections []int
}

// ScaleSize is a number of mirrors sharing a number of filters.
type ScaleSize struct {
	Mirrors, Filters int
}

func fullConfig() Config {
	return Config{
		ProgramSizes:     []int{1000, 10000, 50000},
		ProgramReps:      []int{20, 8, 6},
		FirstPacketReps:  10,
		FirstPacketLimit: 5 * time.Second,
		DatapathReps:     12,
		IperfTime:        3 * time.Second,
		SmallPktTime:     2 * time.Second,
		ScaleSizes:       []ScaleSize{{64, 2500}, {128, 5000}, {256, 10000}},
		ScaleReps:        3,
		Budget:           4 * time.Minute,
		// About 14 minutes in all at most, plus the last run of each section (a
		// full run takes 7–9 minutes on a quiet 2-CPU machine: section 1 ≈ 1.5,
		// 2 ≈ 2, 3 ≈ 4.5 with 12 rounds of ≈ 21 s). The ratios move ±20 %
		// from round to round on such a machine: the rounds are many so that
		// their median is stable.
		Budgets: map[int]time.Duration{1: 140 * time.Second, 2: 240 * time.Second, 3: 290 * time.Second, 4: 170 * time.Second},
	}
}

// smokeConfig runs every section once with tiny sizes: it proves the
// harness works, not how fast anything is.
func smokeConfig() Config {
	return Config{
		ProgramSizes:     []int{200},
		ProgramReps:      []int{1},
		FirstPacketReps:  1,
		FirstPacketLimit: 1 * time.Second,
		DatapathReps:     1,
		IperfTime:        1 * time.Second,
		SmallPktTime:     500 * time.Millisecond,
		ScaleSizes:       []ScaleSize{{4, 40}},
		ScaleReps:        1,
		Budget:           40 * time.Second,
	}
}

// budget is the time budget of one section.
func (c *Config) budget(section int) time.Duration {
	if b, ok := c.Budgets[section]; ok {
		return b
	}
	return c.Budget
}

func (c *Config) wants(section int) bool {
	if len(c.Sections) == 0 {
		return true
	}
	for _, s := range c.Sections {
		if s == section {
			return true
		}
	}
	return false
}
