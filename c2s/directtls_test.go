package c2s_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestDirectTLS: on c2s.direct_tls_listen the connection begins with TLS
// (XEP-0368), with ALPN xmpp-client agreed when the client offers it and a
// client that offers none served too; the stream opens secured (no
// STARTTLS offered, SASL at once) and logs in. A client that speaks plain
// XML there gets no stream.
func TestDirectTLS(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.C2S.DirectTLSListen = "127.0.0.1:0" })
	srv.AddUser("alice", "pw")
	addr := srv.DirectTLSAddr().String()
	for _, alpn := range [][]string{{"xmpp-client"}, nil} {
		cfg := srv.ClientTLS.Clone()
		cfg.NextProtos = alpn
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			t.Fatalf("direct TLS with ALPN %v: %v", alpn, err)
		}
		defer c.Close()
		if got := c.ConnectionState().NegotiatedProtocol; alpn != nil && got != "xmpp-client" {
			t.Errorf("ALPN agreed %q, want xmpp-client", got)
		}
		raw := servertest.NewRaw(t, c)
		raw.Write(servertest.Header)
		features := raw.Expect(`</stream:features>`)
		if strings.Contains(features, "starttls") || !strings.Contains(features, "<mechanism>PLAIN</mechanism>") {
			t.Fatalf("features of a direct TLS stream: %s", features)
		}
		raw.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) + `</auth>`)
		raw.Expect(`<success`)
	}
	plain, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _ = plain.Write([]byte(servertest.Header))
	_ = plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(plain).ReadString('>')
	if strings.Contains(line, "stream") {
		t.Errorf("a plain-text client on the direct TLS port got a stream: %q", line)
	}
}
