package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// monitor is a QMP client (QEMU's JSON monitor protocol: one JSON object
// a line, a greeting, then commands answered by "return" or "error",
// with events mixed in). Every call has a deadline: a QEMU that stops
// answering must never stop vmtest.
type monitor struct {
	conn    net.Conn
	replies chan json.RawMessage // answers to commands, in order
	done    chan struct{}        // closed when the connection ends

	mu       sync.Mutex
	shutdown string // reason of the last SHUTDOWN event
}

// dialQMP connects to the QMP socket and does the capabilities handshake
// within timeout.
func dialQMP(sock string, timeout time.Duration) (*monitor, error) {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		return nil, err
	}
	m := &monitor{conn: conn, replies: make(chan json.RawMessage, 16), done: make(chan struct{})}
	r := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(deadline)
	greeting, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	var g struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	if json.Unmarshal(greeting, &g) != nil || g.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting: not a QMP greeting: %.80q", greeting)
	}
	conn.SetReadDeadline(time.Time{})
	go m.read(r)
	if _, err := m.run(`{"execute":"qmp_capabilities"}`, time.Until(deadline)); err != nil {
		m.close()
		return nil, fmt.Errorf("QMP handshake: %w", err)
	}
	return m, nil
}

// read sorts what QEMU sends into events (kept: the shutdown reason) and
// replies, until the connection ends.
func (m *monitor) read(r *bufio.Reader) {
	defer close(m.done)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var msg struct {
			Event string `json:"event"`
			Data  struct {
				Reason string `json:"reason"`
			} `json:"data"`
		}
		if json.Unmarshal(line, &msg) != nil {
			continue
		}
		if msg.Event != "" {
			if msg.Event == "SHUTDOWN" {
				m.mu.Lock()
				m.shutdown = msg.Data.Reason
				m.mu.Unlock()
			}
			continue
		}
		select {
		case m.replies <- json.RawMessage(line):
		default: // nobody asked: drop it rather than block the reader
		}
	}
}

// run sends one command and waits at most timeout for its answer.
func (m *monitor) run(cmd string, timeout time.Duration) (json.RawMessage, error) {
	m.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := m.conn.Write([]byte(cmd + "\n")); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case b := <-m.replies:
		var r struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, err
		}
		if r.Error != nil {
			return nil, fmt.Errorf("%s: %s", r.Error.Class, r.Error.Desc)
		}
		return r.Return, nil
	case <-m.done:
		return nil, errors.New("QMP connection closed")
	case <-t.C:
		return nil, fmt.Errorf("no answer from QMP in %v", timeout)
	}
}

// status asks for the VM's run state (running, paused, internal-error, ...).
func (m *monitor) status(timeout time.Duration) (string, error) {
	b, err := m.run(`{"execute":"query-status"}`, timeout)
	if err != nil {
		return "", err
	}
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("query-status: %w", err)
	}
	return s.Status, nil
}

// shutdownReason is the reason of the SHUTDOWN event QEMU sent, if any;
// it waits up to wait for the connection to end first, so an event sent
// just before QEMU exited is not missed.
func (m *monitor) shutdownReason(wait time.Duration) string {
	select {
	case <-m.done:
	case <-time.After(wait):
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shutdown
}

func (m *monitor) close() {
	m.conn.Close()
	<-m.done
}
