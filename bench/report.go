package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Kind says what a row's samples measure, in base units.
type Kind int

const (
	// Duration samples are seconds; lower is better.
	Duration Kind = iota
	// Bitrate samples are bits per second; higher is better.
	Bitrate
	// PacketRate samples are packets per second; higher is better.
	PacketRate
	// Count samples are plain counts (packets).
	Count
	// Bytes samples are bytes (memory).
	Bytes
)

// format renders one value of the kind, e.g. "95.3 ms", "0.81 Gbit/s".
func (k Kind) format(v float64) string {
	if math.IsInf(v, 1) {
		return "∞"
	}
	switch k {
	case Duration:
		switch {
		case v >= 10:
			return fmt.Sprintf("%.1f s", v)
		case v >= 1:
			return fmt.Sprintf("%.2f s", v)
		case v >= 0.01:
			return fmt.Sprintf("%.1f ms", v*1e3)
		case v >= 0.001:
			return fmt.Sprintf("%.2f ms", v*1e3)
		default:
			return fmt.Sprintf("%.0f µs", v*1e6)
		}
	case Bitrate:
		if v >= 1e9 {
			return fmt.Sprintf("%.2f Gbit/s", v/1e9)
		}
		return fmt.Sprintf("%.0f Mbit/s", v/1e6)
	case PacketRate:
		return fmt.Sprintf("%.1f kpps", v/1e3)
	case Count:
		return thousands(int64(math.Round(v)))
	case Bytes:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprint(v)
}

// Row is one measured subject in one case of one section.
type Row struct {
	Section string // "1 programming"
	Case    string // "N=10,000"
	Subject string // "ovs-ofctl --bundle add-flows"
	Kind    Kind
	Samples []float64
	// NA, when set, says why the subject could not be measured; the row
	// then shows "not available" and never a number.
	NA string
	// Extra is shown after the median (e.g. vswitchd CPU time).
	Extra string
	// Limit is the most a run waited (Duration rows); a run that saw no
	// result within it adds +Inf, shown as "> Limit".
	Limit float64
}

// Ratio compares the medians of two subjects of one case: Num / Den.
type Ratio struct {
	Section, Case string
	On            string // subject whose row shows the ratio
	Num, Den      string // subjects
	Label         string // how a reader says it, e.g. "ovs-ofctl --bundle ÷ flowspan"
	Target        Target
}

// Report collects rows and ratios in the order they were measured.
type Report struct {
	Rows   []*Row
	Ratios []Ratio
	Notes  []string
}

// Add appends a row and returns it so samples can be added as they come.
func (r *Report) Add(section, cs, subject string, kind Kind) *Row {
	row := &Row{Section: section, Case: cs, Subject: subject, Kind: kind}
	r.Rows = append(r.Rows, row)
	return row
}

// Note appends a line printed under the table.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) find(section, cs, subject string) *Row {
	for _, row := range r.Rows {
		if row.Section == section && row.Case == cs && row.Subject == subject {
			return row
		}
	}
	return nil
}

func (row *Row) median() (float64, bool) {
	if row == nil || row.NA != "" {
		return 0, false
	}
	return median(row.Samples)
}

// RatioResult is a ratio computed from the report.
type RatioResult struct {
	Ratio
	Value float64
	OK    bool   // both medians exist
	Why   string // when !OK: what is missing
}

// Evaluate computes every ratio.
func (r *Report) Evaluate() []RatioResult {
	var out []RatioResult
	for _, q := range r.Ratios {
		num, den := r.find(q.Section, q.Case, q.Num), r.find(q.Section, q.Case, q.Den)
		nv, nok := num.median()
		dv, dok := den.median()
		v, ok := ratio(nv, dv, nok, dok)
		if math.IsInf(nv, 0) || math.IsInf(dv, 0) {
			ok = false
		}
		res := RatioResult{Ratio: q, Value: v, OK: ok}
		if !ok {
			var miss []string
			for _, x := range []struct {
				name string
				row  *Row
				ok   bool
			}{{q.Num, num, nok}, {q.Den, den, dok}} {
				switch {
				case x.row == nil:
					miss = append(miss, x.name+" not measured")
				case x.row.NA != "":
					miss = append(miss, x.name+" not available")
				case !x.ok:
					miss = append(miss, x.name+" has no samples")
				default:
					if m, _ := x.row.median(); math.IsInf(m, 0) {
						miss = append(miss, x.name+" had no result within "+x.row.Kind.format(x.row.Limit)+" in most runs")
					}
				}
			}
			if len(miss) == 0 {
				miss = append(miss, "zero denominator")
			}
			res.Why = strings.Join(miss, ", ")
		}
		out = append(out, res)
	}
	return out
}

func (q RatioResult) cell() string {
	if !q.OK {
		return fmt.Sprintf("%s: n/a (%s)", q.Label, q.Why)
	}
	s := fmt.Sprintf("%s = %s", q.Label, trimFloat(q.Value))
	if q.Target.Op != "" {
		verdict := "met"
		if !q.Target.Met(q.Value) {
			verdict = "NOT met"
		}
		s += fmt.Sprintf(" (target %s: %s)", q.Target, verdict)
	}
	return s
}

var header = []string{"#", "case", "subject", "median", "min–max", "runs", "ratio (target)"}

func (r *Report) cells() [][]string {
	ratios := r.Evaluate()
	var out [][]string
	for _, row := range r.Rows {
		var rs []string
		for _, q := range ratios {
			if q.Section == row.Section && q.Case == row.Case && q.On == row.Subject {
				rs = append(rs, q.cell())
			}
		}
		c := []string{row.Section, row.Case, row.Subject}
		if m, ok := row.median(); ok {
			lo, hi := spread(row.Samples)
			med := row.Kind.format(m)
			if math.IsInf(m, 1) {
				med = "> " + row.Kind.format(row.Limit)
			}
			if inf := countInf(row.Samples); inf > 0 {
				med += fmt.Sprintf(" (%d of %d runs: nothing within %s)", inf, len(row.Samples), row.Kind.format(row.Limit))
			}
			if row.Extra != "" {
				med += " " + row.Extra
			}
			c = append(c, med, row.Kind.format(lo)+" – "+row.Kind.format(hi), fmt.Sprint(len(row.Samples)))
		} else {
			why := row.NA
			if why == "" {
				why = "no samples"
			}
			c = append(c, "not available ("+why+")", "", "0")
		}
		c = append(c, strings.Join(rs, "; "))
		out = append(out, c)
	}
	return out
}

// WriteText prints the table with aligned columns, for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	rows := append([][]string{header}, r.cells()...)
	width := make([]int, len(header))
	for _, row := range rows {
		for i, c := range row[:len(row)-1] {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for i, row := range rows {
		for j, c := range row {
			if j == len(row)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c + strings.Repeat(" ", width[j]-utf8.RuneCountInString(c)+2))
		}
		b.WriteString("\n")
		if i == 0 {
			b.WriteString(strings.Repeat("-", 100) + "\n")
		}
	}
	for _, n := range r.Notes {
		b.WriteString("* " + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the table as a GitHub-flavoured markdown table,
// followed by the targets and the notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(header)) + "\n")
	for _, row := range r.cells() {
		for i := range row {
			row[i] = strings.ReplaceAll(row[i], "|", "\\|")
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n### Targets\n\n")
	for _, q := range r.Evaluate() {
		if q.Target.Op == "" {
			continue
		}
		status := "not available"
		if q.OK {
			status = "met"
			if !q.Target.Met(q.Value) {
				status = "**not met**"
			}
		}
		fmt.Fprintf(&b, "- %s, %s: %s — %s\n", q.Section, q.Case, q.cell(), status)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n### Notes\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func countInf(xs []float64) int {
	n := 0
	for _, x := range xs {
		if math.IsInf(x, 1) {
			n++
		}
	}
	return n
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
