package main

import (
	"strings"
	"testing"
	"time"
)

// TestReportRatios: a peer's ratio column is adhocd's figure ÷ the peer's,
// a scale-out contender's is its own ÷ adhocd's (the single node of the
// same run), and a run without adhocd prints its figures with no ratios.
func TestReportRatios(t *testing.T) {
	chat := func(perSec, p99 float64) *result {
		return &result{oneStage: map[int]*bench{}, chat: &bench{Pairs: 8, MsgPerSec: perSec, Latency: map[string]float64{"p99": p99}},
			logins: &bench{FlowsPerSec: perSec / 10}}
	}
	o := options{servers: []string{"adhocd", "ejabberd", "adhocd-cluster"}, clients: []int{16}, duration: time.Second, idle: 1000, loginClients: 4}
	rep := report{o: o, results: map[string]*result{"adhocd": chat(1000, 2), "ejabberd": chat(500, 4), "adhocd-cluster": chat(250, 8)}}
	var b strings.Builder
	rep.write(&b)
	out := b.String()
	for _, want := range []string{
		"| adhocd | ejabberd | adhocd cluster, 2 replicas | adhocd ÷ ejabberd | adhocd cluster, 2 replicas ÷ adhocd |",
		"| chat messages between pairs, 16 clients (8 pairs): delivered | 1,000/s | 500/s | 250/s | ×2.00 | ×0.25 |",
		"| … p99 delivery latency, 16 clients | 2.00 ms | 4.00 ms | 8.00 ms | ×0.50 | ×4.00 |",
		"| SCRAM-SHA-1 logins (4096 iterations), 4 clients | 100/s | 50/s | 25/s | ×2.00 | ×0.25 |",
		"the two clients of each pair are on different replicas",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}

	o.servers = []string{"adhocd-pg"}
	rep = report{o: o, results: map[string]*result{"adhocd-pg": chat(400, 3)}}
	b.Reset()
	rep.write(&b)
	if want := "| chat messages between pairs, 16 clients (8 pairs): delivered | 400/s |\n"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in\n%s", want, b.String())
	}
}
