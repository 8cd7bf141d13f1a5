package server

import (
	"log/slog"
	"net"
)

// sendBufferListener sets the kernel send buffer (SO_SNDBUF) of each TCP
// connection it accepts to limits.socket_send_buffer, read at each accept so
// that a reload applies to the next connections. Without it Linux grows the
// buffer to 4 MiB for a client that does not read: bytes there are written
// as far as the outbound queue can tell, never reach max_outbound_bytes and
// are lost with the connection. It wraps the TCP listener under TLS, so one
// wrapper serves c2s and WebSocket.
type sendBufferListener struct {
	net.Listener
	size func() int
	log  *slog.Logger
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if n := l.size(); n > 0 {
		if tc, ok := nc.(*net.TCPConn); ok {
			if err := tc.SetWriteBuffer(n); err != nil {
				l.log.Debug("socket send buffer", "remote", nc.RemoteAddr(), "err", err)
			}
		}
	}
	return nc, nil
}

// withSendBuffer wraps ln (see sendBufferListener).
func (s *Server) withSendBuffer(ln net.Listener) net.Listener {
	return sendBufferListener{Listener: ln, size: func() int { return s.limits().SocketSendBuffer }, log: s.log}
}
