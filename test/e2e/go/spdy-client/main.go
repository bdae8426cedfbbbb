// spdy-client speaks Kubernetes' streaming protocols over SPDY/3.1 the way kubelet's
// and crictl's client stack does, on Docker's spdystream (Debian's
// golang-github-docker-spdystream-dev), built offline in GOPATH mode by build-spdy.sh.
// berth's e2e tests drive it against the URLs CRI's Exec, Attach and PortForward return.
//
//	spdy-client exec URL [flags]        (attach URLs too)
//	  -stdin          open stdin and copy this process's stdin to it, then close it
//	  -stdout -stderr open those streams
//	  -tty            a terminal: a resize stream too (v3+)
//	  -resize WxH     send one terminal size first
//	  -protocol P     X-Stream-Protocol-Version (repeatable via commas)
//	  -disconnect-after D  drop the connection after D (a Go duration) and exit
//	spdy-client portforward URL PORT[,PORT...] REQUEST
//	  sends REQUEST on a data stream per port (concurrently) and reads the reply
//
// An https:// URL is dialled with Go's crypto/tls, trusting only the PEM certificate in
// $SPDY_CLIENT_CA_FILE, or without verification when that is unset (a server's
// self-signed certificate, as kubelet skips verifying containerd's).
//
// Prints one JSON object: the HTTP status of the upgrade, then what each stream carried.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/spdystream"
)

type result struct {
	HTTPStatus int                `json:"http_status"`
	Protocol   string             `json:"protocol,omitempty"`
	Body       string             `json:"body,omitempty"`
	Stdout     string             `json:"stdout"`
	Stderr     string             `json:"stderr"`
	Error      string             `json:"error"`
	Ports      map[string]portRes `json:"ports,omitempty"`
	Fail       string             `json:"fail,omitempty"`
}

type portRes struct {
	Data  string `json:"data"`
	Error string `json:"error"`
}

func main() {
	if len(os.Args) < 3 {
		die("usage: spdy-client exec|portforward URL ...")
	}
	mode, rawURL := os.Args[1], os.Args[2]
	switch mode {
	case "exec":
		fs := flag.NewFlagSet("exec", flag.ExitOnError)
		stdin := fs.Bool("stdin", false, "")
		stdout := fs.Bool("stdout", false, "")
		stderr := fs.Bool("stderr", false, "")
		tty := fs.Bool("tty", false, "")
		resize := fs.String("resize", "", "")
		protocol := fs.String("protocol", "v4.channel.k8s.io", "")
		disconnect := fs.Duration("disconnect-after", 0, "")
		fs.Parse(os.Args[3:])
		runExec(rawURL, *protocol, *stdin, *stdout, *stderr, *tty, *resize, *disconnect)
	case "portforward":
		if len(os.Args) != 5 {
			die("usage: spdy-client portforward URL PORTS REQUEST")
		}
		runPortForward(rawURL, strings.Split(os.Args[3], ","), os.Args[4])
	default:
		die("unknown mode " + mode)
	}
}

func die(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}

func emit(r result) {
	json.NewEncoder(os.Stdout).Encode(r)
}

// bufConn reads through the buffered reader that parsed the upgrade response.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// upgrade dials the URL and asks for SPDY/3.1 with the given subprotocols.
func upgrade(rawURL string, protocols []string) (net.Conn, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	conn, err := dial(u)
	if err != nil {
		return nil, nil, err
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", u.RequestURI(), u.Host)
	for _, p := range protocols {
		if p != "" {
			req += "X-Stream-Protocol-Version: " + p + "\r\n"
		}
	}
	req += "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	return bufConn{conn, br}, resp, nil
}

// dial connects to the URL's host: plain TCP for http, TLS for https.
func dial(u *url.URL) (net.Conn, error) {
	switch u.Scheme {
	case "http":
		return net.Dial("tcp", u.Host)
	case "https":
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q", u.Scheme)
	}
	config := &tls.Config{ServerName: u.Hostname()}
	if file := os.Getenv("SPDY_CLIENT_CA_FILE"); file != "" {
		pem, err := ioutil.ReadFile(file)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", file)
		}
		config.RootCAs = pool
	} else {
		config.InsecureSkipVerify = true
	}
	return tls.Dial("tcp", u.Host, config)
}

func refused(resp *http.Response) result {
	body, _ := ioutil.ReadAll(resp.Body)
	return result{HTTPStatus: resp.StatusCode, Body: string(body)}
}

func open(sc *spdystream.Connection, h http.Header) *spdystream.Stream {
	s, err := sc.CreateStream(h, nil, false)
	if err != nil {
		die("creating stream: " + err.Error())
	}
	if err := s.WaitTimeout(10 * time.Second); err != nil {
		die("waiting for the stream's reply: " + err.Error())
	}
	return s
}

func runExec(rawURL, protocol string, stdin, stdout, stderr, tty bool, resize string, disconnect time.Duration) {
	raw, resp, err := upgrade(rawURL, strings.Split(protocol, ","))
	if err != nil {
		die(err.Error())
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		emit(refused(resp))
		return
	}
	res := result{HTTPStatus: resp.StatusCode, Protocol: resp.Header.Get("X-Stream-Protocol-Version")}
	sc, err := spdystream.NewConnection(raw, false)
	if err != nil {
		die(err.Error())
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	stream := func(t string) *spdystream.Stream {
		return open(sc, http.Header{"Streamtype": []string{t}})
	}
	errStream := stream("error")
	var wg sync.WaitGroup
	var mu sync.Mutex
	if stdin {
		in := stream("stdin")
		go func() {
			io.Copy(in, os.Stdin)
			in.Close()
		}()
	}
	collect := func(s *spdystream.Stream, into *string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32*1024)
			for {
				n, err := s.Read(buf)
				mu.Lock()
				*into += string(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	if stdout {
		collect(stream("stdout"), &res.Stdout)
	}
	if stderr && !tty {
		collect(stream("stderr"), &res.Stderr)
	}
	if tty && protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io" {
		rs := stream("resize")
		if resize != "" {
			var w, h int
			fmt.Sscanf(resize, "%dx%d", &w, &h)
			json.NewEncoder(rs).Encode(map[string]int{"Width": w, "Height": h})
		}
	}
	if disconnect > 0 {
		time.Sleep(disconnect)
		raw.Close()
		mu.Lock()
		res.Fail = "disconnected"
		emit(res)
		mu.Unlock()
		return
	}
	errDone := make(chan string)
	go func() {
		b, _ := ioutil.ReadAll(errStream)
		errDone <- string(b)
	}()
	wg.Wait()
	select {
	case res.Error = <-errDone:
	case <-time.After(30 * time.Second):
		res.Fail = "no status on the error stream"
	}
	sc.Close()
	emit(res)
}

func runPortForward(rawURL string, ports []string, request string) {
	raw, resp, err := upgrade(rawURL, []string{"portforward.k8s.io"})
	if err != nil {
		die(err.Error())
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		emit(refused(resp))
		return
	}
	res := result{HTTPStatus: resp.StatusCode, Protocol: resp.Header.Get("X-Stream-Protocol-Version"), Ports: map[string]portRes{}}
	sc, err := spdystream.NewConnection(raw, false)
	if err != nil {
		die(err.Error())
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, port := range ports {
		h := http.Header{"Port": []string{port}, "Requestid": []string{fmt.Sprint(i)}}
		h.Set("Streamtype", "error")
		errStream := open(sc, h)
		h = http.Header{"Port": []string{port}, "Requestid": []string{fmt.Sprint(i)}}
		h.Set("Streamtype", "data")
		data := open(sc, h)
		wg.Add(1)
		go func(port string) {
			defer wg.Done()
			data.Write([]byte(request))
			var r portRes
			done := make(chan struct{})
			go func() {
				b, _ := ioutil.ReadAll(errStream)
				r.Error = string(b)
				close(done)
			}()
			b, _ := ioutil.ReadAll(data)
			r.Data = string(b)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				r.Error += "(error stream not closed)"
			}
			mu.Lock()
			res.Ports[port] = r
			mu.Unlock()
		}(port)
	}
	wg.Wait()
	sc.Close()
	emit(res)
}
