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
	// Target, when set, is a bound on the median itself (e.g. ≤ 1 s).
	Target Target
	// Units is the amount of work of the case (flows, filters), for the
	// growth notes; 0 = none.
	Units float64
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
	// Paired: the median of the per-run ratios Num[i] / Den[i] instead of
	// the ratio of the medians. For subjects measured in the same rounds
	// (sample i of both in round i, back to back), it cancels what drifts
	// between rounds (other load on the machine).
	Paired bool
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

// markUnmeasured gives every row of section that has neither samples nor
// a reason the reason why.
func (r *Report) markUnmeasured(section, why string) {
	for _, row := range r.Rows {
		if row.Section == section && row.NA == "" && len(row.Samples) == 0 {
			row.NA = why
		}
	}
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
		if q.Paired && ok {
			v, ok = pairedRatio(num.Samples, den.Samples)
		}
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
			if len(miss) == 0 && q.Paired {
				miss = append(miss, "runs do not pair up")
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

// pairedRatio is the median of a[i] / b[i]; false when the runs do not
// pair up or none has a finite ratio.
func pairedRatio(a, b []float64) (float64, bool) {
	if len(a) != len(b) {
		return 0, false
	}
	var rs []float64
	for i := range a {
		if b[i] != 0 && !math.IsInf(a[i], 0) && !math.IsInf(b[i], 0) {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
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

func (row *Row) targetCell() string {
	t := fmt.Sprintf("target %s %s", map[string]string{">=": "≥", "<=": "≤"}[row.Target.Op], row.Kind.format(row.Target.Value))
	m, ok := row.median()
	switch {
	case !ok || math.IsInf(m, 0):
		return t + ": n/a"
	case row.Target.Met(m):
		return t + ": met"
	}
	return t + ": NOT met"
}

var header = []string{"#", "case", "subject", "median", "min–max", "runs", "ratio (target)"}

func (r *Report) cells() ([][]string, []string) {
	ratios := r.Evaluate()
	var out [][]string
	var foot []string
	footnote := func(why string) string {
		for i, f := range foot {
			if f == why {
				return fmt.Sprintf("[%d]", i+1)
			}
		}
		foot = append(foot, why)
		return fmt.Sprintf("[%d]", len(foot))
	}
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
			c = append(c, "not available "+footnote(why), "", "0")
		}
		if row.Target.Op != "" {
			rs = append(rs, row.targetCell())
		}
		c = append(c, strings.Join(rs, "; "))
		out = append(out, c)
	}
	return out, foot
}

// WriteText prints the table with aligned columns, for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	cells, foot := r.cells()
	rows := append([][]string{header}, cells...)
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
	for i, f := range foot {
		fmt.Fprintf(&b, "[%d] not available: %s\n", i+1, f)
	}
	for _, n := range append(r.growth(), r.Notes...) {
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
	cells, foot := r.cells()
	for _, row := range cells {
		for i := range row {
			row[i] = strings.ReplaceAll(row[i], "|", "\\|")
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n### Targets\n\n")
	ratios := r.Evaluate()
	for _, row := range r.Rows {
		if row.Target.Op != "" {
			fmt.Fprintf(&b, "- %s, %s, %s: %s\n", row.Section, row.Case, row.Subject, row.targetCell())
		}
		for _, q := range ratios {
			if q.Target.Op == "" || q.Section != row.Section || q.Case != row.Case || q.On != row.Subject {
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
	}
	if len(foot) > 0 {
		b.WriteString("\n### Not available\n\n")
		for i, f := range foot {
			fmt.Fprintf(&b, "%d. %s\n", i+1, strings.ReplaceAll(f, "\n", " "))
		}
	}
	if g := r.growth(); len(g) > 0 {
		b.WriteString("\n### Growth\n\n")
		for _, n := range g {
			b.WriteString("- " + n + "\n")
		}
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

// growth describes, for each subject measured at several sizes, how its
// cost grows with the work: per-unit time for durations (flat = linear),
// the values themselves for memory.
func (r *Report) growth() []string {
	type key struct{ section, subject string }
	var order []key
	by := map[key][]*Row{}
	for _, row := range r.Rows {
		if row.Units <= 0 {
			continue
		}
		k := key{row.Section, row.Subject}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], row)
	}
	var out []string
	for _, k := range order {
		rows := by[k]
		var parts []string
		var first, last float64
		var firstU, lastU float64
		n := 0
		for _, row := range rows {
			m, ok := row.median()
			if !ok || math.IsInf(m, 0) {
				continue
			}
			if row.Kind == Duration {
				parts = append(parts, fmt.Sprintf("%s: %.1f µs per unit", row.Case, m*1e6/row.Units))
			} else {
				parts = append(parts, fmt.Sprintf("%s: %s", row.Case, row.Kind.format(m)))
			}
			if n == 0 {
				first, firstU = m, row.Units
			}
			last, lastU = m, row.Units
			n++
		}
		if n < 2 {
			continue
		}
		verdict := ""
		if rows[0].Kind == Duration {
			g := (last / lastU) / (first / firstU)
			switch {
			case g > 1.5:
				verdict = fmt.Sprintf("per-unit cost ×%.2f from smallest to largest: worse than linear", g)
			case g < 0.67:
				verdict = fmt.Sprintf("per-unit cost ×%.2f from smallest to largest: better than linear (fixed costs dominate small sizes)", g)
			default:
				verdict = fmt.Sprintf("per-unit cost ×%.2f from smallest to largest: about linear", g)
			}
		} else {
			verdict = fmt.Sprintf("×%.2f for ×%.1f the work", last/first, lastU/firstU)
		}
		out = append(out, fmt.Sprintf("%s, %s — %s; %s", k.section, k.subject, strings.Join(parts, ", "), verdict))
	}
	return out
}
