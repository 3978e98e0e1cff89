package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The journal on disk: segment files seg-<first seq>.log in the journal
// directory, each a magic header and then records
//
//	length  uint32  (of payload)
//	crc     uint32  (CRC-32C of seq and payload)
//	seq     uint64
//	payload [length]byte
//
// little-endian. Records are appended and synced before the operations
// they carry are acknowledged; a record that was being written when the
// process died fails its length or checksum and ends the journal.
//
// A segment is filled with zeros ahead of its records, in the background
// (segLog.fill): a record written over zeros the file already holds does
// not change the file's size, so its fdatasync writes the record and
// nothing of the file system's own. An all-zero header, with only zeros
// after it, ends the records of a segment.

const (
	magic     = "BYOCJNL1"
	headerLen = 16
	// maxRecord bounds a record's payload: a length beyond it is a torn
	// header, not an allocation to attempt.
	maxRecord = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segLog appends records to the current segment and drops segments that
// the projection has caught up with.
type segLog struct {
	dir   string
	limit int64
	sync  func(*os.File) error

	// guarded by the store's write lock
	size int64
	buf  []byte
	// counters (Stats)
	records, bytes uint64

	// The group sync: appends only write; syncTo makes records durable,
	// one fdatasync for every record written before it started, so a
	// batch can be applied and written while the previous one syncs.
	smu     sync.Mutex
	scond   *sync.Cond
	f       *os.File // written by the write lock's holder, under smu
	written uint64   // seq of the last record written
	durable uint64   // seq of the last record synced
	syncing bool
	serr    error
	syncs   uint64
	// fileMu: a sync in flight holds it for reading; rotation, to close
	// the file, for writing.
	fileMu sync.RWMutex

	mu   sync.Mutex
	full []segment // closed segments, oldest first

	// Zero fill (see above): zmu guards zeroed, ahead and filling.
	zmu   sync.Mutex
	zcond *sync.Cond
	// zeroed is how far the current segment's file reaches (records and
	// the zeros after them): a record that ends before it does not
	// grow the file.
	zeroed int64
	// ahead is how far past the records the next fill reaches: it starts
	// small (a ledger that writes little fills little) and doubles with
	// each fill, up to maxAhead.
	ahead   int64
	filling bool
	zwg     sync.WaitGroup
}

// The zero fill's first and largest reach past the records.
const (
	minAhead = 64 << 10
	maxAhead = 4 << 20
)

// zeros is what fill writes, a piece at a time.
var zeros = make([]byte, 256<<10)

type segment struct {
	path      string
	last      uint64 // seq of its last record
	firstNext uint64 // first seq of the segment after it
}

func segName(first uint64) string { return fmt.Sprintf("seg-%020d.log", first) }

// listSegments returns the segment files in dir with their first seqs,
// in order.
func listSegments(dir string) ([]string, []uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	type seg struct {
		path  string
		first uint64
	}
	var segs []seg
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "seg-") || !strings.HasSuffix(n, ".log") {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, "seg-"), ".log"), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("journal: unexpected file %s", n)
		}
		segs = append(segs, seg{filepath.Join(dir, n), first})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	paths, firsts := make([]string, len(segs)), make([]uint64, len(segs))
	for i, s := range segs {
		paths[i], firsts[i] = s.path, s.first
	}
	return paths, firsts, nil
}

// errTorn marks the end of the valid records of a segment.
var errTorn = errors.New("journal: torn or corrupt record")

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readSegment calls fn for each valid record of the segment at path and
// returns the offset where the valid records end, and errTorn if bytes
// that are no valid record follow.
func readSegment(path string, fn func(seq uint64, payload []byte) error) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) < len(magic) {
		return 0, errTorn // a segment created but its header not written
	}
	if string(b[:len(magic)]) != magic {
		return 0, fmt.Errorf("journal: %s is not a byoc journal segment", path)
	}
	off := len(magic)
	for off < len(b) {
		if len(b)-off < headerLen {
			return int64(off), errTorn
		}
		if allZero(b[off : off+headerLen]) {
			// The zero fill past the last record: the end, if only zeros
			// follow.
			if !allZero(b[off:]) {
				return int64(off), errTorn
			}
			return int64(off), nil
		}
		n := binary.LittleEndian.Uint32(b[off:])
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n > maxRecord || int(n) > len(b)-off-headerLen {
			return int64(off), errTorn
		}
		body := b[off+8 : off+headerLen+int(n)]
		if crc32.Checksum(body, crcTable) != sum {
			return int64(off), errTorn
		}
		if err := fn(binary.LittleEndian.Uint64(body), body[8:]); err != nil {
			return int64(off), err
		}
		off += headerLen + int(n)
	}
	return int64(off), nil
}

// openLog starts the log in dir after record last, in a new segment
// (segments rotate after limit bytes; syncf makes records durable).
func openLog(dir string, limit int64, syncf func(*os.File) error, last uint64) (*segLog, error) {
	l := &segLog{dir: dir, limit: limit, sync: syncf, written: last, durable: last, ahead: minAhead}
	l.scond = sync.NewCond(&l.smu)
	l.zcond = sync.NewCond(&l.zmu)
	if err := l.create(last + 1); err != nil {
		return nil, err
	}
	return l, nil
}

// create starts a new segment whose first record will be first.
func (l *segLog) create(first uint64) error {
	path := filepath.Join(l.dir, segName(first))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Write([]byte(magic)); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := errors.Join(f.Sync(), syncDir(l.dir)); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	l.smu.Lock()
	l.f = f
	l.smu.Unlock()
	l.size = int64(len(magic))
	l.zmu.Lock()
	l.zeroed = l.size
	l.zmu.Unlock()
	return nil
}

// append writes one record and syncs it. On failure the segment is cut
// back to where it was, so that no partial record precedes a later one.
func (l *segLog) append(seq uint64, payload []byte) error {
	l.buf = l.buf[:0]
	l.buf = binary.LittleEndian.AppendUint32(l.buf, uint32(len(payload)))
	l.buf = binary.LittleEndian.AppendUint32(l.buf, 0)
	l.buf = binary.LittleEndian.AppendUint64(l.buf, seq)
	l.buf = append(l.buf, payload...)
	binary.LittleEndian.PutUint32(l.buf[4:], crc32.Checksum(l.buf[8:], crcTable))
	end := l.size + int64(len(l.buf))
	l.zmu.Lock()
	for end > l.zeroed && l.filling {
		// The fill is writing zeros where this record goes: after it.
		l.zcond.Wait()
	}
	l.zeroed = max(l.zeroed, end)
	fill := !l.filling && l.zeroed-end < l.ahead/2 && l.zeroed < l.limit
	from, to := l.zeroed, min(l.zeroed+l.ahead, l.limit)
	l.filling = l.filling || fill
	l.zmu.Unlock()
	if fill {
		// This segment is not rotated away during the fill: a record
		// past from waits for it, and to is at most the size limit.
		l.zwg.Add(1)
		go l.fill(l.f.Name(), from, to)
	}
	if _, err := l.f.Write(l.buf); err != nil {
		return l.undo(err)
	}
	l.size += int64(len(l.buf))
	l.records++
	l.bytes += uint64(len(l.buf))
	l.smu.Lock()
	l.written = seq
	l.smu.Unlock()
	if l.size >= l.limit {
		return l.rotate(seq)
	}
	return nil
}

// syncTo returns once record seq is durable: it joins a sync in flight
// or starts one for everything written so far. A failed sync breaks the
// journal: what was written after the last good sync may or may not be
// on disk, so nothing more is acknowledged until a restart recovers.
func (l *segLog) syncTo(seq uint64) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	for l.durable < seq {
		if l.serr != nil {
			return l.serr
		}
		if l.syncing {
			l.scond.Wait()
			continue
		}
		l.syncing = true
		// The file cannot be rotated away while the sync holds fileMu
		// (lock order: fileMu, then smu).
		l.smu.Unlock()
		l.fileMu.RLock()
		l.smu.Lock()
		if l.durable >= seq || l.f == nil {
			// A rotation synced it meanwhile (or the log is closed).
			l.syncing = false
			l.smu.Unlock()
			l.fileMu.RUnlock()
			l.smu.Lock()
			l.scond.Broadcast()
			continue
		}
		target, f := l.written, l.f
		l.syncs++
		l.smu.Unlock()
		err := l.sync(f)
		l.fileMu.RUnlock()
		l.smu.Lock()
		l.syncing = false
		if err != nil {
			l.serr = fmt.Errorf("journal: sync: %w", errors.Join(err, errBroken))
		} else if target > l.durable {
			l.durable = target
		}
		l.scond.Broadcast()
	}
	return nil
}

// fill writes zeros over [from, to) of the segment file name, past its
// records, then syncs them, so the file's new size is durable and the
// syncs of the records later written over the zeros skip it. It writes
// and syncs through a descriptor of its own: its sync runs beside the
// records' syncs without delaying them, and a write-back error it meets
// is still reported to the records' descriptor (Linux reports such an
// error to every open file description), so it acknowledges nothing and
// breaks nothing. A fill that fails leaves the file as far as it grew;
// records written past that grow it as an append does.
func (l *segLog) fill(name string, from, to int64) {
	defer l.zwg.Done()
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	for off := from; err == nil && off < to; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), to-off)], off)
	}
	if err == nil {
		err = l.sync(f)
	}
	if f != nil {
		f.Close()
	}
	l.zmu.Lock()
	if err == nil && to > l.zeroed {
		l.zeroed = to
	}
	l.ahead = min(2*l.ahead, maxAhead)
	l.filling = false
	l.zcond.Broadcast()
	l.zmu.Unlock()
}

func (l *segLog) undo(err error) error {
	l.zmu.Lock()
	for l.filling {
		l.zcond.Wait()
	}
	l.zeroed = l.size
	l.zmu.Unlock()
	if terr := l.f.Truncate(l.size); terr != nil {
		return fmt.Errorf("journal: %w; and cutting back the partial record failed: %w", err, errors.Join(terr, errBroken))
	}
	if _, serr := l.f.Seek(l.size, io.SeekStart); serr != nil {
		return fmt.Errorf("journal: %w; %w", err, errors.Join(serr, errBroken))
	}
	return fmt.Errorf("journal: %w", err)
}

// errBroken: the journal cannot be appended to safely any more.
var errBroken = errors.New("journal unusable until restart")

// rotate closes the current segment, whose last record is last, and
// starts the next.
func (l *segLog) rotate(last uint64) error {
	name := l.f.Name()
	// Everything in the segment is made durable before it is closed.
	l.fileMu.Lock()
	err := l.sync(l.f)
	if err == nil {
		err = l.f.Close()
	}
	l.smu.Lock()
	l.f = nil // create sets the next
	if err != nil {
		err = fmt.Errorf("journal: %w", errors.Join(err, errBroken))
		l.serr = err
	} else if last > l.durable {
		l.durable = last
	}
	l.scond.Broadcast()
	l.smu.Unlock()
	l.fileMu.Unlock()
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.full = append(l.full, segment{path: name, last: last, firstNext: last + 1})
	l.mu.Unlock()
	if err := l.create(last + 1); err != nil {
		return errors.Join(err, errBroken)
	}
	return nil
}

// droppable reports whether a closed segment is wholly projected.
func (l *segLog) droppable(projected uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.full) > 0 && l.full[0].last <= projected
}

// dropThrough deletes the closed segments whose records are all projected.
func (l *segLog) dropThrough(projected uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.full {
		if s.last > projected {
			break
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		n++
	}
	l.full = l.full[n:]
	return nil
}

func (l *segLog) close() error {
	l.zwg.Wait()
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
