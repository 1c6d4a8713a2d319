package mqttapi

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// WebSocketPath is where IoT Hub serves MQTT over WebSockets, on the HTTPS port 443
// (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub; amenzhinsky's WithWebSocket dials wss://{host}:443/$iothub/websocket).
const WebSocketPath = "/$iothub/websocket"

// wsListenerID names WebSocket sessions inside the broker, so Close ends them too.
const wsListenerID = "wss"

// WebSocketHandler serves MQTT over WebSockets (subprotocol "mqtt"). Mount it at
// WebSocketPath on the hub's HTTPS server: TLS is that server's; authentication, ACL and
// topic semantics are the same as on the MQTT port.
func (s *Server) WebSocketHandler() http.Handler {
	up := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Devices are not browsers; IoT Hub does not check Origin either.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.closed.Load() {
			http.Error(w, "the hub's MQTT endpoint is shutting down", http.StatusServiceUnavailable)
			return
		}
		c, err := up.Upgrade(w, r, nil) // writes its own 400 response on failure
		if err != nil {
			s.log.Info("MQTT WebSocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		defer c.Close()
		// The hijacked connection keeps whatever deadline the HTTPS server set; the CONNECT
		// gets the same bound as on the MQTT port (Options.ConnectTimeout).
		_ = c.UnderlyingConn().SetDeadline(time.Now().Add(s.opts.ConnectTimeout))
		// Blocks for the session's lifetime, like a listener's connection goroutine.
		if err := s.broker.EstablishConnection(wsListenerID, &wsConn{Conn: c.UnderlyingConn(), ws: c}); err != nil {
			s.log.Debug("MQTT WebSocket session ended", "remote", r.RemoteAddr, "err", err)
		}
	})
}

// wsConn carries the MQTT byte stream in binary WebSocket messages (one message may hold part
// of a packet or several packets).
type wsConn struct {
	net.Conn // the hijacked connection: addresses and deadlines
	ws       *websocket.Conn
	r        io.Reader // the message being read, if any
}

var errNotBinary = errors.New("MQTT over WebSockets needs binary messages")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // empty or finished message: read the next one
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

// wsListener stands for the HTTPS server's WebSocket sessions in the broker's listener table:
// it accepts nothing itself (the handler does), and on Close ends its sessions.
type wsListener struct{}

func (wsListener) Init(*slog.Logger) error     { return nil }
func (wsListener) Serve(listeners.EstablishFn) {}
func (wsListener) ID() string                  { return wsListenerID }
func (wsListener) Address() string             { return WebSocketPath }
func (wsListener) Protocol() string            { return "wss" }
func (wsListener) Close(closeClients listeners.CloseFn) {
	closeClients(wsListenerID)
}
