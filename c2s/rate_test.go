package c2s_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// pings returns n pings to the server, with ids prefix-0 … prefix-(n-1).
func pings(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `<iq type='get' id='%s-%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, prefix, i)
	}
	return b.String()
}

// answered counts the results among what a client received for the pings
// with ids prefix-N.
func answered(got, prefix string) int {
	return len(regexp.MustCompile(`<iq [^>]*id="`+prefix+`-\d+"[^>]*type="result"|<iq [^>]*type="result"[^>]*id="`+prefix+`-\d+"`).FindAllString(got, -1))
}

// waitAnswered waits until all n pings with ids prefix-N are answered and
// returns how long that took; it fails the test past timeout.
func waitAnswered(t *testing.T, rd *reader, prefix string, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := answered(rd.String(), prefix)
		if got == n {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%d of %d %s pings answered within %s", got, n, prefix, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFloodIsPaced: a client that sends faster than
// limits.rate.stanzas_per_second is paced, not cut off: every one of its
// stanzas is answered, none dropped, and the last only after the time the
// rate allows (a lower bound, which pacing guarantees; the upper one is
// generous). Meanwhile another client's pings are answered promptly.
func TestFloodIsPaced(t *testing.T) {
	const rate, burst, n = 100, 50, 300
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.Rate = config.Rate{StanzasPerSecond: rate, BurstStanzas: burst}
	})
	srv.AddUser("flood", "pw")
	srv.AddUser("calm", "pw")
	flood := srv.RawLogin("flood", "pw", "f")
	floodIn := readInBackground(flood)
	calm := srv.RawLogin("calm", "pw", "c")
	calmIn := readInBackground(calm)

	start := time.Now()
	go flood.Write(pings("flood", n))
	// While the flood is paced, the calm client is answered at once.
	var worst time.Duration
	for i := range 10 {
		calm.Write(pings(fmt.Sprintf("calm%d", i), 1))
		worst = max(worst, waitAnswered(t, calmIn, fmt.Sprintf("calm%d", i), 1, 5*time.Second))
		time.Sleep(100 * time.Millisecond)
	}
	if got := answered(floodIn.String(), "flood"); got == n {
		t.Fatalf("all %d flood pings were answered within a second: not paced", n)
	}
	waitAnswered(t, floodIn, "flood", n, 30*time.Second)
	took := time.Since(start)
	// (n-burst)/rate = 2.5s at the least; 2s allows for clock granularity.
	if took < 2*time.Second {
		t.Fatalf("%d stanzas at %d/s (burst %d) went through in %s", n, rate, burst, took)
	}
	if worst > time.Second {
		t.Errorf("the calm client waited %s for a ping during the flood", worst)
	}
	if strings.Contains(floodIn.String(), "stream:error") {
		t.Fatalf("the paced client was cut off: %q", floodIn.String())
	}
	t.Logf("%d paced stanzas took %s (%.0f/s); slowest ping of another client meanwhile: %s", n, took, float64(n)/took.Seconds(), worst)
}

// TestBytesArePaced: limits.rate.bytes_per_second paces a client that sends
// large stanzas though few of them.
func TestBytesArePaced(t *testing.T) {
	const rate, burst = 64 << 10, 16 << 10
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.Rate = config.Rate{BytesPerSecond: rate, BurstBytes: burst}
	})
	srv.AddUser("big", "pw")
	big := srv.RawLogin("big", "pw", "b")
	bigIn := readInBackground(big)
	// Messages to itself of 4 KB each, about 200 KB: the last one is
	// delivered back once the byte bucket let them all through.
	const n = 50
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `<message to='big@localhost/b' id='big-%d'><body>%s</body></message>`, i, strings.Repeat("x", 4000))
	}
	msgs := b.String()
	start := time.Now()
	go big.Write(msgs)
	bigIn.waitFor(t, `id="big-`+fmt.Sprint(n-1)+`"`, 30*time.Second)
	took := time.Since(start)
	if least := time.Duration(float64(len(msgs)-burst) / rate * 0.8 * float64(time.Second)); took < least {
		t.Fatalf("%d bytes at %d B/s (burst %d) went through in %s (at least %s)", len(msgs), rate, burst, took, least)
	}
	t.Logf("%d bytes took %s (%.0f B/s)", len(msgs), took, float64(len(msgs))/took.Seconds())
}

// TestAccountRateAcrossResources: limits.rate.account_stanzas_per_second
// is shared by the resources of one account: two resources flooding
// together take as long as one sending all their stanzas would, and
// another account is not held by them.
func TestAccountRateAcrossResources(t *testing.T) {
	const rate, burst, each = 50, 20, 100
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.Rate = config.Rate{AccountStanzasPerSecond: rate, AccountBurstStanzas: burst}
	})
	srv.AddUser("multi", "pw")
	srv.AddUser("other", "pw")
	res := []*servertest.Raw{srv.RawLogin("multi", "pw", "one"), srv.RawLogin("multi", "pw", "two")}
	ins := []*reader{readInBackground(res[0]), readInBackground(res[1])}
	other := srv.RawLogin("other", "pw", "o")
	otherIn := readInBackground(other)
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Write(pings("multi", each))
		}()
	}
	// The other account has a bucket of its own: its pings, within its
	// burst, are answered without waiting for the shared one.
	time.Sleep(200 * time.Millisecond)
	other.Write(pings("other", burst/2))
	otherTook := waitAnswered(t, otherIn, "other", burst/2, 5*time.Second)
	for i := range res {
		waitAnswered(t, ins[i], "multi", each, 30*time.Second)
	}
	all := time.Since(start)
	wg.Wait()
	// 2*each stanzas at rate with burst: (200-20)/50 = 3.6s at the least,
	// where each resource alone would have needed 1.6s.
	if all < 2500*time.Millisecond {
		t.Fatalf("%d stanzas of one account at %d/s (burst %d) went through in %s", 2*each, rate, burst, all)
	}
	if otherTook > time.Second {
		t.Errorf("another account waited %s for %d pings", otherTook, burst/2)
	}
	t.Logf("two resources' %d stanzas took %s; another account's %d took %s", 2*each, all, burst/2, otherTook)
}
