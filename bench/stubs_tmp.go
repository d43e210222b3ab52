package main

import (
	"io"

	"github.com/flowspan/flowspan/test/lab"
)

const (
	secFirstPacket = "2 first packet"
	secDatapath    = "3 datapath"
	secScale       = "4 scale"
)

func benchFirstPacket(t lab.T, cfg *Config, rep *Report) {}
func benchDatapath(t lab.T, cfg *Config, rep *Report)    {}
func benchScale(t lab.T, cfg *Config, rep *Report)       {}
func writeHeader(w io.Writer, cfg *Config, smoke bool)   {}
