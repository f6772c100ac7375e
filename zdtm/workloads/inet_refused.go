package workloads

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/gocr/gocr/zdtm/lib"
)

// TCPBacklogRefused holds a listener with a connection waiting in its
// accept queue, which gocr cannot put back as it was: the dump must fail
// naming the listener, and afterwards the connection must still be there
// to accept and carry data (the descriptor says crfail).
var TCPBacklogRefused = lib.Workload{Name: "tcp_backlog_refused", Run: func(t *lib.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	server, err := ln.Accept()
	if err != nil {
		t.Fail("accept the waiting connection: %v", err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "waiting" {
		t.Fail("read on the accepted connection: %q, %v", got, err)
	}
	t.Pass()
}}

// UDPQueueRefused holds a UDP socket with a datagram in its receive
// queue: the dump must fail naming the socket, and the datagram must
// still be there afterwards.
var UDPQueueRefused = lib.Workload{Name: "udp_queue_refused", Run: func(t *lib.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write([]byte("queued")); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()
	rx.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	buf := make([]byte, 16)
	n, err := rx.Read(buf)
	if err != nil || string(buf[:n]) != "queued" {
		t.Fail("read the queued datagram: %q, %v", buf[:n], err)
	}
	t.Pass()
}}
