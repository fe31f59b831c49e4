package sfu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// LoggerFactory returns a pion LoggerFactory writing to log, for the other
// pion components the server runs (pion/turn): see pionLoggerFactory.
func LoggerFactory(log *slog.Logger) logging.LoggerFactory { return pionLoggerFactory{log} }

// pionLoggerFactory bridges pion's loggers into the server's slog logger.
// pion warns about normal events (ICE checks before candidates arrive,
// streams closing with their PeerConnection), several times per join, so
// its levels are shifted down: warn becomes debug, error becomes warn, and
// its trace, debug and info output is dropped.
type pionLoggerFactory struct{ log *slog.Logger }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return newPionLogger(f.log, scope)
}

type pionLogger struct{ log *slog.Logger }

func newPionLogger(l *slog.Logger, scope string) pionLogger {
	return pionLogger{l.With("pion", scope)}
}

func (l pionLogger) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(m string)       { l.emit(slog.LevelDebug, m) }
func (l pionLogger) Warnf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.emit(slog.LevelDebug, fmt.Sprintf(f, a...))
	}
}
func (l pionLogger) Error(m string) { l.emit(slog.LevelWarn, m) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(f, a...))
}
