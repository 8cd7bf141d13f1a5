// Command adhocbench loads an XMPP server with XEP-0050 ad-hoc command
// executions, logins or chat messages, and reports their throughput and
// latency. It speaks to any server (adhocd, Prosody, ejabberd), so that they
// can be compared on the same workload.
//
//	adhocbench --server 127.0.0.1:5222 --domain localhost --users 'bench%d' --password pw \
//	    --clients 16 --duration 10s --node http://jabber.org/protocol/admin#get-online-users-num
//
// Each of --clients connections logs in as its own user (--users is a
// pattern with %d, numbered from 0; one user for all with no %d) with SASL
// PLAIN or SCRAM-SHA-1/256 (--mech), over STARTTLS or not (--tls), binds,
// then runs the command node again and again: one stage (execute) or, with
// --flow, a multi-stage flow, e.g. --flow 'next:name=Ann,color=red;next:contact=a@b;complete:'.
// A reply counts only when it is the result with the request's id; error
// replies are counted by condition. --idle N instead opens N connections,
// logs them in and holds them, printing the count, until interrupted or
// --duration ends. --logins measures logins instead: each connection logs
// in, binds and closes, again and again, and the report counts logins (a
// client keeps its SCRAM salted password between logins, as real clients
// do, so the key derivation is the server's cost alone). --chat measures
// chat messages between pairs of clients instead: client 2k and client
// 2k+1 (--clients must be even) are partners, each sends chat messages with
// a body to its partner's full JID, one at a time, and sends the next when
// the partner has answered the last, answering the partner's own meanwhile;
// the report counts the messages sent and delivered (every original and
// every answer), the delivery latency of each, measured by its receiver
// from the time of sending carried in the message's id, and the error
// stanzas received, by condition. --count is then originals per client.
// --json prints the report as JSON.
//
// --server may name several servers, separated by commas: replicas of one
// domain (an adhocd cluster). Connection i then connects to the (i mod
// n)-th, so that every workload's connections are spread evenly over them,
// and with --chat the two partners of each pair (2k and 2k+1) are on
// different servers, every message crossing from one to another.
//
// The client is written on encoding/xml directly rather than on an XMPP
// library so that the load generator costs as little CPU as possible on a
// machine whose cores it shares with the server under test; the chat loop
// goes further and reads the stream with a small tag scanner (nextTag).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	domain, users, password, mech, node, flow string
	servers                                   []string // --server, split at commas
	tls, insecure, asJSON, logins, chat       bool
	clients, count, idle                      int
	duration, timeout                         time.Duration
	scram                                     *scramClients
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "adhocbench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	o := options{scram: &scramClients{}}
	fs := flag.NewFlagSet("adhocbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "127.0.0.1:5222", "host:port of the server, or of several (comma-separated): connection i uses the (i mod n)-th")
	fs.StringVar(&o.domain, "domain", "localhost", "the XMPP domain")
	fs.StringVar(&o.users, "users", "bench%d", "user name, or pattern with %d numbered per connection")
	fs.StringVar(&o.password, "password", "", "the users' password")
	fs.StringVar(&o.mech, "mech", "PLAIN", "SASL mechanism: PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256")
	fs.BoolVar(&o.tls, "tls", false, "negotiate STARTTLS")
	fs.BoolVar(&o.insecure, "insecure", true, "do not verify the server certificate (with --tls)")
	fs.StringVar(&o.node, "node", "http://jabber.org/protocol/admin#get-online-users-num", "command node to execute")
	fs.StringVar(&o.flow, "flow", "", "multi-stage flow: action:var=value,...;action:... after execute")
	fs.IntVar(&o.clients, "clients", 1, "connections running commands")
	fs.IntVar(&o.count, "count", 0, "executions per connection (0: until --duration)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (with --count 0, or --idle)")
	fs.BoolVar(&o.logins, "logins", false, "measure logins: each connection logs in, binds and closes, again and again")
	fs.BoolVar(&o.chat, "chat", false, "measure chat messages between pairs of clients (2k and 2k+1)")
	fs.IntVar(&o.idle, "idle", 0, "open this many idle logged-in connections and hold them")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long one request may take")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := parseServers(*server)
	if err != nil {
		return err
	}
	o.servers = servers
	flow, err := parseFlow(o.flow)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.idle > 0 {
		return holdIdle(ctx, o, stdout, stderr)
	}
	var rep *report
	if o.chat {
		rep, err = loadChat(ctx, o, stderr)
	} else {
		rep, err = load(ctx, o, flow, stderr)
	}
	if err != nil {
		return err
	}
	if o.asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	rep.print(stdout)
	return nil
}

// step is one stage of a flow after execute: an action and the values.
type step struct {
	action string
	values [][2]string
}

func parseFlow(s string) ([]step, error) {
	if s == "" {
		return nil, nil
	}
	var out []step
	for _, part := range strings.Split(s, ";") {
		action, fields, _ := strings.Cut(part, ":")
		switch action {
		case "next", "prev", "complete", "execute":
		default:
			return nil, fmt.Errorf("--flow: unknown action %q", action)
		}
		st := step{action: action}
		for _, f := range strings.Split(fields, ",") {
			if f == "" {
				continue
			}
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("--flow: %q is not var=value", f)
			}
			st.values = append(st.values, [2]string{k, v})
		}
		out = append(out, st)
	}
	return out, nil
}

// parseServers splits --server at its commas.
func parseServers(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("--server: %q is not host:port", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// server is the address connection i connects to.
func (o options) server(i int) string { return o.servers[i%len(o.servers)] }

func (o options) user(i int) string {
	if strings.Contains(o.users, "%d") {
		return fmt.Sprintf(o.users, i)
	}
	return o.users
}

// report is what a load run measured.
type report struct {
	Workload    string         `json:"workload"` // command, login or chat
	Clients     int            `json:"clients"`
	Servers     int            `json:"servers"` // the connections spread over them (--server)
	Node        string         `json:"node"`
	Stages      int            `json:"stages_per_flow"`
	Seconds     float64        `json:"seconds"`
	Flows       int64          `json:"flows"`
	Requests    int64          `json:"requests"`
	FlowsPerSec float64        `json:"flows_per_second"`
	ReqPerSec   float64        `json:"requests_per_second"`
	P50, P90    float64        `json:"-"`
	Latency     map[string]any `json:"latency_ms"`
	Errors      map[string]int `json:"errors"`
	LoginErrors int            `json:"login_errors"`
	// The chat workload's: pairs of clients, chat messages sent (originals
	// and answers) and delivered, and delivered messages per second; Flows
	// counts originals answered.
	Pairs     int     `json:"pairs,omitempty"`
	Sent      int64   `json:"messages_sent,omitempty"`
	Delivered int64   `json:"messages_delivered,omitempty"`
	MsgPerSec float64 `json:"messages_per_second,omitempty"`
}

func (r *report) print(w io.Writer) {
	what := "request"
	if r.Workload == "chat" {
		what = "delivery"
		fmt.Fprintf(w, "%d clients (%d pairs), %s%s, %.1f s\n", r.Clients, r.Pairs, r.Node, r.across(), r.Seconds)
		fmt.Fprintf(w, "messages: %d sent, %d delivered (%.0f/s); answered originals: %d (%.0f/s)\n", r.Sent, r.Delivered, r.MsgPerSec, r.Flows, r.FlowsPerSec)
	} else {
		fmt.Fprintf(w, "%d clients%s, %s, %d stage(s) per flow, %.1f s\n", r.Clients, r.across(), r.Node, r.Stages, r.Seconds)
		fmt.Fprintf(w, "flows: %d (%.0f/s); requests: %d (%.0f/s)\n", r.Flows, r.FlowsPerSec, r.Requests, r.ReqPerSec)
	}
	fmt.Fprintf(w, "%s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", what, r.Latency["p50"], r.Latency["p90"], r.Latency["p99"], r.Latency["max"])
	if len(r.Errors) > 0 || r.LoginErrors > 0 {
		fmt.Fprintf(w, "errors: %v, failed logins: %d\n", r.Errors, r.LoginErrors)
	}
}

// across names the servers the connections were spread over, if several.
func (r *report) across() string {
	if r.Servers < 2 {
		return ""
	}
	return fmt.Sprintf(" across %d servers", r.Servers)
}

// load runs the workload and measures it.
func load(ctx context.Context, o options, flow []step, stderr io.Writer) (*report, error) {
	if o.count == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	results := make([]tally, o.clients)
	var requests atomic.Int64
	var wg sync.WaitGroup
	ready := make(chan struct{})
	var loggedIn sync.WaitGroup
	loggedIn.Add(o.clients)
	for i := 0; i < o.clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := &results[i]
			res.errors = map[string]int{}
			observe := func(d time.Duration) {
				res.lat = append(res.lat, d)
				requests.Add(1)
			}
			if o.logins {
				loggedIn.Done()
				<-ready
				res.flows = loginLoop(ctx, o, i, res.errors, observe)
				return
			}
			c, err := dial(ctx, o, i)
			loggedIn.Done()
			if err != nil {
				res.login = err
				return
			}
			defer c.close()
			<-ready
			for n := 0; o.count == 0 || n < o.count; n++ {
				if ctx.Err() != nil {
					return
				}
				ok := c.runFlow(ctx, o, flow, res.errors, observe)
				if ok {
					res.flows++
				}
				if c.broken {
					return
				}
			}
		}(i)
	}
	loggedIn.Wait()
	start := time.Now()
	close(ready)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	progress(stderr, "requests", &requests, done)
	elapsed := time.Since(start).Seconds()
	what, workload := o.node, "command"
	if o.logins {
		what, workload = "login "+o.mech, "login"
	}
	rep := &report{Workload: workload, Clients: o.clients, Servers: len(o.servers), Node: what, Stages: 1 + len(flow), Seconds: elapsed, Errors: map[string]int{}}
	var all []time.Duration
	for _, r := range results {
		all = rep.add(r, all, stderr)
	}
	if rep.LoginErrors == o.clients {
		return nil, errors.New("no client could log in")
	}
	rep.Requests = int64(len(all))
	rep.ReqPerSec = float64(rep.Requests) / elapsed
	rep.finish(all, elapsed)
	return rep, nil
}

// tally is what one client of a workload counted.
type tally struct {
	lat    []time.Duration // latency of each request, login or delivery
	flows  int64           // flows, logins or answered originals done
	errors map[string]int  // by condition
	login  error
}

// add counts one client's tally into the report and returns all the
// latencies so far.
func (rep *report) add(t tally, all []time.Duration, stderr io.Writer) []time.Duration {
	if t.login != nil {
		rep.LoginErrors++
		fmt.Fprintln(stderr, "login:", t.login)
	}
	rep.Flows += t.flows
	for k, v := range t.errors {
		rep.Errors[k] += v
	}
	return append(all, t.lat...)
}

// finish sets the rates and latencies of a run that took elapsed seconds.
func (rep *report) finish(all []time.Duration, elapsed float64) {
	rep.FlowsPerSec = float64(rep.Flows) / elapsed
	rep.Latency = latencies(all)
}

// latencies sorts all and returns its p50, p90, p99 and maximum in
// milliseconds (all zero when it is empty).
func latencies(all []time.Duration) map[string]any {
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	return map[string]any{"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1)}
}

// progress prints the count n of what has been done and its rate, once a
// second on one line of w, until done is closed.
func progress(w io.Writer, what string, n *atomic.Int64, done <-chan struct{}) {
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := int64(0)
	for {
		select {
		case <-done:
			fmt.Fprintln(w)
			return
		case <-tick.C:
			v := n.Load()
			fmt.Fprintf(w, "\r%6.0f s  %8d %s  %8d/s   ", time.Since(start).Seconds(), v, what, v-last)
			last = v
		}
	}
}

// holdIdle logs in o.idle connections and holds them.
func holdIdle(ctx context.Context, o options, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var conns []*client
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	for i := 0; i < o.idle; i++ {
		c, err := dial(ctx, o, i)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if (i+1)%100 == 0 {
			fmt.Fprintf(stderr, "\r%d idle connections", i+1)
		}
	}
	fmt.Fprintf(stderr, "\r%d idle connections, held for %s\n", len(conns), o.duration)
	if o.asJSON {
		_ = json.NewEncoder(stdout).Encode(map[string]int{"idle_connections": len(conns)})
	} else {
		fmt.Fprintf(stdout, "holding %d idle connections\n", len(conns))
	}
	<-ctx.Done()
	return nil
}
