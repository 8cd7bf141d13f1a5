// Command soak runs adhocd under a mixed load for a long time and fails when
// it leaks or loses what it accepted: a soak test, and with --chaos a crash
// test that SIGKILLs the server during the load and restarts it on the same
// store.
//
//	go run ./bench/soak --duration 10m --out /tmp/soak     # the soak
//	go run ./bench/soak --chaos --duration 3m --kill-every 20s
//	go run ./bench/soak --short                             # 20 s, as CI runs it
//
// It builds cmd/adhocd, writes a loopback configuration (no TLS, PLAIN,
// demo commands, metrics and pprof on loopback), creates the accounts with
// `adhocd user add`, starts the server and runs, for --duration: chat
// messages between pairs acknowledged by the receiver, logins and logouts,
// presence and roster changes, the demo wizard's flows (every third
// abandoned after its second stage), messages to offline accounts collected
// at their next login, slow readers that stop reading for 8 s out of 16, and
// one flooding client. Every --sample it writes the server's RSS, private
// memory, heap, goroutines, open files and store size to samples.csv, and
// plots them with gnuplot into samples.png.
//
// It exits 1 with the reasons on: growth that does not level off (see
// growth), a tracked message that the server accepted but never delivered,
// or a p99 latency above --max-chat-p99 or --max-command-p99. In chaos mode
// it checks what the server confirmed before each kill: offline messages
// confirmed by a ping barrier, accounts created, roster changes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	duration, sample, killEvery, chatP99, cmdP99, drain time.Duration
	short, chaos                                        bool
	out                                                 string
	growthPct                                           float64
	rcvbuf                                              int
	size                                                sizes
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the load runs")
	fs.BoolVar(&o.short, "short", false, "20 s with a 1 s sample: what CI runs (growth is reported, not judged)")
	fs.BoolVar(&o.chaos, "chaos", false, "SIGKILL the server every --kill-every and restart it on the same store")
	fs.DurationVar(&o.killEvery, "kill-every", 20*time.Second, "time between kills with --chaos")
	fs.DurationVar(&o.sample, "sample", 5*time.Second, "time between samples")
	fs.DurationVar(&o.chatP99, "max-chat-p99", time.Second, "bound on the p99 chat delivery latency")
	fs.DurationVar(&o.cmdP99, "max-command-p99", time.Second, "bound on the p99 command round trip")
	fs.DurationVar(&o.drain, "drain", 15*time.Second, "how long to wait for messages in flight at the end")
	fs.Float64Var(&o.growthPct, "growth", 10, "growth criterion: percent by which the last third's mean may exceed the middle third's")
	fs.StringVar(&o.out, "out", "", "folder for samples.csv, samples.png, adhocd.log (default: a temporary folder)")
	fs.IntVar(&o.size.pairs, "pairs", 4, "chat pairs")
	fs.IntVar(&o.size.offline, "offline", 6, "offline accounts")
	fs.IntVar(&o.size.roster, "rosters", 3, "accounts changing rosters and presence")
	fs.IntVar(&o.size.commands, "commands", 4, "clients running command flows")
	fs.IntVar(&o.size.churn, "churn", 3, "clients logging in and out")
	fs.IntVar(&o.size.slow, "slow", 2, "slow readers")
	fs.IntVar(&o.rcvbuf, "slow-rcvbuf", 32<<10, "socket receive buffer of the slow readers (bytes)")
	fs.IntVar(&o.size.floodRate, "flood-rate", 2000, "messages per second of the flooding client")
	replot := fs.String("plot", "", "only plot this samples.csv into a PNG beside it, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *replot != "" {
		return plot(*replot, strings.TrimSuffix(*replot, ".csv")+".png", "adhocd: "+filepath.Base(*replot))
	}
	if o.short {
		o.duration, o.sample, o.drain = 20*time.Second, time.Second, 10*time.Second
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := soak(ctx, o, log)
	if res != nil {
		res.print(stdout)
	}
	if err != nil {
		return err
	}
	if len(res.failures) > 0 {
		return errors.New(strings.Join(res.failures, "; "))
	}
	fmt.Fprintln(stdout, "soak: PASS")
	return nil
}

// result is what a run measured and found.
type result struct {
	o                 options
	out               string
	samples           []sample
	led               *ledger
	chatP99, cmdP99   time.Duration
	chatN, cmdN       int
	tracked, lost     int
	unconfirmedLost   int
	created           int
	restarts          int
	flood             [3]int64
	growthLines       []string
	failures, notices []string
}

func (r *result) print(w io.Writer) {
	mode := "soak"
	if r.o.chaos {
		mode = fmt.Sprintf("chaos (SIGKILL every %s, %d restarts)", r.o.killEvery, r.restarts)
	}
	fmt.Fprintf(w, "soak: %s, %s of load, %d samples in %s\n", mode, r.o.duration, len(r.samples), r.out)
	if n := len(r.samples); n > 0 {
		f, l := r.samples[0], r.samples[n-1]
		fmt.Fprintf(w, "first sample: RSS %d KiB, private %d KiB, heap %d KiB, %d goroutines, %d files, store %d KiB\n", f.rssKiB, f.privKiB, f.heapKiB, f.goroutines, f.fds, f.storeKiB)
		fmt.Fprintf(w, "last sample:  RSS %d KiB, private %d KiB, heap %d KiB, %d goroutines, %d files, store %d KiB\n", l.rssKiB, l.privKiB, l.heapKiB, l.goroutines, l.fds, l.storeKiB)
	}
	for _, g := range r.growthLines {
		fmt.Fprintln(w, "  "+g)
	}
	fmt.Fprintf(w, "tracked messages: %d, lost: %d (unconfirmed and lost: %d)\n", r.tracked, r.lost, r.unconfirmedLost)
	fmt.Fprintf(w, "chat delivery p99: %s over %d; command round trip p99: %s over %d\n", r.chatP99, r.chatN, r.cmdP99, r.cmdN)
	fmt.Fprintf(w, "flood: %d sent, %d received by the sink, %d errors\n", r.flood[0], r.flood[1], r.flood[2])
	if r.o.chaos {
		fmt.Fprintf(w, "accounts created while running: %d\n", r.created)
	}
	keys := make([]string, 0, len(r.led.counts))
	for k := range r.led.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %d\n", k, r.led.counts[k])
	}
	for k, v := range r.led.errors {
		fmt.Fprintf(w, "  trouble on the way: %s: %d\n", k, v)
	}
	for _, n := range r.notices {
		fmt.Fprintln(w, "note: "+n)
	}
	for _, f := range r.failures {
		fmt.Fprintln(w, "FAIL: "+f)
	}
}

func soak(ctx context.Context, o options, log *slog.Logger) (*result, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "adhocd-soak-")
	if err != nil {
		return nil, fmt.Errorf("soak: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	out := o.out
	if out == "" {
		out = filepath.Join(dir, "out")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("soak: out dir: %w", err)
	}
	log.Info("building adhocd", "module", root)
	bin, err := buildServer(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	srv, err := newServer(bin, dir, time.Minute)
	if err != nil {
		return nil, err
	}
	srv.logPath = filepath.Join(out, "adhocd.log")
	_ = os.Remove(srv.logPath)
	log.Info("creating accounts", "n", len(o.size.users()))
	if err := addUsers(ctx, srv, o.size.users()); err != nil {
		return nil, err
	}
	if err := srv.start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if srv.alive() {
			srv.kill()
		}
	}()
	res := &result{o: o, out: out}
	ld := &load{srv: srv, led: newLedger(), log: log, chaos: o.chaos, rcvbuf: o.rcvbuf,
		rosters: map[string]map[string]string{}, unsure: map[string]map[string]bool{}}
	res.led = ld.led

	csvPath := filepath.Join(out, "samples.csv")
	csvFile, err := os.Create(csvPath)
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	defer csvFile.Close()
	fmt.Fprintln(csvFile, csvHeader)

	log.Info("load", "duration", o.duration, "chaos", o.chaos, "addr", srv.addr)
	start := time.Now()
	loadCtx, stopLoad := context.WithTimeout(ctx, o.duration)
	defer stopLoad()
	var wg sync.WaitGroup
	goN := func(n int, f func(context.Context, int)) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); f(loadCtx, i) }()
		}
	}
	goN(o.size.pairs, ld.pair)
	goN(o.size.roster, ld.roster)
	goN(o.size.commands, ld.commands)
	goN(o.size.churn, ld.churn)
	goN(o.size.slow, ld.slow)
	if o.size.offline > 0 {
		goN(1, func(ctx context.Context, _ int) { ld.offline(ctx, o.size.offline) })
	}
	if o.size.floodRate > 0 {
		goN(1, func(ctx context.Context, _ int) { ld.flooder(ctx, o.size.floodRate) })
	}
	if o.chaos {
		goN(1, func(ctx context.Context, _ int) { ld.creator(ctx) })
	}

	// The sampler, and in chaos mode the killer, run in this goroutine.
	var sampleErr error
	tick := time.NewTicker(o.sample)
	var kill <-chan time.Time
	if o.chaos {
		kt := time.NewTicker(o.killEvery)
		defer kt.Stop()
		kill = kt.C
	}
loop:
	for {
		select {
		case <-loadCtx.Done():
			break loop
		case <-kill:
			srv.kill()
			srv.restarts++
			ld.led.restarts.Add(1)
			log.Info("killed the server; restarting", "restarts", srv.restarts)
			if err := srv.start(ctx); err != nil {
				tick.Stop()
				stopLoad()
				wg.Wait()
				return res, fmt.Errorf("soak: restart %d: %w", srv.restarts, err)
			}
		case <-tick.C:
			if !srv.alive() {
				stopLoad()
				wg.Wait()
				return res, fmt.Errorf("soak: adhocd died: %s", tail(srv.logPath))
			}
			m, err := measure(ctx, srv)
			if err != nil {
				sampleErr = err
				continue
			}
			m.t = time.Since(start).Seconds()
			res.samples = append(res.samples, m)
			fmt.Fprintln(csvFile, m.csv())
		}
	}
	tick.Stop()
	log.Info("load done; waiting for the workers")
	wg.Wait()
	if sampleErr != nil {
		res.notices = append(res.notices, "a sample failed: "+sampleErr.Error())
	}

	// An interrupt ends the load early; the checks still run.
	ctx = context.WithoutCancel(ctx)

	// Every tracked message still on the way is waited for, then every
	// account that may have some stored logs in once to collect them.
	deadline := time.Now().Add(o.drain)
	for ld.led.outstanding() > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	log.Info("collecting offline messages", "outstanding", ld.led.outstanding())
	var cw sync.WaitGroup
	for _, u := range o.size.users() {
		cw.Add(1)
		go func() { defer cw.Done(); ld.collect(ctx, u, 2*time.Second) }()
	}
	cw.Wait()

	res.finish(ld)
	if o.chaos {
		for _, bad := range ld.checkRosters(ctx) {
			res.failures = append(res.failures, "roster change lost: "+bad)
		}
		ld.mu.Lock()
		created := slices.Clone(ld.created)
		ld.mu.Unlock()
		res.created = len(created)
		for _, u := range created {
			c, err := login(ctx, srv.addr, u, password, nil)
			if err != nil {
				res.failures = append(res.failures, fmt.Sprintf("account %s was created but cannot log in: %v", u, err))
				continue
			}
			c.logout()
		}
	} else {
		for _, bad := range ld.checkRosters(ctx) {
			res.failures = append(res.failures, "roster: "+bad)
		}
	}
	res.restarts = srv.restarts
	if err := srv.stop(); err != nil {
		res.failures = append(res.failures, err.Error())
	}
	res.judgeGrowth()
	if n, first := logTrouble(srv.logPath); n > 0 {
		res.notices = append(res.notices, fmt.Sprintf("adhocd logged %d warnings or errors (%s); the first: %s", n, srv.logPath, first))
	}
	if err := plot(csvPath, filepath.Join(out, "samples.png"), plotTitle(o)); err != nil {
		res.notices = append(res.notices, "warning: "+err.Error())
		log.Warn("no plot", "err", err)
	}
	return res, nil
}

func plotTitle(o options) string {
	if o.chaos {
		return fmt.Sprintf("adhocd chaos run: %s, SIGKILL every %s", o.duration, o.killEvery)
	}
	return fmt.Sprintf("adhocd soak: %s of mixed load", o.duration)
}

func addUsers(ctx context.Context, srv *server, users []string) error {
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 4)
	for _, u := range users {
		sem <- struct{}{}
		go func() { defer func() { <-sem }(); errs <- srv.addUser(ctx, u, password) }()
	}
	var all []error
	for range users {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// finish counts losses and latencies.
func (r *result) finish(ld *load) {
	l := ld.led
	l.mu.Lock()
	defer l.mu.Unlock()
	var lostIDs []string
	for id, rec := range l.msgs {
		r.tracked++
		if rec.delivered > 0 || rec.bounced != "" {
			continue
		}
		if rec.confirmed {
			r.lost++
			lostIDs = append(lostIDs, fmt.Sprintf("%s (%s to %s)", id, rec.kind, rec.to))
		} else {
			r.unconfirmedLost++
		}
	}
	if r.lost > 0 {
		sort.Strings(lostIDs)
		if len(lostIDs) > 10 {
			lostIDs = append(lostIDs[:10], "…")
		}
		r.failures = append(r.failures, fmt.Sprintf("%d accepted messages never arrived: %s", r.lost, strings.Join(lostIDs, ", ")))
	}
	p99 := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[min(len(d)-1, len(d)*99/100)]
	}
	r.chatP99, r.chatN = p99(l.chatLat), len(l.chatLat)
	r.cmdP99, r.cmdN = p99(l.cmdLat), len(l.cmdLat)
	r.flood = [3]int64{ld.flood.sent.Load(), ld.flood.received.Load(), ld.flood.errors.Load()}
	if r.chatN == 0 || r.cmdN == 0 {
		r.failures = append(r.failures, "no chat message or no command was measured")
	}
	if r.o.chaos {
		r.notices = append(r.notices, "latency bounds are not judged in chaos mode (restarts stall the clients)")
		return
	}
	if r.chatP99 > r.o.chatP99 {
		r.failures = append(r.failures, fmt.Sprintf("chat delivery p99 %s is above %s", r.chatP99, r.o.chatP99))
	}
	if r.cmdP99 > r.o.cmdP99 {
		r.failures = append(r.failures, fmt.Sprintf("command round trip p99 %s is above %s", r.cmdP99, r.o.cmdP99))
	}
}

// judgeGrowth applies the growth criterion to each series; runs shorter
// than two minutes, and chaos runs (each restart starts afresh), are
// reported but not judged.
func (r *result) judgeGrowth() {
	judge := !r.o.chaos && r.o.duration >= 2*time.Minute
	for _, s := range growthSeries {
		msg, mid, last := growth(r.samples, s, r.o.growthPct)
		r.growthLines = append(r.growthLines, fmt.Sprintf("%s: middle third %.0f, last third %.0f", s.name, mid, last))
		if msg == "" {
			continue
		}
		if judge {
			r.failures = append(r.failures, msg)
		} else {
			r.notices = append(r.notices, msg+" (not judged: run too short, or chaos)")
		}
	}
}

// logTrouble counts the WARN and ERROR lines of the server's log.
func logTrouble(path string) (int, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, ""
	}
	n, first := 0, ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			if n == 0 {
				first = line
			}
			n++
		}
	}
	return n, first
}
