package workloads

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gocr/gocr/zdtm/lib"
)

// Real servers from Debian's packages (make server-deps installs them),
// started by the workload on loopback, with a client connection open and
// a request in flight across the checkpoint, checked with their own
// protocol afterwards.

// serverDirs are what a Debian program needs of the host in the ns and
// uns flavors: its binary, libraries and /etc (passwd for user names).
var serverDirs = []string{"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"}

// freePort asks the kernel for a free loopback port.
func freePort(t *lib.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is a real program the workload started as its child. It is
// started with syscall.ForkExec, not os/exec: os/exec keeps a pidfd of
// the child, which gocr does not checkpoint yet.
type server struct {
	t    *lib.T
	pid  int
	name string
	log  string
}

func startServer(t *lib.T, name, log string, argv ...string) *server {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		t.Fatal(fmt.Errorf("%s is not installed (make server-deps installs it): %w", argv[0], err))
	}
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Files: []uintptr{null.Fd(), out.Fd(), out.Fd()},
		// The server dies with the workload, whatever ends it.
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		t.Fatal(fmt.Errorf("start %s: %w", name, err))
	}
	return &server{t: t, pid: pid, name: name, log: log}
}

// fail kills the server and fails with its log's tail.
func (s *server) fail(format string, args ...any) {
	syscall.Kill(s.pid, syscall.SIGKILL) //nolint:errcheck
	b, _ := os.ReadFile(s.log)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	s.t.Fail("%s: %s (its log ends: %q)", s.name, fmt.Sprintf(format, args...), b)
}

// dial waits for the server to listen on port and connects.
func (s *server) dial(port int) net.Conn {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			s.fail("does not listen on port %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the server with SIGTERM and waits for it.
func (s *server) stop() {
	syscall.Kill(s.pid, syscall.SIGTERM) //nolint:errcheck
	done := make(chan error, 1)
	go func() {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(s.pid, &ws, 0, nil)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.fail("did not exit on SIGTERM")
	}
}

// resp writes a Redis command in RESP, redis' own protocol.
func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// readReply reads one RESP reply: a status, error, integer or bulk string.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bulk length %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("reply %q", line)
}

// RedisServer runs Debian's redis-server (a key-value store with
// background threads) on loopback without persistence, fills it with 500
// keys over one connection, then leaves on that connection the reply to
// a GET unread and the first half of a SET in redis' query buffer. After
// the restore the reply must read back, the SET complete on the same
// connection, every key hold its value, and a new connection work.
var RedisServer = lib.Workload{Name: "redis_server", HostDirs: serverDirs, Run: func(t *lib.T) {
	dir, err := os.MkdirTemp("", "zdtm-redis-")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := startServer(t, "redis-server", filepath.Join(dir, "redis.log"), "redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", dir, "--protected-mode", "no", "--logfile", "")
	c := s.dial(port)
	r := bufio.NewReader(c)
	do := func(args ...string) string {
		c.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
		if _, err := io.WriteString(c, resp(args...)); err != nil {
			s.fail("%v: %v", args, err)
		}
		v, err := readReply(r)
		if err != nil {
			s.fail("%v: %v", args, err)
		}
		return v
	}
	for {
		v, err := func() (string, error) {
			c.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
			io.WriteString(c, resp("PING"))                 //nolint:errcheck
			return readReply(r)
		}()
		if err == nil && v == "PONG" {
			break
		}
		if err != nil && !strings.Contains(err.Error(), "LOADING") {
			s.fail("PING: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	const keys = 500
	for i := range keys {
		do("SET", fmt.Sprintf("key:%d", i), fmt.Sprintf("value %d %s", i, strings.Repeat("x", i%97)))
	}
	// In flight: a reply not read yet, and half a command.
	if _, err := io.WriteString(c, resp("GET", "key:7")); err != nil {
		s.fail("GET: %v", err)
	}
	half := resp("SET", "late", "arrived after the restore")
	if _, err := io.WriteString(c, half[:len(half)/2]); err != nil {
		s.fail("half a SET: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // the server reads both and answers the GET

	t.Ready()
	t.WaitSignal()

	c.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
	if v, err := readReply(r); err != nil || v != "value 7 "+strings.Repeat("x", 7) {
		s.fail("the GET sent before the checkpoint: %q, %v", v, err)
	}
	if _, err := io.WriteString(c, half[len(half)/2:]); err != nil {
		s.fail("the rest of the SET: %v", err)
	}
	if v, err := readReply(r); err != nil || v != "OK" {
		s.fail("the SET split by the checkpoint: %q, %v", v, err)
	}
	if v := do("GET", "late"); v != "arrived after the restore" {
		s.fail("GET late: %q", v)
	}
	if v := do("DBSIZE"); v != strconv.Itoa(keys+1) {
		s.fail("DBSIZE %s, want %d", v, keys+1)
	}
	c2 := s.dial(port)
	r2 := bufio.NewReader(c2)
	for i := 0; i < keys; i += 37 {
		c2.SetDeadline(time.Now().Add(15 * time.Second))          //nolint:errcheck
		io.WriteString(c2, resp("GET", fmt.Sprintf("key:%d", i))) //nolint:errcheck
		want := fmt.Sprintf("value %d %s", i, strings.Repeat("x", i%97))
		if v, err := readReply(r2); err != nil || v != want {
			s.fail("GET key:%d on a new connection: %q, %v", i, v, err)
		}
	}
	c2.Close()
	c.Close()
	s.stop()
	os.RemoveAll(dir)
	t.Pass()
}}

// nginxConf is a configuration of nginx's own: a master and two
// workers, everything under dir, serving dir/html on port.
const nginxConf = `daemon off;
master_process on;
worker_processes 2;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_timeout 300s;
	keepalive_requests 1000;
	server {
		listen 127.0.0.1:%[2]d;
		root %[1]s/html;
	}
}
`

// NginxServer runs Debian's nginx, a master with two worker processes,
// serving a file on loopback. A keep-alive connection has one request
// answered before the checkpoint and a second one sent whose response is
// still unread. After the restore that response must read back, the same
// connection serve a third request, and a new connection a fourth.
var NginxServer = lib.Workload{Name: "nginx_server", HostDirs: serverDirs, Run: func(t *lib.T) {
	dir, err := os.MkdirTemp("", "zdtm-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	body := strings.Repeat("served by nginx across a checkpoint\n", 300)
	if err := os.MkdirAll(filepath.Join(dir, "html"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "html", "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "nginx", filepath.Join(dir, "stderr.log"), "nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	c := s.dial(port)
	r := bufio.NewReader(c)
	get := func(conn net.Conn, rd *bufio.Reader, send bool) {
		conn.SetDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
		if send {
			if _, err := io.WriteString(conn, "GET /index.html HTTP/1.1\r\nHost: zdtm\r\n\r\n"); err != nil {
				s.fail("send a request: %v", err)
			}
		}
		status, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
			s.fail("response status %q, %v", status, err)
		}
		length := -1
		for {
			h, err := rd.ReadString('\n')
			if err != nil {
				s.fail("response headers: %v", err)
			}
			h = strings.TrimRight(h, "\r\n")
			if h == "" {
				break
			}
			if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if length != len(body) {
			s.fail("Content-Length %d, want %d", length, len(body))
		}
		b := make([]byte, length)
		if _, err := io.ReadFull(rd, b); err != nil || string(b) != body {
			s.fail("response body: %d bytes, %v", len(b), err)
		}
	}
	get(c, r, true)
	// In flight: a request whose response is not read yet.
	if _, err := io.WriteString(c, "GET /index.html HTTP/1.1\r\nHost: zdtm\r\n\r\n"); err != nil {
		s.fail("send the second request: %v", err)
	}
	time.Sleep(200 * time.Millisecond)

	t.Ready()
	t.WaitSignal()

	get(c, r, false)
	get(c, r, true)
	c2 := s.dial(port)
	get(c2, bufio.NewReader(c2), true)
	c2.Close()
	c.Close()
	s.stop()
	os.RemoveAll(dir)
	t.Pass()
}}
