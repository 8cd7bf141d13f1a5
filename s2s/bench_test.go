package s2s_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// BenchmarkMessageRoundTrip measures a chat message from alice to bob and
// bob's answer back, over TLS on loopback: "local" with both on a.test,
// the reference; "federated" with bob on b.test, each message crossing a
// server-to-server stream (dialback, TLS) that the first one set up. The
// rate limits of clients and of inbound streams are lifted in both, so
// that the figures are the path's and not the pacing's; the ratio of the
// two, measured in one run, is the cost of federation.
func BenchmarkMessageRoundTrip(b *testing.B) {
	unpaced := func(c *config.Config) {
		servertest.NoRateLimits(c)
		c.S2S.Limits.StanzasPerSecond, c.S2S.Limits.BurstStanzas = 1_000_000, 1_000_000
	}
	b.Run("local", func(b *testing.B) {
		a, _ := servertest.Federated(b, func(a, c *config.Config) { unpaced(a); unpaced(c) })
		roundTrips(b, online(b, a, "alice", "wonderland"), online(b, a, "bob", "builder"), "bob@a.test")
	})
	b.Run("federated", func(b *testing.B) {
		a, c := servertest.Federated(b, func(a, c *config.Config) { unpaced(a); unpaced(c) })
		roundTrips(b, online(b, a, "alice", "wonderland"), online(b, c, "bob", "builder"), "bob@b.test")
	})
}

// roundTrips has alice send b.N messages to bob, each answered before the
// next; the first exchange, which sets up any stream, is not timed.
func roundTrips(b *testing.B, alice, bob *servertest.Client, bobJID string) {
	ctx := context.Background()
	exchange := func(body string) {
		if err := alice.SendRaw(ctx, `<message type='chat' to='`+bobJID+`'><body>`+body+`</body></message>`); err != nil {
			b.Fatal(err)
		}
		got := bob.Next(crossing, func(s servertest.Stanza) bool { return s.Name == "message" && strings.Contains(s.XML, ">"+body+"<") })
		if err := bob.SendRaw(ctx, `<message type='chat' to='`+got.Attrs["from"]+`'><body>re`+body+`</body></message>`); err != nil {
			b.Fatal(err)
		}
		alice.Next(crossing, func(s servertest.Stanza) bool { return s.Name == "message" && strings.Contains(s.XML, ">re"+body+"<") })
	}
	exchange("warm-up")
	i := 0
	for b.Loop() {
		i++
		exchange(strconv.Itoa(i))
	}
}
