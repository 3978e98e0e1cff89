package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// newTestLog starts a segment log in a temporary directory.
func newTestLog(t *testing.T, limit int64) *segLog {
	t.Helper()
	l, err := openLog(t.TempDir(), limit, dataSync, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })
	return l
}

// A segment is zero-filled ahead of its records, in growing steps, up to
// its size limit and not past it; its records read back whole, the zeros after them
// ending the segment cleanly; each record is synced by its own sync.
func TestSegmentZeroFilledAhead(t *testing.T) {
	l := newTestLog(t, 512<<10)
	path := l.f.Name()
	var want []string
	for seq := uint64(1); seq <= 900; seq++ {
		p := fmt.Sprintf("record %d %0500d", seq, seq)
		want = append(want, p)
		if err := l.append(seq, []byte(p)); err != nil {
			t.Fatal(err)
		}
		if err := l.syncTo(seq); err != nil {
			t.Fatal(err)
		}
		l.zwg.Wait() // the fill this record started
		l.zmu.Lock()
		zeroed, filled := l.zeroed, l.zeroed-l.size
		l.zmu.Unlock()
		if fi, err := os.Stat(path); err != nil || fi.Size() != zeroed {
			t.Fatalf("after record %d: file %v bytes (%v), zeroed %d", seq, fi.Size(), err, zeroed)
		}
		if filled < minAhead/2 || zeroed > l.limit {
			t.Fatalf("after record %d: %d bytes zero-filled past the records, to %d (limit %d)", seq, filled, zeroed, l.limit)
		}
	}
	if l.syncs != 900 || l.zeroed != l.limit {
		t.Fatalf("%d record syncs, zero fill to %d; want one sync a record (900), the fill to the limit %d", l.syncs, l.zeroed, l.limit)
	}
	var got []string
	end, err := readSegment(path, func(seq uint64, payload []byte) error {
		got = append(got, string(payload))
		return nil
	})
	if err != nil || end != l.size || len(got) != len(want) || got[len(got)-1] != want[len(want)-1] {
		t.Fatalf("read back %d records to offset %d, err %v; want %d to %d, no error", len(got), end, err, len(want), l.size)
	}
}

// A record being written when the process died, over the zeros, is a torn
// tail; so is anything but zeros after an all-zero header.
func TestSegmentTornOverZeros(t *testing.T) {
	for name, damage := range map[string]func(b []byte, end int){
		"half a record": func(b []byte, end int) {
			binary.LittleEndian.PutUint32(b[end:], 300)
			binary.LittleEndian.PutUint32(b[end+4:], 0xdeadbeef)
			copy(b[end+16:], "a partial payl")
		},
		"bytes after a zero header": func(b []byte, end int) { b[end+4096] = 1 },
	} {
		t.Run(name, func(t *testing.T) {
			l := newTestLog(t, 1<<20)
			for seq := uint64(1); seq <= 3; seq++ {
				if err := l.append(seq, []byte("payload")); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.syncTo(3); err != nil {
				t.Fatal(err)
			}
			l.zwg.Wait()
			path := l.f.Name()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damage(b, int(l.size))
			p := filepath.Join(t.TempDir(), "seg.log")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			n := 0
			end, err := readSegment(p, func(uint64, []byte) error { n++; return nil })
			if !errors.Is(err, errTorn) || n != 3 || end != l.size {
				t.Fatalf("read %d records to %d, err %v; want 3 to %d, errTorn", n, end, err, l.size)
			}
		})
	}
}
