// Command ceiling is the benchmark's yardstick: a TCP server that does no
// XMPP work at all. It answers adhocbench's login with canned replies, then
// tokenises every request with encoding/xml, as adhocd does, and answers it
// with a canned result of the same size as adhocd's reply to
// get-online-users-num, carrying the request's id. What adhocd achieves on
// the same workload, as a fraction of this server's rate, is the share of
// the machine's loopback-and-encoding/xml ceiling it reaches.
//
//	ceiling --listen 127.0.0.1:45222
package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:45222", "host:port to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *listen); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	slog.Info("listening", "addr", ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			if err := answer(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				slog.Debug("connection", "err", err)
			}
		}()
	}
}

const (
	header       = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='c' from='localhost'>`
	saslFeatures = `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
	bindFeatures = `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`
	// The reply's body after the id attribute: adhocd's answer to
	// get-online-users-num, byte for byte but for the session id.
	replyHead = `<iq xmlns="jabber:client" type="result" to="bench0@localhost/c" from="localhost" id="`
	replyTail = `"><command xmlns="http://jabber.org/protocol/commands" node="http://jabber.org/protocol/admin#get-online-users-num" sessionid="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" status="completed" xml:lang="en"><x xmlns="jabber:x:data" type="result"><field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/admin</value></field><field type="text-single" var="onlineusersnum" label="The number of online users"><value>1</value></field></x></command></iq>`
)

// answer serves one connection: every top-level element is read whole
// through encoding/xml's tokeniser and answered by kind.
func answer(c net.Conn) error {
	dec := xml.NewDecoder(bufio.NewReaderSize(c, 4<<10))
	w := bufio.NewWriterSize(c, 4<<10)
	depth := 0
	var id, name string
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Local == "stream" {
				_, _ = w.WriteString(header)
				if name == "auth" {
					_, _ = w.WriteString(bindFeatures)
				} else {
					_, _ = w.WriteString(saslFeatures)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				continue
			}
			depth++
			if depth == 1 {
				name, id = t.Name.Local, ""
				for _, a := range t.Attr {
					if a.Name.Local == "id" {
						id = a.Value
					}
				}
			}
		case xml.EndElement:
			if depth == 0 {
				return io.EOF // </stream:stream>
			}
			depth--
			if depth > 0 {
				continue
			}
			switch name {
			case "auth":
				_, _ = w.WriteString(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
			case "iq":
				_, _ = w.WriteString(replyHead)
				_ = xml.EscapeText(w, []byte(id))
				_, _ = w.WriteString(replyTail)
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}
