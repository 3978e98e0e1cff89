package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"byoc/ledger"
)

func TestOpenFailureLeavesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	parent := filepath.Join(t.TempDir(), "data")
	for _, cfg := range []Config{
		{Role: "signer", DataDir: filepath.Join(parent, "n"), Listen: busy.Addr().String()},
		{Role: "signer", DataDir: filepath.Join(parent, "n"), Listen: "127.0.0.1:0", AdminListen: busy.Addr().String()},
	} {
		_, err := Open(context.Background(), cfg)
		want := "signer: listen on " + busy.Addr().String()
		if cfg.AdminListen != "" {
			want = "signer: admin: listen on " + busy.Addr().String()
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open = %v, want %q…", err, want)
		}
		if _, err := os.Stat(parent); !os.IsNotExist(err) {
			t.Errorf("a failed Open left %s (%v)", parent, err)
		}
	}
}

// Close stops the servers and the background work, then drains while the
// ledger is still open, then closes it and frees the directory.
func TestServeAndClose(t *testing.T) {
	dir := t.TempDir()
	n, err := Open(context.Background(), Config{Role: "signer", DataDir: dir, Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{Role: "signer", DataDir: dir, Listen: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("second Open on the directory: %v", err)
	}
	stopped := make(chan struct{})
	var drained error
	err = n.Serve(Run{
		Handler:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("main")) }),
		Admin:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("admin")) }),
		Background: []func(context.Context){func(ctx context.Context) { <-ctx.Done(); close(stopped) }},
		Drain: func(ctx context.Context) {
			select {
			case <-stopped:
			default:
				drained = errors.New("drained before the background work stopped")
				return
			}
			_, drained = n.Ledger.Balance(ctx, ledger.PoolKey{Sender: "0x1", Capability: "c"}.Ref())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[net.Addr]string{n.Addr(): "main", n.AdminAddr(): "admin"} {
		resp, err := http.Get("http://" + addr.String())
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 16)
		k, _ := resp.Body.Read(b)
		resp.Body.Close()
		if string(b[:k]) != want {
			t.Errorf("%s answered %q, want %q", addr, b[:k], want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	n.Close()
	if drained != nil {
		t.Errorf("drain: %v", drained)
	}
	again, err := Open(context.Background(), Config{Role: "signer", DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	n, err := Open(context.Background(), Config{Role: "signer", DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Abandon()
	k1, err := n.Key()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := n.Key()
	if err != nil || k1.Address() != k2.Address() {
		t.Errorf("the key changed between reads: %v %v (%v)", k1.Address(), k2.Address(), err)
	}
	if _, err := n.TLS("example.org"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.secret"), []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Secret("PM secret", "bad.secret", 32); err == nil || !strings.HasPrefix(err.Error(), "signer: PM secret: ") {
		t.Errorf("bad secret: %v", err)
	}
}
