package safetext

import (
	"context"
	"fmt"
	"log/slog"
)

// NewLogHandler wraps h so that every record's message and every string, error, fmt.Stringer
// and []byte attribute value goes through Log before h formats it. A logger built on it can
// be given client-supplied text (user names, topics, paths, queries, errors quoting them)
// without each call site remembering the rule. Wrapping a wrapped handler returns it as is.
func NewLogHandler(h slog.Handler) slog.Handler {
	if lh, ok := h.(logHandler); ok {
		return lh
	}
	return logHandler{h}
}

type logHandler struct{ next slog.Handler }

func (h logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Log(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(logAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(as))
	for i, a := range as {
		safe[i] = logAttr(a)
	}
	return logHandler{h.next.WithAttrs(safe)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.next.WithGroup(Log(name))}
}

// logAttr applies Log to one attribute's key and value (recursing into groups).
func logAttr(a slog.Attr) slog.Attr {
	a.Key = Log(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Log(v.String()))
	case slog.KindGroup:
		g := v.Group()
		safe := make([]any, len(g))
		for i, ga := range g {
			safe[i] = logAttr(ga)
		}
		return slog.Group(a.Key, safe...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Log(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, Log(x.String()))
		case []byte:
			return slog.String(a.Key, Log(string(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
