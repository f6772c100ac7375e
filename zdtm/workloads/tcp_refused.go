package workloads

import (
	"io"
	"net"

	"github.com/gocr/gocr/zdtm/lib"
)

// TCPRefused holds an established TCP connection on loopback, which gocr
// cannot checkpoint yet: the dump must fail with a clear error and leave
// the workload running (the descriptor says crfail), and the connection
// must still carry data afterwards.
var TCPRefused = lib.Workload{Name: "tcp_refused", Run: func(t *lib.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()
	msg := []byte("still connected")
	if _, err := client.Write(msg); err != nil {
		t.Fail("write on the connection: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(server, got); err != nil || string(got) != string(msg) {
		t.Fail("read on the connection: %q, %v", got, err)
	}
	t.Pass()
}}
