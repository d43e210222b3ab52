package main

import (
	"io"

	"github.com/flowspan/flowspan/test/lab"
)

const secScale = "4 scale"

func benchScale(t lab.T, cfg *Config, rep *Report)     {}
func writeHeader(w io.Writer, cfg *Config, smoke bool) {}
