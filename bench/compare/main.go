// Command compare runs the side-by-side benchmark of adhocd, Prosody and
// ejabberd, and of the canned-reply ceiling, on this machine, one server at a
// time, with the same workloads, and prints one table with ratios. bench/run
// builds the binaries, installs the peers and calls it; see BENCHMARKS.md.
//
// Each server in turn is started on loopback with the same accounts (admin
// and bench0 … bench999; admin and bench0 … bench15 are administrators) and
// no TLS, measured, and stopped by its PID:
//
//   - idle RSS, a few seconds after start;
//   - a one-stage admin command (get-online-users-num; Prosody 0.12 has none,
//     so its lightest admin command, modules#list) at each --clients count;
//   - adhocd's three-stage demo wizard (execute, next, next, complete) at the
//     highest count: flows and requests per second;
//   - chat messages between pairs of clients at the highest count (16
//     clients: 8 pairs; adhocbench --chat): each client sends chat messages
//     to its partner's full JID, one at a time, and answers the partner's;
//     delivered messages per second and the delivery latency;
//   - SCRAM-SHA-1 logins per second (4096 iterations everywhere);
//   - RSS with --idle authenticated connections held, less the idle RSS;
//   - for adhocd, the RSS cost of command sessions: --sessions executions of
//     the wizard's first stage leave that many sessions open, and as many
//     again show that adhoc.max_sessions (10000) bounds them.
//
// Further contenders measure adhocd's scale-out (issue 18) beside the
// single node on its bbolt file: adhocd-pg, one adhocd on PostgreSQL
// (storage.backend: postgres), and adhocd-cluster, two adhocd replicas of
// one domain on one PostgreSQL database and one Redis (cluster.redis),
// which compare starts for them as child processes (backing.go). Every
// workload's connections alternate between the two replicas (adhocbench
// --server with both addresses): in the chat run the partners of each pair
// are on different replicas, so that every message crosses from one to the
// other through Redis. adhocd-pg-noarchive and adhocd-cluster-noarchive
// are the same two without the message archive, whose writes are on the
// message path. Their ratio columns are theirs ÷ adhocd's, the single node
// measured in the same run; their memory rows are the adhocd processes'
// alone, without PostgreSQL and Redis.
//
// The load generator is adhocbench (cmd/adhocbench), which shares the cores
// with the server under test, as the reference figures did.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	password = "bench-pw"
	users    = 16
)

type options struct {
	bin, work, peersScript string
	servers                []string
	clients                []int
	duration               time.Duration
	idle, sessions         int
	loginClients           int
	settle                 time.Duration
	markdown               string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var o options
	var serverList, clients string
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "", "folder with the adhocd, adhocbench and ceiling binaries (required)")
	fs.StringVar(&o.work, "work", "", "working folder for configurations and data (default: a temporary one)")
	fs.StringVar(&o.peersScript, "peers", "bench/peers.sh", "the script that starts and stops Prosody and ejabberd")
	fs.StringVar(&serverList, "servers", "adhocd,ejabberd,prosody,ceiling", "servers to measure, in order")
	fs.StringVar(&clients, "clients", "1,4,16", "client counts of the one-stage workload")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each throughput run")
	fs.IntVar(&o.idle, "idle", 1000, "idle authenticated connections for the memory figure")
	fs.IntVar(&o.sessions, "sessions", 10000, "command sessions opened on adhocd for their memory cost")
	fs.IntVar(&o.loginClients, "login-clients", 4, "connections logging in at once for the login rate")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause before reading a server's memory")
	fs.StringVar(&o.markdown, "markdown", "", "also write the report, in Markdown, to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.bin == "" {
		return errors.New("--bin is required")
	}
	o.servers = strings.Split(serverList, ",")
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return fmt.Errorf("--clients: %q is not a count", c)
		}
		o.clients = append(o.clients, n)
	}
	if o.work == "" {
		dir, err := os.MkdirTemp("", "adhocd-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.work = dir
	}
	results := map[string]*result{}
	for _, name := range o.servers {
		srv, ok := servers[name]
		if !ok {
			return fmt.Errorf("--servers: unknown server %q", name)
		}
		fmt.Fprintf(os.Stderr, "== %s\n", name)
		r, err := measure(ctx, o, name, srv)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results[name] = r
	}
	rep := report{machine: machine(), versions: versions(o), results: results, o: o}
	var md strings.Builder
	rep.write(&md)
	fmt.Print(md.String())
	if o.markdown != "" {
		return os.WriteFile(o.markdown, []byte(md.String()), 0o644)
	}
	return nil
}

// server is how one contender is started and driven.
type server struct {
	port     int
	node     string // the one-stage command
	flow     bool   // runs the three-stage demo wizard
	chat     bool   // routes chat messages between clients
	logins   bool   // has accounts to log in to
	idle     bool   // holds idle authenticated connections
	sessions bool   // keeps command sessions in its memory (their cost is measured)
	// scaleOut: adhocd on PostgreSQL, alone or as a cluster; its ratio
	// column is its figure ÷ adhocd's, not adhocd's ÷ its.
	scaleOut bool
	start    func(ctx context.Context, o options, dir string, port int) (*process, error)
	display  string
}

// noArchive turns adhocd's message archive (XEP-0313) off, in its limits
// section.
const noArchive = "  mam:\n    max_messages: 0\n"

// pprofOffset places adhocd's debug.pprof_listen port above its c2s port,
// and metricsOffset its metrics.listen (the scale-out contenders', for
// /readyz).
const (
	pprofOffset   = 1000
	metricsOffset = 2000
)

const (
	onlineUsersNum = "http://jabber.org/protocol/admin#get-online-users-num"
	prosodyModules = "http://prosody.im/protocol/modules#list"
	wizardNode     = "urn:adhocd:demo:wizard"
	wizardFlow     = "next:name=Ann,color=red;next:contact=bob@localhost;complete:comment=ok"
)

// The ports lie below Linux's ephemeral range (32768–60999): the login runs
// cycle through thousands of client ports, and one of them could hold a
// port a server is about to listen on.
var servers = map[string]server{
	"adhocd": {port: 15222, node: onlineUsersNum, flow: true, chat: true, logins: true, idle: true, sessions: true,
		start: startAdhocd(""), display: "adhocd"},
	// adhocd with its message archive (XEP-0313) off: the chat row's ratio
	// is what archiving every message costs routing.
	"adhocd-noarchive": {port: 16222, node: onlineUsersNum, flow: true, chat: true, logins: true, idle: true, sessions: true,
		start: startAdhocd(noArchive), display: "adhocd, no archive"},
	// The scale-out contenders: adhocd on PostgreSQL, one process, and two
	// replicas on one PostgreSQL and one Redis (c2s ports 21222 and 21223),
	// and both without the message archive, whose writes are on the
	// message path (a transaction per copy on PostgreSQL). Their command
	// sessions are rows of the database, so that their cost in memory is
	// not measured.
	"adhocd-pg": {port: 18222, node: onlineUsersNum, flow: true, chat: true, logins: true, idle: true, scaleOut: true,
		start: startScaleOut(1, ""), display: "adhocd on PostgreSQL"},
	"adhocd-cluster": {port: 21222, node: onlineUsersNum, flow: true, chat: true, logins: true, idle: true, scaleOut: true,
		start: startScaleOut(2, ""), display: "adhocd cluster, 2 replicas"},
	"adhocd-pg-noarchive": {port: 27222, node: onlineUsersNum, flow: true, chat: true, logins: true, idle: true, scaleOut: true,
		start: startScaleOut(1, noArchive), display: "adhocd on PostgreSQL, no archive"},
	"adhocd-cluster-noarchive": {port: 30222, node: onlineUsersNum, flow: true, chat: true, logins: true, idle: true, scaleOut: true,
		start: startScaleOut(2, noArchive), display: "adhocd cluster, no archive"},
	"ejabberd": {port: 26222, node: onlineUsersNum, chat: true, logins: true, idle: true, start: startPeer("ejabberd"), display: "ejabberd"},
	"prosody":  {port: 25222, node: prosodyModules, chat: true, logins: true, idle: true, start: startPeer("prosody"), display: "Prosody"},
	"ceiling":  {port: 24222, node: onlineUsersNum, start: startCeiling, display: "ceiling"},
}

// result is what was measured of one server.
type result struct {
	oneStage     map[int]*bench // by client count
	flow, logins *bench
	chat         *bench
	idle         memory   // at rest
	idleConn     int64    // RSS bytes with the idle connections, less at rest
	sessionCost  float64  // live heap bytes per command session
	sessionHeap  [2]int64 // live heap growth after --sessions, and after as many again
}

// bench is adhocbench's JSON report.
type bench struct {
	Clients     int                `json:"clients"`
	Seconds     float64            `json:"seconds"`
	Flows       int64              `json:"flows"`
	Requests    int64              `json:"requests"`
	FlowsPerSec float64            `json:"flows_per_second"`
	ReqPerSec   float64            `json:"requests_per_second"`
	Latency     map[string]float64 `json:"latency_ms"`
	Errors      map[string]int     `json:"errors"`
	LoginErrors int                `json:"login_errors"`
	// The chat workload's (adhocbench --chat).
	Pairs     int     `json:"pairs"`
	Sent      int64   `json:"messages_sent"`
	Delivered int64   `json:"messages_delivered"`
	MsgPerSec float64 `json:"messages_per_second"`
}

func measure(ctx context.Context, o options, name string, s server) (*result, error) {
	dir := filepath.Join(o.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := s.start(ctx, o, dir, s.port)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	addr := p.addr
	if addr == "" {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	}
	r := &result{oneStage: map[int]*bench{}}
	// Memory first, on a fresh process: the throughput runs would leave
	// garbage and grown pools in the figures.
	sleep(ctx, o.settle)
	if r.idle, err = treeRSS(p.pids...); err != nil {
		return nil, err
	}
	if s.idle && o.idle > 0 {
		if r.idleConn, err = idleCost(ctx, o, addr, p.pids); err != nil {
			return nil, err
		}
	}
	ab := func(args ...string) (*bench, error) { return runBench(ctx, o, addr, args...) }
	dur := o.duration.String()
	for _, c := range o.clients {
		b, err := ab("--clients", strconv.Itoa(c), "--duration", dur, "--node", s.node)
		if err != nil {
			return nil, err
		}
		r.oneStage[c] = b
	}
	top := strconv.Itoa(o.clients[len(o.clients)-1])
	if s.flow {
		if r.flow, err = ab("--clients", top, "--duration", dur, "--node", wizardNode, "--flow", wizardFlow); err != nil {
			return nil, err
		}
	}
	if s.chat {
		if r.chat, err = ab("--chat", "--clients", top, "--duration", dur); err != nil {
			return nil, err
		}
	}
	if s.logins {
		if r.logins, err = ab("--logins", "--mech", "SCRAM-SHA-1", "--clients", strconv.Itoa(o.loginClients), "--duration", dur); err != nil {
			return nil, err
		}
	}
	if s.sessions && o.sessions > 0 {
		if err := sessionCost(ctx, o, addr, s.port+pprofOffset, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// runBench runs adhocbench with args against the server at addr (or the
// replicas, comma-separated) and reads its JSON report.
func runBench(ctx context.Context, o options, addr string, args ...string) (*bench, error) {
	label := strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, filepath.Join(o.bin, "adhocbench"),
		append([]string{"--server", addr, "--password", password, "--json"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("adhocbench %s: %w\n%s", label, err, stderr.String())
	}
	var b bench
	if err := json.Unmarshal(out, &b); err != nil {
		return nil, fmt.Errorf("adhocbench report %q: %w", out, err)
	}
	if b.Pairs > 0 {
		fmt.Fprintf(os.Stderr, "   %-70s %9.0f msg/s  %d sent, %d delivered  p99 %6.2f ms  errors %v\n",
			label, b.MsgPerSec, b.Sent, b.Delivered, b.Latency["p99"], b.Errors)
	} else {
		fmt.Fprintf(os.Stderr, "   %-70s %9.0f req/s  %8.0f flows/s  p99 %6.2f ms  errors %v\n",
			label, b.ReqPerSec, b.FlowsPerSec, b.Latency["p99"], b.Errors)
	}
	if b.LoginErrors > 0 {
		return nil, fmt.Errorf("adhocbench %s: %d connections could not log in\n%s", label, b.LoginErrors, stderr.String())
	}
	return &b, nil
}

// idleCost holds o.idle connections, each of its own account, and returns
// the server's RSS with them (all its processes' together), less its RSS
// before.
func idleCost(ctx context.Context, o options, addr string, pids []int) (int64, error) {
	before, err := treeRSS(pids...)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(o.bin, "adhocbench"), "--server", addr, "--password", password,
		"--users", "bench%d", "--idle", strconv.Itoa(o.idle), "--duration", "1h", "--timeout", "60s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "holding") {
		return 0, fmt.Errorf("idle connections: %q %v\n%s", line, err, stderr.String())
	}
	sleep(ctx, o.settle)
	with, err := treeRSS(pids...)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "   %d idle connections: RSS %.1f → %.1f MB\n", o.idle, mb(before.rss), mb(with.rss))
	return with.rss - before.rss, nil
}

// sessionCost opens o.sessions command sessions (the wizard's first stage,
// never finished) from the 16 bench users, then as many again, reading
// adhocd's live heap after a collection (from its debug.pprof_listen) before
// and after each round: RSS would mostly show what the runs before left for
// the runtime to return.
func sessionCost(ctx context.Context, o options, addr string, pprofPort int, r *result) error {
	before, err := liveHeap(ctx, pprofPort)
	if err != nil {
		return err
	}
	per := strconv.Itoa((o.sessions + users - 1) / users)
	for round := range 2 {
		b, err := runBench(ctx, o, addr, "--clients", strconv.Itoa(users), "--count", per, "--node", wizardNode)
		if err != nil {
			return err
		}
		if len(b.Errors) > 0 {
			return fmt.Errorf("opening command sessions: %v", b.Errors)
		}
		if r.sessionHeap[round], err = liveHeap(ctx, pprofPort); err != nil {
			return err
		}
		r.sessionHeap[round] -= before
	}
	r.sessionCost = float64(r.sessionHeap[0]) / float64(o.sessions)
	fmt.Fprintf(os.Stderr, "   live heap: +%.1f MB after %d sessions, +%.1f MB after as many again\n",
		mb(r.sessionHeap[0]), o.sessions, mb(r.sessionHeap[1]))
	return nil
}

// liveHeap is the HeapAlloc of adhocd's runtime right after a collection,
// read from its /debug/pprof/heap (gc=1 collects first).
func liveHeap(ctx context.Context, port int) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", port), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no HeapAlloc in the heap profile")
}

// process is a started server: the PIDs whose memory is its own (one, or
// each replica's), the address adhocbench connects to when it is not the
// contender's port on 127.0.0.1 (replicas' addresses, comma-separated),
// and how to stop it.
type process struct {
	pids []int
	addr string
	stop func()
}

// startAdhocd starts adhocd with extraLimits appended to its limits
// section.
func startAdhocd(extraLimits string) func(ctx context.Context, o options, dir string, port int) (*process, error) {
	return func(ctx context.Context, o options, dir string, port int) (*process, error) {
		return startAdhocdConfig(ctx, o, dir, port, extraLimits)
	}
}

func startAdhocdConfig(ctx context.Context, o options, dir string, port int, extraLimits string) (*process, error) {
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(adhocdConfig(o, port, extraLimits, "", "")), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(o.bin, "adhocd")
	if err := addAccounts(ctx, o, path, 1); err != nil {
		return nil, err
	}
	return startProcess(ctx, dir, port, bin, "--config", path)
}

// adhocdConfig is adhocd's configuration for the benchmark, with c2s on
// port and debug.pprof_listen on port+pprofOffset; extraLimits is appended
// to its limits section, extraStorage to its storage section and
// extraSections to the whole.
func adhocdConfig(o options, port int, extraLimits, extraStorage, extraSections string) string {
	admins := []string{"admin@localhost"}
	for i := range users {
		admins = append(admins, fmt.Sprintf("bench%d@localhost", i))
	}
	// Comparable with the peers: no TLS, PLAIN allowed on the plain stream,
	// 4096 SCRAM iterations, and room for the 1,000 idle
	// connections from one address and the open command sessions of the
	// memory runs; everything else is the default configuration.
	return fmt.Sprintf(`domain: localhost
admins: [%s]
c2s:
  listen: 127.0.0.1:%d
  require_tls: false
  allow_plain_without_tls: true
storage:
  path: data
  scram_iterations: 4096
%slimits:
  max_connections_per_address: %d
  # The peers run without rate limits (no mod_limits, shaper none).
  rate:
    stanzas_per_second: 0
    bytes_per_second: 0
%sadhoc:
  max_sessions_per_user: %d
  demo_commands: true
log:
  level: warn
debug:
  pprof_listen: 127.0.0.1:%d
%s`, strings.Join(admins, ", "), port, extraStorage, o.idle+100, extraLimits, o.sessions, port+pprofOffset, extraSections)
}

// addAccounts makes the benchmark's accounts with `adhocd user add` on the
// store of the configuration at path (the bbolt file, or the PostgreSQL
// database when no server runs yet), parallel at a time (one for bbolt,
// whose file one process holds at a time).
func addAccounts(ctx context.Context, o options, path string, parallel int) error {
	bin := filepath.Join(o.bin, "adhocd")
	names := make(chan string)
	errs := make(chan error, parallel)
	for range cap(errs) {
		go func() {
			var first error
			for u := range names {
				if first != nil {
					continue
				}
				cmd := exec.CommandContext(ctx, bin, "user", "add", "--config", path, u+"@localhost")
				cmd.Stdin = strings.NewReader(password + "\n")
				if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
					first = fmt.Errorf("adhocd user add %s: %v %s", u, err, out)
				}
			}
			errs <- first
		}()
	}
	for _, u := range accounts(o) {
		names <- u
	}
	close(names)
	var err error
	for range cap(errs) {
		err = errors.Join(err, <-errs)
	}
	return err
}

// startScaleOut starts adhocd on PostgreSQL, with extraLimits appended to
// its limits section: one process (replicas 1), or a cluster of replicas
// on one PostgreSQL database and one Redis, replica n on c2s port
// port+n-1. It starts PostgreSQL (and Redis) first, makes the accounts in
// the database, then the replicas, and returns when each is ready
// (/readyz); stop stops the replicas, then Redis and PostgreSQL.
func startScaleOut(replicas int, extraLimits string) func(ctx context.Context, o options, dir string, port int) (*process, error) {
	return func(ctx context.Context, o options, dir string, port int) (_ *process, err error) {
		var stops []func() // in the order to run them
		p := &process{stop: func() {
			for _, stop := range stops {
				stop()
			}
		}}
		defer func() {
			if err != nil {
				p.stop()
			}
		}()
		pg, err := startPostgres(ctx)
		if err != nil {
			return nil, err
		}
		stops = append(stops, pg.stop)
		fmt.Fprintf(os.Stderr, "   PostgreSQL on port %d (PID %d)\n", pg.port, pg.pid)
		extraStorage := fmt.Sprintf("  backend: postgres\n  postgres:\n    dsn: %s\n", pg.pgDSN())
		cluster := ""
		if replicas > 1 {
			rd, err := startRedis(ctx, filepath.Join(dir, "redis"))
			if err != nil {
				return nil, err
			}
			stops = append([]func(){rd.stop}, stops...)
			fmt.Fprintf(os.Stderr, "   Redis on port %d (PID %d)\n", rd.port, rd.pid)
			cluster = fmt.Sprintf("cluster:\n  redis:\n    addr: 127.0.0.1:%d\n", rd.port)
		}
		var addrs, paths []string
		for n := 1; n <= replicas; n++ {
			rdir := filepath.Join(dir, fmt.Sprintf("r%d", n))
			if err := os.MkdirAll(rdir, 0o755); err != nil {
				return nil, err
			}
			rport := port + n - 1
			extra := fmt.Sprintf("metrics:\n  listen: 127.0.0.1:%d\n", rport+metricsOffset)
			if cluster != "" {
				extra += cluster + fmt.Sprintf("  replica: r%d\n", n)
			}
			path := filepath.Join(rdir, "config.yaml")
			if err := os.WriteFile(path, []byte(adhocdConfig(o, rport, extraLimits, extraStorage, extra)), 0o644); err != nil {
				return nil, err
			}
			paths = append(paths, path)
			addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(rport)))
		}
		// One database: the accounts are every replica's.
		began := time.Now()
		if err := addAccounts(ctx, o, paths[0], 4); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "   %d accounts made in the database in %.1f s\n", len(accounts(o)), time.Since(began).Seconds())
		for n, path := range paths {
			rp, err := startProcess(ctx, filepath.Dir(path), port+n, filepath.Join(o.bin, "adhocd"), "--config", path)
			if err != nil {
				return nil, err
			}
			stops = append([]func(){rp.stop}, stops...)
			p.pids = append(p.pids, rp.pids...)
			if err := waitReady(ctx, port+n+metricsOffset); err != nil {
				return nil, err
			}
		}
		p.addr = strings.Join(addrs, ",")
		return p, nil
	}
}

func startCeiling(ctx context.Context, o options, dir string, port int) (*process, error) {
	return startProcess(ctx, dir, port, filepath.Join(o.bin, "ceiling"), "--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// startProcess runs a server binary with its output in dir/server.log and
// waits until port accepts connections.
func startProcess(ctx context.Context, dir string, port int, bin string, args ...string) (*process, error) {
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	p := &process{pids: []int{cmd.Process.Pid}, stop: func() {
		stopPID(cmd.Process, syscall.SIGTERM, exited, 15*time.Second)
	}}
	if err := waitPort(ctx, port, exited); err != nil {
		p.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return nil, fmt.Errorf("%s: %w\n%s", filepath.Base(bin), err, log)
	}
	return p, nil
}

func waitPort(ctx context.Context, port int, exited <-chan struct{}) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not accept connections within 30 s", addr)
}

// startPeer starts Prosody or ejabberd with bench/peers.sh, which writes
// their configuration, creates the same accounts and prints the PID.
func startPeer(name string) func(ctx context.Context, o options, dir string, port int) (*process, error) {
	return func(ctx context.Context, o options, dir string, port int) (*process, error) {
		cmd := exec.CommandContext(ctx, o.peersScript, "start", name, dir, strconv.Itoa(port), strconv.Itoa(accountCount(o)), password)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s start: %w", o.peersScript, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			return nil, fmt.Errorf("%s start printed %q, not a PID", o.peersScript, out)
		}
		return &process{pids: []int{pid}, stop: func() {
			stop := exec.Command(o.peersScript, "stop", name, dir)
			stop.Stdout, stop.Stderr = os.Stderr, os.Stderr
			if err := stop.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "%s stop %s: %v\n", o.peersScript, name, err)
			}
		}}, nil
	}
}

// accounts are admin and bench0 … bench{n-1}, n the larger of the command
// clients and the idle connections: each idle connection logs in as a user
// of its own, as on a real server (1,000 sessions of one account would
// weigh on per-account structures instead).
func accounts(o options) []string {
	out := []string{"admin"}
	for i := range accountCount(o) {
		out = append(out, fmt.Sprintf("bench%d", i))
	}
	return out
}

func accountCount(o options) int { return max(users, o.idle) }

// memory is resident memory in bytes: all of it, and the anonymous part
// (heap, stacks: what is private to the process, as opposed to the pages of
// its executable and libraries, which are clean and shared).
type memory struct{ rss, anon int64 }

// treeRSS is the resident memory of pids and their descendants (ejabberd's
// beam.smp has helper children), from /proc.
func treeRSS(pids ...int) (memory, error) {
	children := map[int][]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so cut at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		child, _ := strconv.Atoi(strings.Fields(s)[0])
		parent, _ := strconv.Atoi(f[1])
		children[parent] = append(children[parent], child)
	}
	var total memory
	queue := slices.Clone(pids)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		m, err := status(p)
		if err != nil {
			if slices.Contains(pids, p) {
				return total, err
			}
			continue
		}
		total.rss += m.rss
		total.anon += m.anon
		queue = append(queue, children[p]...)
	}
	return total, nil
}

// status reads VmRSS and RssAnon of one process.
func status(pid int) (memory, error) {
	var m memory
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := 0
	for sc.Scan() {
		key, v, _ := strings.Cut(sc.Text(), ":")
		var into *int64
		switch key {
		case "VmRSS":
			into = &m.rss
		case "RssAnon":
			into = &m.anon
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("process %d: %s: %w", pid, key, err)
		}
		*into = kb * 1024
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("no VmRSS and RssAnon for process %d", pid)
	}
	return m, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// machine describes the hardware and system.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	debian, _ := os.ReadFile("/etc/debian_version")
	return fmt.Sprintf("%d × %s, Linux %s, Debian %s", runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), strings.TrimSpace(string(debian)))
}

// versions names what ran.
func versions(o options) string {
	out := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	adhocd := out("git", "describe", "--always", "--dirty")
	v := fmt.Sprintf("adhocd %s (%s), ejabberd %s, Prosody %s",
		adhocd, out("go", "env", "GOVERSION"),
		out("dpkg-query", "-W", "-f", "${Version}", "ejabberd"),
		out("dpkg-query", "-W", "-f", "${Version}", "prosody"))
	if slices.ContainsFunc(o.servers, func(s string) bool { return servers[s].scaleOut }) {
		v += fmt.Sprintf(", PostgreSQL %s, Redis %s",
			out("dpkg-query", "-W", "-f", "${Version}", "postgresql-15"),
			out("dpkg-query", "-W", "-f", "${Version}", "redis-server"))
	}
	return v
}

type report struct {
	machine, versions string
	results           map[string]*result
	o                 options
}

func (r report) write(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s\n\nVersions: %s\n\n", r.machine, r.versions)
	fmt.Fprintf(w, "Each server alone on the machine with the load generator; %s per run; no TLS; SASL PLAIN but for the login row.\n\n", r.o.duration)
	var cols []string
	for _, s := range r.o.servers {
		if r.results[s] != nil {
			cols = append(cols, s)
		}
	}
	// The ratio columns, each against adhocd of the same run.
	peers := []string{}
	for _, s := range cols {
		if s != "adhocd" && r.results["adhocd"] != nil {
			peers = append(peers, s)
		}
	}
	fmt.Fprint(w, "| workload |")
	for _, s := range cols {
		fmt.Fprintf(w, " %s |", servers[s].display)
	}
	for _, p := range peers {
		if servers[p].scaleOut {
			fmt.Fprintf(w, " %s ÷ adhocd |", servers[p].display)
		} else {
			fmt.Fprintf(w, " adhocd ÷ %s |", servers[p].display)
		}
	}
	fmt.Fprint(w, "\n|---|")
	for range len(cols) + len(peers) {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	row := func(label string, value func(*result) (float64, bool), format func(float64) string) {
		fmt.Fprintf(w, "| %s |", label)
		for _, s := range cols {
			if v, ok := value(r.results[s]); ok {
				fmt.Fprintf(w, " %s |", format(v))
			} else {
				fmt.Fprint(w, " — |")
			}
		}
		var a float64
		aok := false
		if len(peers) > 0 {
			a, aok = value(r.results["adhocd"])
		}
		for _, p := range peers {
			v, ok := value(r.results[p])
			switch {
			case ok && aok && servers[p].scaleOut && a > 0:
				fmt.Fprintf(w, " ×%.2f |", v/a)
			case ok && aok && !servers[p].scaleOut && v > 0:
				fmt.Fprintf(w, " ×%.2f |", a/v)
			default:
				fmt.Fprint(w, " — |")
			}
		}
		fmt.Fprintln(w)
	}
	perSec := func(v float64) string { return group(v) + "/s" }
	ms := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	for _, c := range r.o.clients {
		row(fmt.Sprintf("one-stage command, %d client(s)", c), func(x *result) (float64, bool) {
			if b := x.oneStage[c]; b != nil {
				return b.ReqPerSec, true
			}
			return 0, false
		}, perSec)
		row(fmt.Sprintf("… p99 latency, %d client(s)", c), func(x *result) (float64, bool) {
			if b := x.oneStage[c]; b != nil {
				return b.Latency["p99"], true
			}
			return 0, false
		}, ms)
	}
	top := r.o.clients[len(r.o.clients)-1]
	row(fmt.Sprintf("three-stage wizard, %d clients: flows", top), func(x *result) (float64, bool) {
		return x.flow.flowsPerSec(), x.flow != nil
	}, perSec)
	row(fmt.Sprintf("… its requests (4 per flow), %d clients", top), func(x *result) (float64, bool) {
		return x.flow.reqPerSec(), x.flow != nil
	}, perSec)
	row(fmt.Sprintf("chat messages between pairs, %d clients (%d pairs): delivered", top, top/2), func(x *result) (float64, bool) {
		return x.chat.msgPerSec(), x.chat != nil
	}, perSec)
	row(fmt.Sprintf("… p99 delivery latency, %d clients", top), func(x *result) (float64, bool) {
		if x.chat == nil {
			return 0, false
		}
		return x.chat.Latency["p99"], true
	}, ms)
	row(fmt.Sprintf("SCRAM-SHA-1 logins (4096 iterations), %d clients", r.o.loginClients), func(x *result) (float64, bool) {
		return x.logins.flowsPerSec(), x.logins != nil
	}, perSec)
	megabytes := func(v float64) string { return fmt.Sprintf("%.1f MB", v) }
	row("idle RSS", func(x *result) (float64, bool) { return mb(x.idle.rss), true }, megabytes)
	row("… of which private (anonymous)", func(x *result) (float64, bool) { return mb(x.idle.anon), true }, megabytes)
	row(fmt.Sprintf("RSS per 1,000 idle authenticated connections (%d held)", r.o.idle), func(x *result) (float64, bool) {
		return mb(x.idleConn) * 1000 / float64(r.o.idle), x.idleConn != 0
	}, megabytes)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Prosody 0.12 has no get-online-users-num: its one-stage rows run modules#list, its lightest admin command. The ceiling answers every request with a canned reply after tokenising it with encoding/xml; the peers have no multi-stage command, so the wizard rows are adhocd's alone. The ceiling routes no messages.")
	if slices.ContainsFunc(cols, func(s string) bool { return servers[s].scaleOut }) {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "adhocd on PostgreSQL and the cluster run on a PostgreSQL 15 of their own (durable: PostgreSQL's defaults), started for them on this machine; the cluster's two replicas share it and a Redis. Every workload's connections alternate between the replicas: in the chat row the two clients of each pair are on different replicas, so that every message crosses between them through Redis. Their ratio columns are theirs ÷ adhocd's, the single node on its bbolt file; their memory rows count the adhocd processes alone (both replicas together), not PostgreSQL or Redis; their command sessions are kept in the database, so their memory is not measured.")
	}
	for _, s := range cols {
		if b := r.results[s].chat; b != nil && (b.Delivered != b.Sent || len(b.Errors) > 0) {
			fmt.Fprintf(w, "\n%s's chat run: %d messages sent, %d delivered, errors %v.\n", servers[s].display, b.Sent, b.Delivered, b.Errors)
		}
	}
	if a := r.results["adhocd"]; a != nil && a.sessionCost > 0 {
		fmt.Fprintf(w, "\nadhocd command sessions: %d open sessions cost %.2f KiB of live heap each (+%.1f MB); %d more, past adhoc.max_sessions (10000), leave it at +%.1f MB, as the LRU evicts the oldest.\n",
			r.o.sessions, a.sessionCost/1024, mb(a.sessionHeap[0]), r.o.sessions, mb(a.sessionHeap[1]))
	}
	r.targets(w, top)
}

// targets checks the acceptance ratios on this run's figures.
func (r report) targets(w io.Writer, top int) {
	a, e, p, c := r.results["adhocd"], r.results["ejabberd"], r.results["prosody"], r.results["ceiling"]
	if a == nil || a.oneStage[top] == nil {
		return
	}
	at := a.oneStage[top]
	fmt.Fprintln(w, "\nTargets:")
	check := func(label string, ok bool, detail string) {
		mark := "met"
		if !ok {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "- %s: %s (%s)\n", label, mark, detail)
	}
	if e != nil && e.oneStage[top] != nil {
		et := e.oneStage[top]
		check(fmt.Sprintf("≥ 2× ejabberd at %d clients, lower p99", top), at.ReqPerSec >= 2*et.ReqPerSec && at.Latency["p99"] < et.Latency["p99"],
			fmt.Sprintf("×%.2f, p99 %.2f vs %.2f ms", at.ReqPerSec/et.ReqPerSec, at.Latency["p99"], et.Latency["p99"]))
	}
	if p != nil && p.oneStage[top] != nil {
		pt := p.oneStage[top]
		check(fmt.Sprintf("≥ 5× Prosody at %d clients, lower p99", top), at.ReqPerSec >= 5*pt.ReqPerSec && at.Latency["p99"] < pt.Latency["p99"],
			fmt.Sprintf("×%.2f, p99 %.2f vs %.2f ms", at.ReqPerSec/pt.ReqPerSec, at.Latency["p99"], pt.Latency["p99"]))
		check("idle RSS below Prosody's", a.idle.rss < p.idle.rss, fmt.Sprintf("%.1f vs %.1f MB; private %.1f vs %.1f MB",
			mb(a.idle.rss), mb(p.idle.rss), mb(a.idle.anon), mb(p.idle.anon)))
		if a.idleConn != 0 && p.idleConn != 0 {
			check("RSS per 1,000 idle connections below Prosody's", a.idleConn < p.idleConn,
				fmt.Sprintf("%.1f vs %.1f MB", mb(a.idleConn)*1000/float64(r.o.idle), mb(p.idleConn)*1000/float64(r.o.idle)))
		}
	}
	if c != nil && c.oneStage[top] != nil {
		ct := c.oneStage[top]
		check("≥ 40% of the encoding/xml ceiling", at.ReqPerSec >= 0.4*ct.ReqPerSec, fmt.Sprintf("%.0f%%", 100*at.ReqPerSec/ct.ReqPerSec))
	}
	if a.sessionCost > 0 {
		// Unbounded, the second round would double the growth; held within
		// the cap, it adds only the evicted ids' tombstones (also capped).
		bounded := a.sessionHeap[1]-a.sessionHeap[0] < a.sessionHeap[0]/4
		check(fmt.Sprintf("%d command sessions held within adhoc.max_sessions", r.o.sessions), bounded,
			fmt.Sprintf("%.2f KiB each; live heap +%.1f MB, then +%.1f MB after as many again", a.sessionCost/1024, mb(a.sessionHeap[0]), mb(a.sessionHeap[1])))
	}
}

func (b *bench) flowsPerSec() float64 {
	if b == nil {
		return 0
	}
	return b.FlowsPerSec
}

func (b *bench) msgPerSec() float64 {
	if b == nil {
		return 0
	}
	return b.MsgPerSec
}

func (b *bench) reqPerSec() float64 {
	if b == nil {
		return 0
	}
	return b.ReqPerSec
}

// group writes v rounded with thousands separated by commas.
func group(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}
