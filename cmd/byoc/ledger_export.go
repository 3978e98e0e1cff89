package main

// byoc ledger export and byoc ledger archive.

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"byoc/ledger"
)

// archiveMinAge is how recent a cut archive accepts: archived entries take
// their idempotency keys with them, so the cut stays well behind any retry
// and any ticket still valid.
const archiveMinAge = 24 * time.Hour

// parseWhen reads a flag's time: RFC 3339, or a date (midnight UTC).
func parseWhen(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339 (2026-01-02T15:04:05Z) or a date (2026-01-02)", flagName, s)
}

func refText(r *ledger.Ref) string {
	if r == nil {
		return "outside"
	}
	return r.String()
}

func runExport(ctx context.Context, store ledger.Store, fromS, toS, format, outFile, unit string, stdout io.Writer) (err error) {
	from, err := parseWhen("from", fromS)
	if err != nil {
		return err
	}
	to, err := parseWhen("to", toS)
	if err != nil {
		return err
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return fmt.Errorf("--from %s is not before --to %s", fromS, toS)
	}
	if format != "csv" && format != "jsonl" {
		return fmt.Errorf("--format %q: want csv or jsonl", format)
	}
	w := stdout
	if outFile != "" {
		f, err := os.OpenFile(outFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	bw := bufio.NewWriter(w)
	var write func(ledger.ExportEntry) error
	flush := bw.Flush
	if format == "jsonl" {
		enc := json.NewEncoder(bw)
		write = func(e ledger.ExportEntry) error { return enc.Encode(e) }
	} else {
		cw := csv.NewWriter(bw)
		if err := cw.Write([]string{"id", "at", "kind", "from", "to", "amount_" + unit, "balance_after_" + unit, "key"}); err != nil {
			return err
		}
		write = func(e ledger.ExportEntry) error {
			return cw.Write([]string{strconv.FormatInt(e.ID, 10), e.At.Format(time.RFC3339Nano), string(e.Kind),
				refText(e.From), refText(e.To), formatAmount(e.Amount, unit), formatAmount(e.BalanceAfter, unit), e.Key})
		}
		flush = func() error {
			cw.Flush()
			return errors.Join(cw.Error(), bw.Flush())
		}
	}
	if err := ledger.Export(ctx, store, from, to, write); err != nil {
		return err
	}
	return flush()
}

// archiveFile writes an archive: gzipped JSON lines, each batch flushed and
// synced before the batch commits.
type archiveFile struct {
	f  *os.File
	gz *gzip.Writer
	bw *bufio.Writer
}

func (a *archiveFile) write(jobs []ledger.ArchivedJob) error {
	enc := json.NewEncoder(a.bw)
	for _, j := range jobs {
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	if err := a.bw.Flush(); err != nil {
		return err
	}
	if err := a.gz.Flush(); err != nil {
		return err
	}
	return a.f.Sync()
}

func (a *archiveFile) close() error {
	return errors.Join(a.bw.Flush(), a.gz.Close(), a.f.Sync(), a.f.Close())
}

// fileSize is the size of a SQLite ledger with its WAL, or -1 when where is
// not a file.
func fileSize(where string) int64 {
	fi, err := os.Stat(where)
	if err != nil {
		return -1
	}
	n := fi.Size()
	if w, err := os.Stat(where + "-wal"); err == nil {
		n += w.Size()
	}
	return n
}

func runArchive(ctx context.Context, store ledger.Store, where string, sf storeFlags, beforeS, outFile string, vacuum bool, unit string, stdout io.Writer) error {
	if beforeS == "" {
		return errors.New("archive needs --before")
	}
	before, err := parseWhen("before", beforeS)
	if err != nil {
		return err
	}
	if latest := time.Now().Add(-archiveMinAge); before.After(latest) {
		return fmt.Errorf("--before %s is less than %s ago: archived entries take their idempotency keys with them, so archive keeps the last day live",
			before.Format(time.RFC3339), archiveMinAge)
	}
	if outFile == "" {
		dir := "."
		if sf.dsn == "" {
			dir = filepath.Dir(where)
		}
		outFile = filepath.Join(dir, "ledger-archive-before-"+before.Format("20060102T150405Z")+
			"-at-"+time.Now().UTC().Format("20060102T150405.000Z")+".jsonl.gz")
	}
	f, err := os.OpenFile(outFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("archive file: %w (an archive is never overwritten)", err)
	}
	gz := gzip.NewWriter(f)
	af := &archiveFile{f: f, gz: gz, bw: bufio.NewWriterSize(gz, 1<<16)}
	sizeBefore := fileSize(where)
	start := time.Now()
	res, err := ledger.Archive(ctx, store, ledger.ArchiveOptions{Before: before, File: filepath.Base(outFile), Write: af.write})
	took := time.Since(start)
	if cerr := af.close(); err == nil {
		err = cerr
	}
	if res.Jobs == 0 {
		os.Remove(outFile) // nothing in it
	}
	if err != nil {
		if res.Jobs > 0 {
			return fmt.Errorf("archived %d jobs to %s, then: %w", res.Jobs, outFile, err)
		}
		return err
	}
	amt := func(a ledger.Amount) string { return formatAmount(a, unit) + " " + unit }
	if res.Jobs == 0 {
		fmt.Fprintf(stdout, "nothing to archive: no job closed before %s (jobs named by a winning ticket stay)\n", before.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "archived %d jobs and %d entries in %d batches to %s in %s\n", res.Jobs, res.Entries, res.Batches,
			outFile, took.Round(time.Millisecond))
		fmt.Fprintf(stdout, "their totals, kept in the checkpoint: credited %s, charged %s\n", amt(res.Totals.Credited), amt(res.Totals.Charged))
	}
	if sizeBefore >= 0 {
		fmt.Fprintf(stdout, "ledger file %s: %d bytes\n", where, sizeBefore)
	}
	if !vacuum {
		fmt.Fprintln(stdout, "the freed space is reused by new rows; to give it back to the file system run archive again with --vacuum (it blocks the node's writes while it runs)")
		return nil
	}
	v, ok := store.(interface{ Vacuum(context.Context) error })
	if !ok {
		return errors.New("this store cannot vacuum")
	}
	start = time.Now()
	if err := v.Vacuum(ctx); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	fmt.Fprintf(stdout, "vacuumed in %s", time.Since(start).Round(time.Millisecond))
	if n := fileSize(where); n >= 0 {
		fmt.Fprintf(stdout, "; ledger file %d bytes after", n)
	}
	fmt.Fprintln(stdout)
	return nil
}
