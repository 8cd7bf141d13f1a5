package c2s_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// BenchmarkLoginSCRAM measures a whole client login over loopback: TCP
// connect, STARTTLS (TLS 1.3 handshake), SCRAM-SHA-256 with 4096 iterations,
// resource binding, and closing the stream.
func BenchmarkLoginSCRAM(b *testing.B) {
	srv := servertest.Start(b)
	srv.AddUser("alice", "wonderland")
	b.ResetTimer()
	for b.Loop() {
		c, err := srv.DialErr("alice", "wonderland", "")
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		_ = c.Conn().Close()
	}
}

// BenchmarkMessageRoundTrip measures a chat message from alice to bob and
// bob's answer back, both clients logged in over TLS on loopback.
func BenchmarkMessageRoundTrip(b *testing.B) {
	_, alice, bob := servertest.TwoUsers(b, servertest.NoRateLimits)
	ctx := context.Background()
	for _, c := range []*servertest.Client{alice, bob} {
		if err := c.SendRaw(ctx, `<presence/>`); err != nil {
			b.Fatal(err)
		}
	}
	bob.Next(5*time.Second, func(s servertest.Stanza) bool { return s.Name == "presence" })
	alice.Next(5*time.Second, func(s servertest.Stanza) bool { return s.Name == "presence" })
	to := alice.LocalAddr().String()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		body := strconv.Itoa(i)
		if err := alice.SendRaw(ctx, `<message type='chat' to='bob@localhost'><body>`+body+`</body></message>`); err != nil {
			b.Fatal(err)
		}
		bob.Next(5*time.Second, func(s servertest.Stanza) bool { return strings.Contains(s.XML, ">"+body+"<") })
		if err := bob.SendRaw(ctx, `<message type='chat' to='`+to+`'><body>re`+body+`</body></message>`); err != nil {
			b.Fatal(err)
		}
		alice.Next(5*time.Second, func(s servertest.Stanza) bool { return strings.Contains(s.XML, ">re"+body+"<") })
	}
}
