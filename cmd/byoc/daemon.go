package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// logFlags are --log-format and --log-level, the same on every role.
type logFlags struct{ format, level *string }

func registerLogFlags(fs *flag.FlagSet, levelHelp string) logFlags {
	return logFlags{
		format: fs.String("log-format", "text", "log format: text or json"),
		level:  fs.String("log-level", "info", "log level: "+levelHelp),
	}
}

func (f logFlags) logger(w io.Writer) (*slog.Logger, error) {
	return buildLogger(w, *f.format, *f.level)
}

// buildLogger is the logger --log-format and --log-level ask for.
func buildLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// readSecretFile reads a --secret-file: the secret is the file's content
// without surrounding white space (a trailing newline from an editor or
// echo is not part of it). The orchestrator and the worker read it alike,
// so one file serves both.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--secret-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--secret-file %s: the file is empty", path)
	}
	return s, nil
}

// secretFlags are --secret and --secret-file. The environment variable
// is read after parsing, never a flag default, so -h does not print it.
type secretFlags struct {
	secret, file *string
	env          string
}

func registerSecretFlags(fs *flag.FlagSet, env, help string) secretFlags {
	return secretFlags{
		secret: fs.String("secret", "", help+" (visible in ps: prefer --secret-file or env "+env+")"),
		file:   fs.String("secret-file", "", "file holding the secret (white space around it ignored)"),
		env:    env,
	}
}

// value is the secret the flags give, "" when none.
func (s secretFlags) value(fs *flag.FlagSet) (string, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "secret" })
	switch {
	case given && *s.file != "":
		return "", errors.New("give --secret or --secret-file, not both")
	case *s.file != "":
		return readSecretFile(*s.file)
	case given:
		return *s.secret, nil
	}
	return os.Getenv(s.env), nil
}
