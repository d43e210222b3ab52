package ovsdb

import (
	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
)

// logrusSink forwards libovsdb's logr output to a logrus.FieldLogger.
// libovsdb logs connection events at V(2)-V(3) and every transaction at
// V(4)-V(5); those land at logrus Debug and Trace so that an Info-level
// daemon log stays quiet. Errors are reported by this package itself with
// more context, so libovsdb's own errors are logged at Debug.
type logrusSink struct {
	log    logrus.FieldLogger
	name   string
	fields logrus.Fields
}

var _ logr.LogSink = (*logrusSink)(nil)

func newLogr(l logrus.FieldLogger) logr.Logger {
	return logr.New(&logrusSink{log: l})
}

func (s *logrusSink) Init(logr.RuntimeInfo) {}

func (s *logrusSink) level(v int) logrus.Level {
	if v <= 3 {
		return logrus.DebugLevel
	}
	return logrus.TraceLevel
}

// Enabled reports whether the underlying logger would emit at the level
// matching v; loggers whose level cannot be determined are treated as
// enabled and left to filter themselves.
func (s *logrusSink) Enabled(v int) bool {
	return levelEnabled(s.log, s.level(v))
}

func levelEnabled(l logrus.FieldLogger, lvl logrus.Level) bool {
	switch l := l.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(lvl)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(lvl)
	}
	return true
}

func (s *logrusSink) entry(kv []interface{}) *logrus.Entry {
	f := logrus.Fields{"component": "libovsdb"}
	if s.name != "" {
		f["logger"] = s.name
	}
	for k, v := range s.fields {
		f[k] = v
	}
	addKV(f, kv)
	return s.log.WithFields(f)
}

func addKV(f logrus.Fields, kv []interface{}) {
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			continue
		}
		f[k] = kv[i+1]
	}
}

func (s *logrusSink) Info(v int, msg string, kv ...interface{}) {
	e := s.entry(kv)
	if s.level(v) == logrus.TraceLevel {
		e.Trace(msg)
		return
	}
	e.Debug(msg)
}

func (s *logrusSink) Error(err error, msg string, kv ...interface{}) {
	s.entry(kv).WithError(err).Debug(msg)
}

func (s *logrusSink) WithValues(kv ...interface{}) logr.LogSink {
	f := logrus.Fields{}
	for k, v := range s.fields {
		f[k] = v
	}
	addKV(f, kv)
	return &logrusSink{log: s.log, name: s.name, fields: f}
}

func (s *logrusSink) WithName(name string) logr.LogSink {
	n := name
	if s.name != "" {
		n = s.name + "/" + name
	}
	return &logrusSink{log: s.log, name: n, fields: s.fields}
}
