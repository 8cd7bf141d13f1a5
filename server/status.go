package server

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/buildinfo"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// StatusFigures is the server's status report, in one place for the
// operator's status command and `adhocd status` (through the control
// socket): uptime, version, connections, sessions, online users, stanzas,
// command sessions, memory and goroutines, the server-to-server streams
// (with federation on), then what the stores hold.
func (s *Server) StatusFigures() []modules.Figure {
	st := s.Status()
	uptime := time.Since(st.Started)
	secs := max(uptime.Seconds(), 1)
	held := 0
	if s.commands != nil {
		if r, ok := s.commands.Store().(adhoc.StatsReporter); ok {
			held = r.Stats().Held
		}
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	figures := []modules.Figure{
		{Var: "uptime", Label: "Uptime", Value: uptime.Round(time.Second).String()},
		{Var: "version", Label: "Version", Value: buildinfo.Version()},
		{Var: "connections", Label: "Open connections", Value: strconv.Itoa(st.Connections)},
		{Var: "sessions", Label: "Bound sessions", Value: strconv.Itoa(st.Sessions)},
		{Var: "online-users", Label: "Online users", Value: strconv.Itoa(st.OnlineUsers)},
		{Var: "stanzas-in", Label: "Stanzas received", Value: strconv.FormatUint(st.StanzasIn, 10)},
		{Var: "stanzas-out", Label: "Stanzas sent", Value: strconv.FormatUint(st.StanzasOut, 10)},
		{Var: "stanzas-in-per-second", Label: "Stanzas received per second (since start)", Value: fmt.Sprintf("%.2f", float64(st.StanzasIn)/secs)},
		{Var: "stanzas-out-per-second", Label: "Stanzas sent per second (since start)", Value: fmt.Sprintf("%.2f", float64(st.StanzasOut)/secs)},
		{Var: "adhoc-sessions", Label: "Command sessions held", Value: strconv.Itoa(held)},
		{Var: "memory-heap", Label: "Heap in use (bytes)", Value: strconv.FormatUint(mem.HeapInuse, 10)},
		{Var: "memory-sys", Label: "Memory from the OS (bytes)", Value: strconv.FormatUint(mem.Sys, 10)},
		{Var: "goroutines", Label: "Goroutines", Value: strconv.Itoa(runtime.NumGoroutine())},
	}
	figures = append(figures, s.s2sFigures()...)
	return append(figures, s.storeFigures()...)
}

// storeFigures is what the stores hold, from their counters (a read
// transaction each, never a walk over messages): every account's message
// archive (XEP-0313) together, and the offline messages waiting
// (XEP-0160). A store without such counters gives no figures.
func (s *Server) storeFigures() []modules.Figure {
	var out []modules.Figure
	if a, ok := s.store.(storage.ArchiveUsageReporter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, b, err := a.ArchiveUsage(ctx)
		cancel()
		messages, size := strconv.FormatInt(n, 10), strconv.FormatInt(b, 10)
		if err != nil {
			s.log.Warn("status: archive usage not read", "err", err)
			messages, size = "unknown", "unknown"
		}
		out = append(out,
			modules.Figure{Var: "archive-messages", Label: "Archived messages (all accounts)", Value: messages},
			modules.Figure{Var: "archive-bytes", Label: "Archived messages (bytes)", Value: size})
	}
	if o, ok := s.store.(storage.OfflineUsageReporter); ok {
		b, n := o.OfflineUsage()
		out = append(out,
			modules.Figure{Var: "offline-messages", Label: "Offline messages waiting", Value: strconv.FormatInt(n, 10)},
			modules.Figure{Var: "offline-bytes", Label: "Offline messages waiting (bytes)", Value: strconv.FormatInt(b, 10)})
	}
	return out
}

func (h *host) StatusFigures() []modules.Figure { return h.s.StatusFigures() }
