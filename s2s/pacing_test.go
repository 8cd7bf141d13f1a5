package s2s_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics/metricstest"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// isPaced matches the messages of alice that sendPaced sends.
func isPaced(s servertest.Stanza) bool {
	return s.Name == "message" && strings.HasPrefix(s.Attrs["from"], "alice@a.test/") && strings.Contains(s.XML, ">paced ")
}

// warmUp has alice send bob a first message, which sets the streams up.
func warmUp(t *testing.T, alice, bob *servertest.Client) {
	t.Helper()
	if err := alice.SendRaw(servertest.Context(t, crossing), "<message to='bob@b.test' type='chat' id='w'><body>warm-up</body></message>"); err != nil {
		t.Fatal(err)
	}
	bob.Next(crossing, isMessage("alice@a.test/", "warm-up"))
}

// sendPaced has alice send n messages to bob, numbered, gap apart, and
// returns how long bob took to receive them all, after checking that each
// came, once, in order.
func sendPaced(t *testing.T, alice, bob *servertest.Client, n int, gap time.Duration) time.Duration {
	t.Helper()
	ctx := servertest.Context(t, 60*time.Second)
	start := time.Now()
	for i := range n {
		if i > 0 {
			time.Sleep(gap)
		}
		if err := alice.SendRaw(ctx, fmt.Sprintf("<message to='bob@b.test' type='chat' id='p%d'><body>paced %d</body></message>", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got, ok := bob.Wait(crossing, isPaced)
		if !ok {
			t.Fatalf("bob received %d of the %d messages", i, n)
		}
		if want := fmt.Sprintf(">paced %d</body>", i); !strings.Contains(got.XML, want) {
			t.Fatalf("message %d to arrive is %s", i, got.XML)
		}
	}
	return time.Since(start)
}

// TestInboundPacing: b.test reads the stream of a.test at
// s2s.limits.stanzas_per_second past its burst: 60 messages at 20 a second
// with a burst of 5 take about (60-5)/20 = 2.75 s to cross, and every one
// arrives, in order (a paced stream loses nothing).
func TestInboundPacing(t *testing.T) {
	const n, rate, burst = 60, 20, 5
	a, b := pair(t, func(_, b *config.Config) {
		b.S2S.Limits.StanzasPerSecond, b.S2S.Limits.BurstStanzas = rate, burst
	})
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	warmUp(t, alice, bob)                  // out of the timing
	time.Sleep(time.Second * burst / rate) // the bucket fills again
	took := sendPaced(t, alice, bob, n, 0)
	// Loose bounds: paced, but not stalled.
	if floor := 1500 * time.Millisecond; took < floor {
		t.Errorf("%d messages at %d/s (burst %d) crossed in %v: not paced (want at least %v)", n, rate, burst, took, floor)
	}
	if took > 20*time.Second {
		t.Errorf("%d messages at %d/s took %v", n, rate, took)
	}
	t.Logf("%d messages at %d/s, burst %d: %v", n, rate, burst, took)
}

// TestPacedStreamNotIdle: a pause longer than s2s.idle_timeout does not
// make the paced peer look idle: at one stanza a second and an idle
// timeout of 700 ms, b.test still reads every message of a.test, in order.
// They are sent apart, on a stream set up first, so that each pause ends
// with the next message still to be read from the connection: a stream
// whose idle deadline ran during the pause would be closed for idleness
// there, and the message lost.
func TestPacedStreamNotIdle(t *testing.T) {
	const n = 4
	a, b := pair(t, func(_, b *config.Config) {
		b.S2S.Limits.StanzasPerSecond, b.S2S.Limits.BurstStanzas = 1, 1
		b.S2S.IdleTimeout = config.Duration(700 * time.Millisecond)
	})
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	warmUp(t, alice, bob) // the next message must follow within the idle timeout
	took := sendPaced(t, alice, bob, n, 150*time.Millisecond)
	if took < time.Duration(n-2)*time.Second {
		t.Errorf("%d messages at 1/s (burst 1) crossed in %v: not paced", n, took)
	}
}

// TestFederationMetrics: with metrics on b.test (servertest.Federated
// gives its server options to b), the stanzas b exchanges with a.test, its
// streams and their authentication are counted under the label a.test,
// or under "other" with s2s.metrics_domains 0; a stanza for a domain
// never reached is bounced under "other".
func TestFederationMetrics(t *testing.T) {
	for _, c := range []struct {
		name    string
		domains int
		label   string
	}{
		{"own label", config.DefaultS2SMetricsDomains, "a.test"},
		{"metrics_domains 0", 0, "other"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tel := metricstest.New(t)
			a, b := servertest.Federated(t, func(_, b *config.Config) {
				b.S2S.MetricsDomains = c.domains
				b.S2S.Hosts["nowhere.test"] = servertest.FreeAddr(t)
			}, server.WithMeterProvider(tel.MeterProvider()))
			alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
			ctx := servertest.Context(t, 30*time.Second)
			if err := bob.SendRaw(ctx, "<message to='alice@a.test' type='chat' id='m1'><body>from b</body></message>"); err != nil {
				t.Fatal(err)
			}
			alice.Next(crossing, isMessage("bob@b.test/", "from b"))
			if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m2'><body>from a</body></message>"); err != nil {
				t.Fatal(err)
			}
			bob.Next(crossing, isMessage("alice@a.test/", "from a"))
			if err := bob.SendRaw(ctx, "<message to='x@nowhere.test' id='m3'><body>anyone?</body></message>"); err != nil {
				t.Fatal(err)
			}
			bob.Next(crossing, func(s servertest.Stanza) bool {
				return s.Name == "message" && s.Attrs["type"] == "error" && strings.Contains(s.XML, "remote-server-not-found")
			})

			mfs := metricstest.Gather(t, tel)
			for _, w := range []struct {
				name   string
				labels map[string]string
			}{
				{"adhocd_s2s_stanzas_total", map[string]string{"domain": c.label, "direction": "out"}},
				{"adhocd_s2s_stanzas_total", map[string]string{"domain": c.label, "direction": "in"}},
				{"adhocd_s2s_streams", map[string]string{"domain": c.label, "direction": "out"}},
				{"adhocd_s2s_streams", map[string]string{"domain": c.label, "direction": "in"}},
				{"adhocd_s2s_auth_total", map[string]string{"direction": "out", "method": "dialback", "outcome": "success"}},
				{"adhocd_s2s_auth_total", map[string]string{"direction": "in", "method": "dialback", "outcome": "success"}},
				{"adhocd_s2s_bounced_total", map[string]string{"domain": "other", "condition": "remote-server-not-found"}},
			} {
				if got := metricstest.Value(mfs, w.name, w.labels); got < 1 {
					t.Errorf("%s%v = %v, want at least 1", w.name, w.labels, got)
				}
			}
			for _, name := range []string{"adhocd_s2s_stanzas_total", "adhocd_s2s_streams", "adhocd_s2s_bounced_total"} {
				if got := metricstest.Value(mfs, name, map[string]string{"domain": "nowhere.test"}); got != 0 {
					t.Errorf("%s counts nowhere.test, which never authenticated: %v", name, got)
				}
				if c.label == "other" {
					if got := metricstest.Value(mfs, name, map[string]string{"domain": "a.test"}); got != 0 {
						t.Errorf("%s has a label a.test with metrics_domains 0: %v", name, got)
					}
				}
			}
			metricstest.Lint(t, mfs, "adhocd_s2s_")
		})
	}
}
